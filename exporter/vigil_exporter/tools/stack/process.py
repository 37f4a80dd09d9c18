"""Child processes for the local stack: find a binary, start it, wait until it answers, stop it.

Nothing here knows about Prometheus or Redis; `components.py` builds on it.
"""
from __future__ import annotations

import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

# Binary -> the Debian package that ships it (for "install it with apt-get install ...").
DEBIAN_PACKAGES = {
    "redis-server": "redis-server",
    "initdb": "postgresql",
    "postgres": "postgresql",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "victoria-metrics": "victoria-metrics",
}

POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"

T = TypeVar("T")


class StackError(RuntimeError):
    """A component could not be started, or answered wrongly."""


class MissingBinary(StackError):
    def __init__(self, binary: str):
        self.binary = binary
        self.package = DEBIAN_PACKAGES.get(binary, binary)
        super().__init__(f"{binary} is not installed: install the Debian package with "
                         f"`apt-get install {self.package}`")


def find_binary(name: str) -> str:
    """The path of an installed binary; PostgreSQL's come from /usr/lib/postgresql/<newest>/bin."""
    path = shutil.which(name)
    if path:
        return path
    for directory in sorted(glob.glob(POSTGRES_BIN_GLOB), key=_version_key, reverse=True):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise MissingBinary(name)


def _version_key(directory: str) -> tuple:
    version = Path(directory).parent.name
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


# --- ports -----------------------------------------------------------------------------------

def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports that were free a moment ago (all bound at once, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# --- waiting ---------------------------------------------------------------------------------

def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Status and body of a GET; HTTP errors are answers too. Raises OSError when unreachable."""
    import urllib.error  # here: `vigil stack --help` imports this module, not http.client
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def tcp_ok(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], T], timeout: float, interval: float = 0.1,
               alive: Callable[[], bool] = lambda: True) -> T | None:
    """Poll `check` until it returns something true (returned), `alive` turns false or time
    runs out (None)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if not alive() or time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def wait_for(check: Callable[[], T], timeout: float = 15.0, interval: float = 0.1,
             what: str = "") -> T:
    """`wait_until` that raises TimeoutError (naming `what`) instead of returning None."""
    result = wait_until(check, timeout, interval)
    if not result:
        raise TimeoutError(f"timed out after {timeout:g}s waiting for {what or check}")
    return result


# --- processes -------------------------------------------------------------------------------

def _preexec(user: str | None, die_with_parent: bool):
    """Runs in the child before exec: optionally die with the parent, then drop privileges."""
    entry = pwd.getpwnam(user) if user else None

    def preexec():
        if entry:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
        if die_with_parent:  # after setuid, which clears it
            try:
                libc = ctypes.CDLL("libc.so.6", use_errno=True)
                libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
            except OSError:
                pass
    return preexec


class Process:
    """One child process in its own session (so a terminal's Ctrl-C reaches only the parent),
    output appended to a log file, stopped with a signal and then SIGKILL."""

    def __init__(self, name: str, log_path: Path, cwd: Path, user: str | None = None,
                 die_with_parent: bool = True):
        self.name = name
        self.log_path = log_path
        self.cwd = cwd
        self.user = user
        self.die_with_parent = die_with_parent
        self.popen: subprocess.Popen | None = None

    def spawn(self, argv: list[str], env: dict | None = None) -> None:
        if self.running:
            raise StackError(f"{self.name} is already running (pid {self.popen.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(argv)}\n"
                      .encode())
            log.flush()
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.cwd, env=env, start_new_session=True,
                preexec_fn=_preexec(self.user, self.die_with_parent))

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.running else None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def send_signal(self, signum: int) -> None:
        if self.running:
            try:
                os.killpg(self.popen.pid, signum)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 10.0, signum: int = signal.SIGTERM) -> None:
        """`signum` to the process group, then SIGKILL after `timeout` seconds."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.send_signal(signum)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.popen.wait()
        self._reap_group()

    def kill(self) -> None:
        """SIGKILL at once: a crash, for tests."""
        self.stop(timeout=0.0, signum=signal.SIGKILL)

    def _reap_group(self) -> None:
        # Anything the child left in its process group goes with it.
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def log(self, tail: int | None = None) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-tail:]) if tail else text


def traversable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether a user could reach `path` (execute permission on every ancestor)."""
    for directory in [path, *path.parents]:
        try:
            st = directory.stat()
        except OSError:
            return False
        if st.st_uid == uid:
            ok = st.st_mode & 0o100
        elif st.st_gid == gid:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            return False
    return True
