"""Database collector: is each configured database up, how fast does it answer, how full is the
exporter's own pool, and for PostgreSQL the server-side view of connections and transactions.

A database that is down or stuck is not a collector failure: `collect()` still succeeds and
reports `vigil_db_up 0`. Each database gets its probe run in a task of its own; when it does not
finish within the collector's time budget the task is cancelled and left to wind down in the
background (a stuck driver may take a while to give up), the round reports the database down,
and no second probe is started against it until the first has ended.

PostgreSQL: the connection counts cover the whole server (every client backend), since that is
what tells whether the applications' pools exhaust `max_connections`. Give the exporter's role
`pg_monitor` so that it sees the state of other roles' sessions (else they count as "unknown").
The exporter's own connections use `application_name=vigil-exporter` and autocommit, so its
probes show up under their own name and never count as rollbacks.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from prometheus_client.metrics_core import Metric
from sqlalchemy import text
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vigil_exporter.collectors import postgres
from vigil_exporter.collectors.base import DEGRADED, FAILING, OK, Check, Collector, Job, collector_schema
from vigil_exporter.collectors.families import Families, Spec
from vigil_exporter.collectors.features import FeatureSet, build
from vigil_exporter.collectors.sqlutil import (
    ASYNCPG_QUERY_KEYS,
    dialect_name,
    dispose,
    make_engine,
    sqlite_path,
    unsupported_query_keys,
)
from vigil_exporter.logs import FailureLog, describe_error, redact_url
from vigil_exporter.validation import Duration, Int, Map, Object, Str

log = logging.getLogger("vigil.collectors.database")

# The share of the collector's timeout a probe may use, so that collect() itself returns in time.
BUDGET_SHARE = 0.9
# How long close() waits for a probe that is still winding down.
CLOSE_WAIT = 1.0

# PostgreSQL states always reported, with 0 when no connection is in them.
PG_STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)")
UNKNOWN_STATE = "unknown"  # NULL state: another role's session without pg_read_all_stats
UNNAMED_APPLICATION = "unnamed"
OTHER_APPLICATION = "other"

# vigil_db_pool_<stat>: (the QueuePool method that reads it, help).
POOL_STATS = {
    "size": ("size", "Configured size of the exporter's own connection pool."),
    "checked_out": ("checkedout", "Connections of the exporter's own pool in use."),
    "overflow": ("overflow", "Connections of the exporter's own pool beyond its size."),
    "checked_in": ("checkedin", "Idle connections kept in the exporter's own pool."),
}
# name: (type, help, labels besides `database`); the PostgreSQL features declare their own.
METRICS = {
    "vigil_db_up": ("gauge", "1 if the database answered the probe query, 0 if not.", ()),
    "vigil_db_connect_duration_seconds": (
        "gauge", "Time to get a working connection from the exporter's pool (a new "
        "connection, or a liveness check of a pooled one).", ()),
    "vigil_db_probe_duration_seconds": ("gauge", "Round trip of the probe query SELECT 1.", ()),
    **{f"vigil_db_pool_{stat}": ("gauge", help, ()) for stat, (_, help) in POOL_STATS.items()},
    "vigil_db_info": ("gauge", "Dialect and server version of the database; always 1.",
                      ("dialect", "server_version")),
    "vigil_db_server_connections": (
        "gauge", "PostgreSQL client connections to the whole server by state "
        "(pg_stat_activity; \"unknown\" = not visible to the exporter's role).", ("state",)),
    "vigil_db_server_connections_by_application": (
        "gauge", "PostgreSQL client connections to the whole server by application_name, "
        "the largest ones only; the rest are summed into application=\"other\".",
        ("application",)),
    "vigil_db_server_max_connections": ("gauge", "PostgreSQL max_connections setting.", ()),
    "vigil_db_size_bytes": (
        "gauge", "Size of the database: pg_database_size on PostgreSQL, the file on SQLite.", ()),
    "vigil_db_commits_total": (
        "counter", "Transactions committed in this PostgreSQL database (pg_stat_database).", ()),
    "vigil_db_rollbacks_total": (
        "counter", "Transactions rolled back in this PostgreSQL database (pg_stat_database).", ()),
    "vigil_db_deadlocks_total": (
        "counter", "Deadlocks detected in this PostgreSQL database (pg_stat_database).", ()),
}
SPECS = {**{name: Spec(*spec) for name, spec in METRICS.items()}, **postgres.METRICS}

PG_CONNECTIONS = text(
    "SELECT state, application_name, count(*) FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' GROUP BY state, application_name")
PG_DATABASE = text(
    "SELECT current_setting('max_connections')::int, pg_database_size(current_database()), "
    "xact_commit, xact_rollback, deadlocks FROM pg_stat_database "
    "WHERE datname = current_database()")


def _check_urls(section: dict, path: str, errors) -> None:
    """Every URL parses (the driver is only looked for when connecting)."""
    for name, db in section["databases"].items():
        where = f"{path}.databases.{name}.url".lstrip(".")
        try:
            unsupported = unsupported_query_keys(db["url"])
        except (ArgumentError, ValueError):
            errors.add(where, "expected an SQLAlchemy URL such as postgresql://user:password@"
                              "host:5432/name or sqlite:///path/file.db (the value is not "
                              "shown: it may hold a password)")
            continue
        if unsupported:
            errors.add(where, f"asyncpg does not understand the query key(s) "
                              f"{', '.join(unsupported)} (it takes {', '.join(ASYNCPG_QUERY_KEYS)}); "
                              f"use postgresql+psycopg:// for every libpq parameter")


DATABASE = Object({
    "url": Str(help="SQLAlchemy URL; postgresql:// and sqlite:/// use the asyncio drivers "
                    "psycopg and aiosqlite; postgresql+asyncpg:// uses asyncpg (about 6 MiB "
                    "less memory, fewer libpq parameters)."),
    "connect_timeout": Duration("3s", "Time allowed to connect (psycopg: whole seconds, "
                                      "at least 2)."),
    "pool_size": Int(2, "Connections the exporter may keep open to this database.", minimum=1),
    "max_applications": Int(20, "PostgreSQL: application_name series at most; the rest are "
                                "reported as application=\"other\".", minimum=1),
    "postgres": postgres.SCHEMA,
})


class ServerStats(NamedTuple):
    """PostgreSQL's own view of the server and of the current database (None: not read)."""

    states: dict[str, int]
    applications: dict[str, int]
    max_connections: int | None
    commits: int | None
    rollbacks: int | None
    deadlocks: int | None


