"""The stack's components: one class per server, each with start, wait-ready, stop, kill, log.

A component owns a directory (`workdir/<name>/`) and a log file (`workdir/logs/<name>.log`),
listens on one port of 127.0.0.1 (`.port`, `.address`, `.url`), and keeps its data across a
stop/start, so `stack.redis.stop(); ...; stack.redis.start()` is an outage and a recovery.

Each class also runs on its own, as the tests do:

    exporter = Exporter("exporter", workdir, port, config={"collectors": {...}}, seed=False)
    exporter.start()                    # waits for /health/ready
    sample_value(exporter.text("/metrics"), "vigil_db_up", database="main")
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

import vigil_exporter
from vigil_exporter.tools.stack.process import (
    Process,
    StackError,
    find_binary,
    tcp_ok,
    traversable_by,
    wait_until,
)

ConfigText = Callable[[], str]

# How long the local stack keeps its data: the compose defaults (docker-compose.yml's
# PROMETHEUS_RETENTION, PROMETHEUS_RETENTION_SIZE and VICTORIAMETRICS_RETENTION;
# tests/test_compose.py keeps them equal). The one place for the stack's retention flags.
# Prometheus keeps the 90 days of tenant usage reports, and deletes its oldest blocks before
# its data outgrows the size cap, so a disk never fills; VictoriaMetrics (scale-out) keeps a
# year and a month of history (docs/deployment.md, "Retention and disk"). As long as the data
# survives: only a kept --workdir does.
RETENTION = {"prometheus": "90d", "prometheus_size": "10GB", "victoriametrics": "400d"}


class Component:
    """Base class: subclasses set `name`, `binaries`, and implement `command()` and `ready()`."""

    name = ""
    binaries: tuple[str, ...] = ()
    stop_signal = signal.SIGTERM

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
        raise NotImplementedError

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

    def log(self, tail: int | None = None) -> str:
        return self.process.log(tail)

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {self.name} {self.address} {state}>"


class HttpComponent(Component):
    """A server with an HTTP API: ready when `ready_path` answers 200; a small client for it.

    `ssl_context` makes the URL https and is used for every request (a server with TLS);
    `ready_path` overrides the class's (e.g. a path that needs no credentials)."""

    ready_path = "/"

    def __init__(self, *args, ssl_context: ssl.SSLContext | None = None,
                 ready_path: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.ssl_context = ssl_context
        if ready_path is not None:
            self.ready_path = ready_path

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.address}"

    def ready(self) -> bool:
        return self.status(self.ready_path) == 200

    def request(self, path: str, data: bytes | None = None, method: str | None = None,
                headers: dict | None = None, timeout: float = 5.0):
        """The open response to one request; an HTTP error status raises urllib's HTTPError."""
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=headers or {})
        return urllib.request.urlopen(request, timeout=timeout, context=self.ssl_context)

    def get(self, path: str, headers: dict | None = None, timeout: float = 5.0):
        return self.request(path, headers=headers, timeout=timeout)

    def text(self, path: str = "/metrics", headers: dict | None = None,
             timeout: float = 5.0) -> str:
        with self.get(path, headers, timeout) as response:
            return response.read().decode()

    def get_json(self, path: str, params: dict | None = None, timeout: float = 10.0):
        query = "?" + urllib.parse.urlencode(params) if params else ""
        with self.get(path + query, timeout=timeout) as response:
            return json.load(response)

    def post_json(self, path: str, document, timeout: float = 10.0):
        """POST a JSON document; the decoded answer (None when the body is empty)."""
        with self.request(path, json.dumps(document).encode(), "POST",
                          {"Content-Type": "application/json"}, timeout) as response:
            body = response.read()
        return json.loads(body) if body.strip() else None

    def status(self, path: str, timeout: float = 1.0) -> int | None:
        """The HTTP status `path` answers, or None when nothing answers."""
        try:
            with self.get(path, timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (OSError, ValueError):
            return None

    def wait_for(self, path: str, status: int = 200, timeout: float | None = None) -> None:
        """Block until `path` answers `status`; StackError with the log's tail if the process
        exits or time runs out."""
        timeout = self.start_timeout if timeout is None else timeout
        if wait_until(lambda: self.status(path) == status, timeout, interval=0.05,
                      alive=lambda: self.running):
            return
        state = "exited" if not self.running else f"did not answer {status} in {timeout:g}s"
        raise StackError(f"{self.name}: {self.url}{path} {state}; last lines of "
                         f"{self.log_path}:\n{self.log(tail=30)}")


def _config_text(config_text: ConfigText | None, config: dict | None) -> ConfigText:
    """A component's config file: derived text (`config_text()`), or a given `config` dict."""
    if (config_text is None) == (config is None):
        raise ValueError("give exactly one of config_text and config")
    if config_text is not None:
        return config_text
    return lambda: yaml.safe_dump(config, sort_keys=False)


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


class RedisReplica(Redis):
    """A replica of a running Redis `primary` (`--replicaof`), ready once its link to the
    primary is up, i.e. after the first full synchronisation (start the primary with
    `--repl-diskless-sync-delay 0` for that to take moments)."""

    def __init__(self, *args, primary: Redis, **kwargs):
        super().__init__(*args, **kwargs)
        self.primary = primary

    def command(self) -> list[str]:
        return super().command() + ["--replicaof", self.primary.host, str(self.primary.port)]

    def ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                s.sendall(b"INFO replication\r\n")
                return b"master_link_status:up" in s.recv(4096)
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

    def __init__(self, *args, driver: str | None = None, statements: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.driver = driver  # in `url`: e.g. "psycopg" or "asyncpg"; None lets the user pick
        # pg_stat_statements preloaded and created in the database, as in docker-compose.yml
        self.statements = statements
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
        """SQLAlchemy URL (without `driver`, the exporter and the demo service pick theirs)."""
        return self.database_url(self.database)

    def database_url(self, database: str) -> str:
        """The SQLAlchemy URL of another database of this server."""
        scheme = f"postgresql+{self.driver}" if self.driver else "postgresql"
        return f"{scheme}://{self.user}@{self.address}/{database}"

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
        if not (self.datadir / "PG_VERSION").exists():
            self.create_cluster()

    def create_cluster(self) -> None:
        self._run_as_owner([find_binary("initdb"), "-D", str(self.datadir), "-U", self.user,
                            "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])

    def _run_as_owner(self, command: list[str]) -> None:
        """Run a PostgreSQL tool as the user the server runs as; StackError with its output."""
        owner = self.process.user
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=self.datadir.parent,
            user=owner, group=pwd.getpwnam(owner).pw_gid if owner else None,
            extra_groups=[] if owner else None)
        if done.returncode != 0:
            name = Path(command[0]).name
            raise StackError(f"{name} failed:\n{done.stdout}{done.stderr}")

    def command(self) -> list[str]:
        return [find_binary("postgres"), "-D", str(self.datadir), "-p", str(self.port),
                "-h", self.host, "-c", "unix_socket_directories=", "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=100", "-c", "shared_buffers=32MB",
                *(["-c", "shared_preload_libraries=pg_stat_statements"] if self.statements else [])]

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
        if self.statements:
            self.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def sql(self, statement: str, params=None, database: str | None = None) -> list[tuple]:
        """Run a statement (several without `params`) in autocommit, in the `vigil` database
        or `database`; the rows it returns (if any)."""
        with self._connect(database or self.database) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def scalar(self, statement: str, params=None, database: str | None = None):
        """The first column of the first row of `sql()`."""
        return self.sql(statement, params, database)[0][0]


class PostgresReplica(Postgres):
    """A streaming replica of a running `primary`, made with `pg_basebackup -R -C` (a base
    backup with standby.signal, primary_conninfo and a replication slot on the primary named
    after the replica), so it follows the primary over replication on loopback. Its
    `cluster_name` is its name, which the primary shows as the replica's application_name in
    pg_stat_replication."""

    binaries = ("pg_basebackup", "postgres")

    def __init__(self, *args, primary: Postgres, **kwargs):
        super().__init__(*args, **kwargs)
        self.primary = primary

    def create_cluster(self) -> None:
        self._run_as_owner([find_binary("pg_basebackup"), "-h", self.primary.host,
                            "-p", str(self.primary.port), "-U", self.primary.user,
                            "-D", str(self.datadir), "-R", "-X", "stream", "-c", "fast",
                            "-C", "-S", self.slot, "--no-sync"])

    @property
    def slot(self) -> str:
        return self.name.replace("-", "_")

    def command(self) -> list[str]:
        return super().command() + ["-c", f"cluster_name={self.name}"]

    def after_first_start(self) -> None:
        """Nothing to create: the database came with the base backup."""


def _python_env(extra: dict | None = None) -> dict:
    """The parent's environment without VIGIL_* (the config file decides), and a PYTHONPATH that
    makes the child import this very `exporter` package."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    root = str(Path(vigil_exporter.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


class Exporter(HttpComponent):
    """`python -m vigil_exporter serve` with a config file: the stack's derived one
    (`config_text`) or any `config`; `seed` adds --demo, `extra_args` any other flag."""

    ready_path = "/health/ready"

    def __init__(self, *args, config_text: ConfigText | None = None, config: dict | None = None,
                 seed: bool = True, env: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.config_text = _config_text(config_text, config)
        self.seed = seed
        self.env = env or {}
        self.config_path = self.dir / "vigil.yml"
        self.alert_log = self.dir / "alerts.jsonl"

    def prepare(self) -> None:
        self.config_path.write_text(self.config_text())
        self.alert_log.touch()  # `vigil alerts log` finds it before the first alert

    def command(self) -> list[str]:
        argv = [sys.executable, "-m", "vigil_exporter", "serve", "--config", str(self.config_path),
                "--listen", self.address]
        return argv + (["--demo"] if self.seed else [])

    def environment(self) -> dict:
        return _python_env(self.env)


class Demo(HttpComponent):
    """The instrumented demo service with its traffic generator (`python -m vigil_exporter demo`);
    without `database_url`, its default (an SQLite file in its directory), without `redis_url`
    no Redis."""

    ready_path = "/metrics"

    def __init__(self, *args, database_url: str | None = None, redis_url: str | None = None,
                 traffic: float = 5.0, env: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.database_url = database_url
        self.redis_url = redis_url
        self.traffic = traffic
        self.env = env or {}

    def command(self) -> list[str]:
        argv = [sys.executable, "-m", "vigil_exporter", "demo", "--listen", self.address,
                "--traffic", f"{self.traffic:g}"]
        if self.database_url:
            argv += ["--database-url", self.database_url]
        return argv + (["--redis-url", self.redis_url] if self.redis_url else [])

    def environment(self) -> dict:
        return _python_env(self.env)


def route_path(route_prefix: str, path: str) -> str:
    """`path` ("/-/ready") under a server's route prefix ("/" or "/prometheus")."""
    return route_prefix.rstrip("/") + path


class RoutedServer(HttpComponent):
    """Prometheus or Alertmanager: an external URL and an explicit route prefix.

    Both servers move every route under the path of their external URL unless
    `--web.route-prefix` says otherwise. Behind a proxy that strips a sub-path (users open
    https://ops.example.com/prometheus, the proxy asks for /), the external URL keeps the path
    for links and the route prefix is "/", as in docker-compose.yml. Behind a proxy that passes
    the path on, the route prefix is that path; `url` (the API, the readiness check) and the
    configs derived from it follow it."""

    ready_path = "/-/ready"

    def __init__(self, *args, external_url: str | None = None, route_prefix: str = "/", **kwargs):
        super().__init__(*args, **kwargs)
        if not route_prefix.startswith("/"):
            raise ValueError(f"{self.name}: route prefix {route_prefix!r} must start with /")
        self.route_prefix = route_prefix
        self.external_url = external_url

    @property
    def url(self) -> str:
        return super().url + route_path(self.route_prefix, "")

    def web_flags(self) -> list[str]:
        return [f"--web.listen-address={self.address}",
                f"--web.external-url={self.external_url or self.url + '/'}",
                f"--web.route-prefix={self.route_prefix}"]


class Prometheus(RoutedServer):
    binaries = ("prometheus",)

    def __init__(self, *args, config_text: ConfigText | None = None, config: dict | None = None,
                 resend_delay: str | None = None, features: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.config_text = _config_text(config_text, config)
        self.config_path = self.dir / "prometheus.yml"
        self.resend_delay = resend_delay
        self.features = features  # --enable-feature values, e.g. "exemplar-storage"

    def prepare(self) -> None:
        self.config_path.write_text(self.config_text())

    def command(self) -> list[str]:
        argv = [find_binary("prometheus"), f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.dir / 'data'}", *self.web_flags(),
                "--web.enable-lifecycle",
                f"--storage.tsdb.retention.time={RETENTION['prometheus']}",
                f"--storage.tsdb.retention.size={RETENTION['prometheus_size']}"]
        if self.resend_delay:
            # firing alerts are sent again this often (default 1m): short in tests
            argv.append(f"--rules.alert.resend-delay={self.resend_delay}")
        if self.features:
            argv.append(f"--enable-feature={','.join(self.features)}")
        return argv


class Alertmanager(RoutedServer):
    binaries = ("prometheus-alertmanager",)

    def __init__(self, *args, config_text: ConfigText | None = None, config: dict | None = None,
                 cluster_port: int | None = None, peers: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.config_text = _config_text(config_text, config)
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
                f"--storage.path={self.dir / 'data'}", *self.web_flags()]
        if self.cluster_port is None:
            return argv + ["--cluster.listen-address="]
        argv += [f"--cluster.listen-address={self.cluster_address}",
                 f"--cluster.advertise-address={self.cluster_address}",
                 "--cluster.settle-timeout=5s", "--cluster.reconnect-interval=1s"]
        return argv + [f"--cluster.peer={peer}" for peer in self.peers]

    def alerts(self, **filters: str) -> list[dict]:
        """GET /api/v2/alerts, e.g. `alerts(inhibited="false")`."""
        return self.get_json("/api/v2/alerts", filters)

    def post_alerts(self, alerts: list[dict]) -> None:
        """POST alerts as Prometheus sends them."""
        self.post_json("/api/v2/alerts", alerts)


class VictoriaMetrics(HttpComponent):
    binaries = ("victoria-metrics",)
    ready_path = "/health"

    def __init__(self, *args, latency_offset: str | None = None, dedup_interval: str | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.latency_offset = latency_offset
        self.dedup_interval = dedup_interval

    def command(self) -> list[str]:
        argv = [find_binary("victoria-metrics"), f"-httpListenAddr={self.address}",
                f"-storageDataPath={self.dir / 'data'}",
                f"-retentionPeriod={RETENTION['victoriametrics']}"]
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


def sample_value(exposition: str, name: str, **labels: str) -> float | None:
    """The value of the first sample `name` whose labels include `labels` in a text
    exposition (e.g. an exporter's `text("/metrics")`), or None."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def wait_all(components: list[Component], timeout: float | None = None) -> None:
    """Wait for several components started with `wait=False`; raise for the first failure."""
    deadline = time.monotonic() + (timeout or max(c.start_timeout for c in components))
    for component in components:
        component.wait_ready(max(0.1, deadline - time.monotonic()))
