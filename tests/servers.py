"""Real servers for the tests, started from Debian's binaries on 127.0.0.1.

Redis and PostgreSQL are the local stack's own components (exporter/stack/components.py), so the
tests run the servers exactly as `vigil stack up` does. Each runs on a free port in a temporary
directory and can be stopped and started again (to test outages) on the same port and data.
`Process` is the small helper the other fixtures use for one-off binaries.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from vigil_exporter.tools.stack import components

PG_BIN = Path("/usr/lib/postgresql/15/bin")  # where Debian puts initdb and postgres


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def require(binary: str) -> str:
    path = shutil.which(binary) or (str(PG_BIN / binary) if (PG_BIN / binary).exists() else None)
    assert path, f"{binary} is not installed: run the test command from README.md"
    return path


class Process:
    """A child process with start/stop, logs in its directory."""

    def __init__(self, name: str, workdir: Path):
        self.name = name
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def spawn(self, argv: list[str], user: str | None = None, env=None) -> None:
        log = open(self.workdir / f"{self.name}.log", "ab")
        preexec = _drop_to(user) if user else None
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                     preexec_fn=preexec, env=env, start_new_session=True)
        log.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        path = self.workdir / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _drop_to(user: str):
    entry = pwd.getpwnam(user)

    def preexec():
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    return preexec


class RedisServer(components.Redis):
    """The stack's Redis component on a free port of its own, without a memory limit."""

    def __init__(self, workdir: Path, port: int | None = None):
        super().__init__("redis", workdir, port or free_port(), extra_args=["--maxmemory", "0"])


class PostgresServer(components.Postgres):
    """The stack's PostgreSQL component, as the tests want it: superuser `postgres`,
    `max_connections` 50 (tests count against it), and a psycopg URL."""

    user = "postgres"

    def __init__(self, workdir: Path, port: int | None = None):
        super().__init__("postgres", workdir, port or free_port(),
                         extra_args=["-c", "max_connections=50", "-c", "shared_buffers=16MB"])

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@{self.address}/{self.database}"

    def psql(self, sql: str, dbname: str = "vigil") -> str:
        out = subprocess.run(["psql", "-h", self.host, "-p", str(self.port), "-U", self.user,
                              "-d", dbname, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()


def tempdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"vigil-{prefix}-"))