@dataclass
class Reading:
    """One round against one database."""

    up: bool
    cause: str = ""
    connect_seconds: float | None = None
    probe_seconds: float | None = None
    size_bytes: int | None = None
    server: ServerStats | None = None


@dataclass
class Target:
    """One configured database: its engine, its probe in flight and its last reading."""

    name: str
    config: dict
    budget: float
    engine: AsyncEngine | None = None
    failures: FailureLog | None = None
    task: asyncio.Task | None = None
    last: Reading | None = None
    dialect: str = field(init=False)
    features: FeatureSet = field(init=False)

    def __post_init__(self):
        self.dialect = dialect_name(self.config["url"])
        enabled = (build(postgres.FEATURES, self.config["postgres"])
                   if self.dialect == "postgresql" else [])
        self.features = FeatureSet(f"database:{self.name}", enabled,
                                   self.failures or FailureLog(log))

    @property
    def safe_url(self) -> str:
        return redact_url(self.config["url"])

    def get_engine(self) -> AsyncEngine:
        if self.engine is None:
            self.engine = make_engine(
                self.config["url"], connect_timeout=self.config["connect_timeout"],
                statement_timeout=self.budget, pool_size=self.config["pool_size"],
                isolation_level="AUTOCOMMIT")  # so our probes never count as rollbacks
        return self.engine

    async def read(self) -> Reading:
        """Probe within the budget; a database that is down or stuck reads as up=0."""
        if self.task is not None and not self.task.done():
            return Reading(False, "the previous probe has not ended yet")
        self.task = asyncio.create_task(self._probe(), name=f"database:{self.name}")
        self.task.add_done_callback(_consume)
        try:
            done, _ = await asyncio.wait({self.task}, timeout=self.budget)
        except asyncio.CancelledError:
            self.task.cancel()
            raise
        if not done:
            self.task.cancel()  # winds down in the background; we don't wait for it
            return Reading(False, f"no answer within {self.budget:g}s")
        if self.task.exception() is not None:
            return Reading(False, describe_error(self.task.exception()))
        return self.task.result()

    async def _probe(self) -> Reading:
        engine = self.get_engine()
        started = time.perf_counter()
        async with engine.connect() as conn:
            connected = time.perf_counter()
            await conn.execute(text("SELECT 1"))
            probed = time.perf_counter()
            reading = Reading(True, connect_seconds=connected - started,
                              probe_seconds=probed - connected)
            if self.dialect == "postgresql":
                reading.server, reading.size_bytes = await _server_stats(
                    conn, self.config["max_applications"])
        if self.dialect == "sqlite":
            reading.size_bytes = _file_size(sqlite_path(self.config["url"]))
        return reading

    async def read_features(self) -> list:
        """The samples of the PostgreSQL features, within the budget; none while the database
        is down (its probe says why)."""
        if self.last is not None and not self.last.up:
            self.features.mark_unreachable("the database is down")
            return []
        try:
            return await asyncio.wait_for(self._read_features(), self.budget)
        except Exception as exc:  # noqa: BLE001 - a database that fails is the probe's to report
            self.features.mark_unreachable(describe_error(exc))
            return []

    async def _read_features(self) -> list:
        async with self.get_engine().connect() as conn:
            return await self.features.read(await postgres.server(conn))

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=CLOSE_WAIT)
        if self.engine is not None:
            await dispose(self.engine)


