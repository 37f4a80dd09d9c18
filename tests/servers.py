"""Real servers for the tests, started from Debian's binaries on 127.0.0.1.

Each server runs on a free port in a temporary directory and can be stopped and started again
(to test outages) on the same port and data.
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

PG_BIN = Path("/usr/lib/postgresql/15/bin")


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


class RedisServer(Process):
    def __init__(self, workdir: Path, port: int | None = None):
        super().__init__("redis", workdir)
        self.port = port or free_port()
        self.binary = require("redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.spawn([self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                    "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no"])
        wait_for_port(self.port)
        return self


class PostgresServer(Process):
    """A throwaway cluster: trust auth on 127.0.0.1, superuser `postgres`, database `vigil`."""

    user = "postgres"

    def __init__(self, workdir: Path, port: int | None = None):
        super().__init__("postgres", workdir)
        self.port = port or free_port()
        self.datadir = workdir / "data"
        self.run_as = self.user if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/vigil"

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=vigil"

    def init(self) -> None:
        if self.run_as:
            shutil.chown(self.workdir, self.run_as, self.run_as)
        subprocess.run([require("initdb"), "-D", str(self.datadir), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-sync"], check=True,
                       capture_output=True, preexec_fn=_drop_to(self.run_as) if self.run_as else None)

    def start(self) -> "PostgresServer":
        if not self.datadir.exists():
            self.init()
            first = True
        else:
            first = False
        self.spawn([require("postgres"), "-D", str(self.datadir), "-p", str(self.port),
                    "-h", "127.0.0.1", "-k", str(self.workdir), "-c", "fsync=off",
                    "-c", "max_connections=50", "-c", "shared_buffers=16MB"], user=self.run_as)
        self._wait_ready()
        if first:
            self.psql("CREATE DATABASE vigil", dbname="postgres")
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            probe = subprocess.run([require("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True)
            if probe.returncode == 0:
                return
            if not self.running:
                raise RuntimeError(f"postgres exited:\n{self.log()}")
            time.sleep(0.1)
        raise TimeoutError(f"postgres not ready:\n{self.log()}")

    def psql(self, sql: str, dbname: str = "vigil") -> str:
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                              "-d", dbname, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def stop(self, timeout: float = 10.0) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: it ends client sessions instead of waiting.
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(2)
        super().stop(timeout)


def tempdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"vigil-{prefix}-"))
