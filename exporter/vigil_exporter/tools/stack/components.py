"""The stack's components: one class per server, each with start, wait-ready, stop, restart, log.

A component owns a directory (`workdir/<name>/`) and a log file (`workdir/logs/<name>.log`),
listens on one port of 127.0.0.1 (`.port`, `.address`, `.url`), and keeps its data across a
stop/start, so `stack.redis.stop(); ...; stack.redis.start()` is an outage and a recovery.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import vigil_exporter
from vigil_exporter.tools.stack.process import (
    Process,
    StackError,
    find_binary,
    http_ok,
    tcp_ok,
    traversable_by,
    wait_until,
)


class Component:
    """Base class: subclasses set `name`, `binaries`, and implement `command()` and `ready()`."""

    name = ""
    binaries: tuple[str, ...] = ()
    stop_signal = signal.SIGTERM
    ready_path: str | None = None  # HTTP path that answers 200 when ready

    def __init__(self, name: str, workdir: Path, port: int, host: str = "127.0.0.1",
                 start_timeout: float = 60.0, extra_args: list[str] | None = None,
                 die_with_parent: bool = True):
        self.name = name
        self.host = host
        self.port = port
        self.dir = workdir / name
        self.start_timeout = start_timeout
        self.extra_args = list(extra_args or [])
        self.process = Process(name, workdir / "logs" / f"{name}.log", self.dir,
                               user=self.run_as(), die_with_parent=die_with_parent)
        self._prepared = False
        self._setup_pending = False

    # --- what subclasses provide ---
    def run_as(self) -> str | None:
        return None

    def prepare(self) -> None:
        """One-time setup before the first start (data directories, config files)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict | None:
        return None

    def ready(self) -> bool:
        return http_ok(self.url + self.ready_path, timeout=1.0)

    def after_first_start(self) -> None:
        """One-time setup that needs the running server (e.g. create a database)."""

    def cleanup(self) -> None:
        """Remove what the component keeps outside its directory (after the final stop)."""

    # --- the common part ---
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    @property
    def running(self) -> bool:
        return self.process.running

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def check_binaries(self) -> None:
        for binary in self.binaries:
            find_binary(binary)

    def start(self, wait: bool = True) -> Component:
        """Start the process (preparing it the first time); wait until it is ready."""
        if not self._prepared:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.prepare()
            self._prepared = True
            self._setup_pending = True
        self.process.spawn(self.command() + self.extra_args, env=self.environment())
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until `ready()`; raise StackError with the log's tail if it exits or times out."""
        timeout = self.start_timeout if timeout is None else timeout
        if wait_until(self.ready, timeout, alive=lambda: self.running):
            if self._setup_pending:
                self._setup_pending = False
                self.after_first_start()
            return
        if not self.running:
            raise StackError(f"{self.name} exited with code {self.process.returncode} during "
                             f"start; last lines of {self.log_path}:\n{self.log(tail=30)}")
        raise StackError(f"{self.name} was not ready on {self.address} after {timeout:g}s; "
                         f"last lines of {self.log_path}:\n{self.log(tail=30)}")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (the server's own shutdown signal), SIGKILL after `timeout`."""
        self.process.stop(timeout, self.stop_signal)

    def kill(self) -> None:
        """SIGKILL: a crash rather than a shutdown."""
        self.process.kill()

    def restart(self, wait: bool = True) -> Component:
        self.stop()
        return self.start(wait=wait)

    def log(self, tail: int | None = None) -> str:
        return self.process.log(tail)

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {self.name} {self.address} {state}>"


class Redis(Component):
    binaries = ("redis-server",)

    @property
    def url(self) -> str:
        return f"redis://{self.address}/0"

    def command(self) -> list[str]:
        return [find_binary("redis-server"), "--bind", self.host, "--port", str(self.port),
                "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                "--daemonize", "no", "--protected-mode", "no",
                "--maxmemory", "256mb"]  # as in docker-compose.yml

    def ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class Postgres(Component):
    """A throwaway cluster: trust authentication on 127.0.0.1, superuser and owner `vigil`,
    database `vigil` (what the compose service's POSTGRES_USER/POSTGRES_DB give). Run as the
    `postgres` system user when started as root."""

    binaries = ("initdb", "postgres")
    stop_signal = signal.SIGINT  # "fast" shutdown: ends client sessions instead of waiting
    user = "vigil"
    database = "vigil"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.datadir = self.dir / "data"
        self._outside: Path | None = None

    def cleanup(self) -> None:
        if self._outside:
            shutil.rmtree(self._outside, ignore_errors=True)
            self._outside = None
            self.datadir = self.dir / "data"
            self._prepared = False

    @property
    def url(self) -> str:
        """SQLAlchemy URL (the exporter and the demo service pick their async driver)."""
        return f"postgresql://{self.user}@{self.address}/{self.database}"

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={self.database}"

    def run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise StackError("running as root needs the `postgres` system user for PostgreSQL "
                             "(apt-get install postgresql creates it)") from None
        return "postgres"

    def prepare(self) -> None:
        owner = self.process.user
        if owner:
            entry = pwd.getpwnam(owner)
            if not traversable_by(self.dir.parent, entry.pw_uid, entry.pw_gid):
                # e.g. a work dir under /root: the cluster lives where postgres can reach it,
                # for the lifetime of the stack (cleanup() removes it)
                self._outside = Path(tempfile.mkdtemp(prefix="vigil-stack-postgres-"))
                self.datadir = self._outside / "data"
                shutil.chown(self._outside, owner, owner)
            shutil.chown(self.dir, owner, owner)
        if (self.datadir / "PG_VERSION").exists():
            return
        done = subprocess.run(
            [find_binary("initdb"), "-D", str(self.datadir), "-U", self.user, "--auth=trust",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, cwd=self.datadir.parent,
            user=owner, group=pwd.getpwnam(owner).pw_gid if owner else None,
            extra_groups=[] if owner else None)
        if done.returncode != 0:
            raise StackError(f"initdb failed:\n{done.stdout}{done.stderr}")

    def command(self) -> list[str]:
        return [find_binary("postgres"), "-D", str(self.datadir), "-p", str(self.port),
                "-h", self.host, "-c", "unix_socket_directories=", "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=100", "-c", "shared_buffers=32MB"]

    def _connect(self, dbname: str):
        import psycopg
        return psycopg.connect(host=self.host, port=self.port, user=self.user, dbname=dbname,
                               connect_timeout=2, autocommit=True)

    def ready(self) -> bool:
        if not tcp_ok(self.host, self.port):
            return False
        try:
            with self._connect("postgres") as conn:
                conn.execute("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - "the database system is starting up" and friends
            return False

    def after_first_start(self) -> None:
        with self._connect("postgres") as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (self.database,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def sql(self, statement: str, params=None) -> list[tuple]:
        """Run one statement in the `vigil` database; the rows it returns (if any)."""
        with self._connect(self.database) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []


def _python_env(extra: dict | None = None) -> dict:
    """The parent's environment without VIGIL_* (the config file decides), and a PYTHONPATH that
    makes the child import this very `exporter` package."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    root = str(Path(vigil_exporter.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


class Exporter(Component):
    """`python -m vigil_exporter serve` with the derived config file."""

    ready_path = "/health/ready"

    def __init__(self, *args, config_text: Callable[[], str], seed: bool = True,
                 env: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.config_text = config_text
        self.seed = seed
        self.env = env or {}
        self.config_path = self.dir / "vigil.yml"
        self.alert_log = self.dir / "alerts.jsonl"

    def prepare(self) -> None:
        self.config_path.write_text(self.config_text())

    def command(self) -> list[str]:
        argv = [sys.executable, "-m", "vigil_exporter", "serve", "--config", str(self.config_path),
                "--listen", self.address]
        return argv + (["--demo"] if self.seed else [])

    def environment(self) -> dict:
        return _python_env(self.env)


class Demo(Component):
    """The instrumented demo service with its traffic generator (`python -m vigil_exporter demo`)."""

    ready_path = "/metrics"

    def __init__(self, *args, database_url: str, redis_url: str, traffic: float = 5.0,
                 env: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.database_url = database_url
        self.redis_url = redis_url
        self.traffic = traffic
        self.env = env or {}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "vigil_exporter", "demo", "--listen", self.address,
                "--database-url", self.database_url, "--redis-url", self.redis_url,
                "--traffic", f"{self.traffic:g}"]

    def environment(self) -> dict:
        return _python_env(self.env)


class Prometheus(Component):
    binaries = ("prometheus",)
    ready_path = "/-/ready"

    def __init__(self, *args, config_text: Callable[[], str], resend_delay: str | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.config_text = config_text
        self.config_path = self.dir / "prometheus.yml"
        self.resend_delay = resend_delay

    def prepare(self) -> None:
        self.config_path.write_text(self.config_text())

    def command(self) -> list[str]:
        argv = [find_binary("prometheus"), f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address={self.address}", f"--web.external-url={self.url}/",
                "--web.enable-lifecycle", "--storage.tsdb.retention.time=1d"]
        if self.resend_delay:
            # firing alerts are sent again this often (default 1m): short in tests
            argv.append(f"--rules.alert.resend-delay={self.resend_delay}")
        return argv

    def reload(self) -> None:
        """Write the config again and POST /-/reload."""
        import urllib.request

        self.config_path.write_text(self.config_text())
        request = urllib.request.Request(self.url + "/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


class Alertmanager(Component):
    binaries = ("prometheus-alertmanager",)
    ready_path = "/-/ready"

    def __init__(self, *args, config_text: Callable[[], str], cluster_port: int | None = None,
                 peers: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.config_text = config_text
        self.cluster_port = cluster_port
        self.peers = peers or []
        self.config_path = self.dir / "alertmanager.yml"

    @property
    def cluster_address(self) -> str | None:
        return f"{self.host}:{self.cluster_port}" if self.cluster_port else None

    def prepare(self) -> None:
        self.config_path.write_text(self.config_text())

    def command(self) -> list[str]:
        argv = [find_binary("prometheus-alertmanager"), f"--config.file={self.config_path}",
                f"--storage.path={self.dir / 'data'}", f"--web.listen-address={self.address}",
                f"--web.external-url={self.url}/"]
        if self.cluster_port is None:
            return argv + ["--cluster.listen-address="]
        argv += [f"--cluster.listen-address={self.cluster_address}",
                 f"--cluster.advertise-address={self.cluster_address}",
                 "--cluster.settle-timeout=5s", "--cluster.reconnect-interval=1s"]
        return argv + [f"--cluster.peer={peer}" for peer in self.peers]

    def reload(self) -> None:
        import urllib.request

        self.config_path.write_text(self.config_text())
        request = urllib.request.Request(self.url + "/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


class VictoriaMetrics(Component):
    binaries = ("victoria-metrics",)
    ready_path = "/health"

    def __init__(self, *args, latency_offset: str | None = None, dedup_interval: str | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.latency_offset = latency_offset
        self.dedup_interval = dedup_interval

    def command(self) -> list[str]:
        argv = [find_binary("victoria-metrics"), f"-httpListenAddr={self.address}",
                f"-storageDataPath={self.dir / 'data'}", "-retentionPeriod=1d"]
        if self.latency_offset:
            # fresh samples become visible after this long (default 30s): short in tests
            argv += [f"-search.latencyOffset={self.latency_offset}", "-search.disableCache"]
        if self.dedup_interval:
            argv.append(f"-dedup.minScrapeInterval={self.dedup_interval}")
        return argv

    def flush(self) -> None:
        """Make everything received so far searchable at once (/internal/force_flush)."""
        from vigil_exporter.tools.stack.process import http_get
        http_get(self.url + "/internal/force_flush", timeout=10)


def wait_all(components: list[Component], timeout: float | None = None) -> None:
    """Wait for several components started with `wait=False`; raise for the first failure."""
    deadline = time.monotonic() + (timeout or max(c.start_timeout for c in components))
    for component in components:
        component.wait_ready(max(0.1, deadline - time.monotonic()))