def _consume(task: asyncio.Task) -> None:
    """Retrieve the outcome of a probe nobody may await any more (no "never retrieved")."""
    if not task.cancelled():
        task.exception()


async def _server_stats(conn: AsyncConnection, max_applications: int
                        ) -> tuple[ServerStats, int | None]:
    """The server's statistics, and the size of the current database."""
    rows = (await conn.execute(PG_CONNECTIONS)).all()
    states = dict.fromkeys(PG_STATES, 0)
    applications: dict[str, int] = {}
    for state, application, count in rows:
        state = state or UNKNOWN_STATE
        application = application or UNNAMED_APPLICATION
        states[state] = states.get(state, 0) + count
        applications[application] = applications.get(application, 0) + count
    row = (await conn.execute(PG_DATABASE)).first()
    max_connections, size_bytes, commits, rollbacks, deadlocks = row or (None,) * 5
    return ServerStats(states, cap_applications(applications, max_applications), max_connections,
                       commits, rollbacks, deadlocks), size_bytes


def cap_applications(counts: dict[str, int], cap: int) -> dict[str, int]:
    """The `cap` applications with most connections; the others summed as "other"."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = dict(ranked[:cap])
    rest = sum(count for _, count in ranked[cap:])
    if rest:
        kept[OTHER_APPLICATION] = kept.get(OTHER_APPLICATION, 0) + rest
    return kept


def _file_size(path: str | None) -> int | None:
    try:
        return os.path.getsize(path) if path else None
    except OSError:
        return None


def pool_stats(engine: AsyncEngine | None) -> dict[str, int]:
    """What the engine's pool can tell (QueuePool: all four; other pools: nothing)."""
    pool = engine.pool if engine is not None else None
    stats = {name: getattr(pool, method)() for name, (method, _) in POOL_STATS.items()
             if callable(getattr(pool, method, None))}
    if "overflow" in stats:  # QueuePool counts from -size; only the excess is overflow
        stats["overflow"] = max(0, stats["overflow"])
    return stats


def server_version(engine: AsyncEngine | None) -> str | None:
    """The version the dialect saw on its first connection, e.g. "15.5"; None before."""
    info = getattr(engine.dialect, "server_version_info", None) if engine else None
    return ".".join(str(part) for part in info) if info else None


def add_target(out: Families, target: Target, reading: Reading) -> None:
    """All the samples of one database."""
    db = target.name
    out.add("vigil_db_up", db, 1 if reading.up else 0)
    out.add("vigil_db_connect_duration_seconds", db, reading.connect_seconds)
    out.add("vigil_db_probe_duration_seconds", db, reading.probe_seconds)
    for stat, value in pool_stats(target.engine).items():
        out.add(f"vigil_db_pool_{stat}", db, value)
    version = server_version(target.engine)
    if version:
        out.add("vigil_db_info", db, 1, target.dialect, version)
    out.add("vigil_db_size_bytes", db, reading.size_bytes)
    if reading.server:
        add_server(out, db, reading.server)


def add_server(out: Families, db: str, server: ServerStats) -> None:
    for state, count in server.states.items():
        out.add("vigil_db_server_connections", db, count, state)
    for application, count in server.applications.items():
        out.add("vigil_db_server_connections_by_application", db, count, application)
    out.add("vigil_db_server_max_connections", db, server.max_connections)
    out.add("vigil_db_commits_total", db, server.commits)
    out.add("vigil_db_rollbacks_total", db, server.rollbacks)
    out.add("vigil_db_deadlocks_total", db, server.deadlocks)


class DatabaseCollector(Collector):
    """Up, latency and pool of every configured database; PostgreSQL server statistics."""

    name = "database"
    config_schema = collector_schema("15s", "5s", {
        "databases": Map(DATABASE, dict, "Databases to watch, by name (the `database` label)."),
    }, check=_check_urls)

    def __init__(self, config: dict):
        super().__init__(config)
        budget = config["timeout"] * BUDGET_SHARE
        self.failures = FailureLog(log)
        self.targets = [Target(name, db, budget, failures=self.failures)
                        for name, db in config["databases"].items()]

    def jobs(self) -> list[Job]:
        """The probe round; and the PostgreSQL features' round, when a database has some."""
        jobs = super().jobs()
        if any(target.features.features for target in self.targets):
            jobs.append(Job("postgres", "collector", self.config["interval"],
                            self.config["timeout"], self.collect_postgres))
        return jobs

    async def collect_postgres(self) -> list[Metric]:
        """One round of the PostgreSQL features of every database (a job of its own, so that
        a slow statistics query never delays the probe that says whether a database is up)."""
        targets = [t for t in self.targets if t.features.features]
        results = await asyncio.gather(*(target.read_features() for target in targets))
        out = Families(SPECS, "database", self.config["interval"])
        for target, samples in zip(targets, results):
            out.add_samples(target.name, samples)
        return out.result()

    async def collect(self) -> list[Metric]:
        readings = await asyncio.gather(*(target.read() for target in self.targets))
        out = Families(SPECS, "database", self.config["interval"])
        for target, reading in zip(self.targets, readings):
            target.last = reading
            self._log(target, reading)
            add_target(out, target, reading)
        return out.result()

    def _log(self, target: Target, reading: Reading) -> None:
        key = f"database {target.name}"
        if reading.up:
            self.failures.recovered(key, url=target.safe_url)
        else:
            self.failures.failed(key, reading.cause, url=target.safe_url)

    def checks(self) -> list[Check]:
        return [check for target in self.targets
                for check in (_check(target), *target.features.checks())]

    async def close(self) -> None:
        await asyncio.gather(*(target.close() for target in self.targets))


def _check(target: Target) -> Check:
    name = f"database:{target.name}"
    reading = target.last
    if reading is None:
        return Check(name, DEGRADED, "not probed yet", critical=True)
    if not reading.up:
        return Check(name, FAILING, reading.cause, critical=True)
    return Check(name, OK, "", reading.probe_seconds, critical=True)
