"""The database collector against a real PostgreSQL and real SQLite files."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import psutil
import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tests.sqlite_statements import cancel_mid_statement, write_seconds
from vigil_exporter.collectors.base import FAILING, OK
from vigil_exporter.collectors.database import DatabaseCollector, cap_applications
from vigil_exporter.collectors.sqlutil import async_url, dispose, make_engine, sqlite_path
from vigil_exporter.logs import JsonFormatter
from vigil_exporter.validation import Errors

PASSWORD = "Sup3r-s3cret-pw"


def make_collector(databases: dict, **section) -> DatabaseCollector:
    errors = Errors()
    config = DatabaseCollector.config_schema.validate(
        {**section, "databases": databases}, "collectors.database", errors)
    assert not errors.faults, errors.faults
    return DatabaseCollector(config)


@pytest.fixture
async def collectors():
    """Build collectors with `collectors(databases, **section)`; all are closed afterwards."""
    made = []

    def build(databases, **section):
        made.append(make_collector(databases, **section))
        return made[-1]
    yield build
    for collector in made:
        await collector.close()


def samples(families) -> dict[tuple, float]:
    """{(sample name, (label, value), ...): value} of a collection."""
    return {(s.name, *sorted(s.labels.items())): s.value for f in families for s in f.samples}


def value(families, name: str, **labels):
    wanted = (name, *sorted(labels.items()))
    return samples(families).get(wanted)


def by_label(families, name: str, label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for f in families for s in f.samples if s.name == name}


def render(families) -> str:
    class Snapshot:
        def collect(self):
            return families
    registry = CollectorRegistry()
    registry.register(Snapshot())
    return generate_latest(registry).decode()


PG_DRIVERS = pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])


def on_driver(url: str, driver: str) -> str:
    """The same PostgreSQL URL through one of the two drivers the exporter speaks."""
    return url.replace("postgresql+psycopg://", f"postgresql+{driver}://")


def dsn(server, application: str) -> str:
    return f"{server.dsn} application_name={application}"


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


# --- PostgreSQL ------------------------------------------------------------------------------

@PG_DRIVERS
async def test_postgres_families(postgres_server, collectors, driver):
    collector = collectors({"main": {"url": on_driver(postgres_server.url, driver)}})
    # One name per run: the backend of the previous run's closed connection may still be listed.
    with psycopg.connect(dsn(postgres_server, f"test-app-{driver}")):
        families = await collector.collect()
    db = {"database": "main"}
    assert value(families, "vigil_db_up", **db) == 1
    assert 0 < value(families, "vigil_db_connect_duration_seconds", **db) < 5
    assert 0 < value(families, "vigil_db_probe_duration_seconds", **db) < 5
    assert value(families, "vigil_db_pool_size", **db) == 2
    assert value(families, "vigil_db_pool_checked_in", **db) == 1
    assert value(families, "vigil_db_pool_checked_out", **db) == 0
    assert value(families, "vigil_db_pool_overflow", **db) == 0
    (info,) = [s for f in families for s in f.samples if s.name == "vigil_db_info"]
    assert info.labels["dialect"] == "postgresql" and info.labels["server_version"].startswith("15.")
    states = by_label(families, "vigil_db_server_connections", "state")
    assert states["active"] >= 1  # the exporter's own query
    assert states["idle"] >= 1  # test-app-<driver>
    assert states["idle in transaction"] == 0
    applications = by_label(families, "vigil_db_server_connections_by_application", "application")
    assert applications[f"test-app-{driver}"] == 1
    assert applications["vigil-exporter"] >= 1
    assert sum(applications.values()) == sum(states.values())
    assert value(families, "vigil_db_server_max_connections", **db) == 50
    assert value(families, "vigil_db_size_bytes", **db) > 1_000_000
    for counter in ("commits", "rollbacks", "deadlocks"):
        assert value(families, f"vigil_db_{counter}_total", **db) >= 0
    assert collector.checks()[0].status == OK  # the probe; the features have their own


async def test_postgres_counters_increase(postgres_server, collectors):
    collector = collectors({"main": {"url": postgres_server.url}})
    before = value(await collector.collect(), "vigil_db_commits_total", database="main")
    postgres_server.sql("CREATE TABLE IF NOT EXISTS t_commits (n int); INSERT INTO t_commits VALUES (1)")
    after = value(await collector.collect(), "vigil_db_commits_total", database="main")
    assert after > before


async def test_postgres_application_cap(postgres_server, collectors):
    collector = collectors({"main": {"url": postgres_server.url, "max_applications": 3}})
    connections = [psycopg.connect(dsn(postgres_server, f"capped-{i}")) for i in range(5)]
    try:
        families = await collector.collect()
    finally:
        for conn in connections:
            conn.close()
    applications = by_label(families, "vigil_db_server_connections_by_application", "application")
    assert len(applications) == 4 and applications["other"] >= 2
    states = by_label(families, "vigil_db_server_connections", "state")
    assert sum(applications.values()) == sum(states.values())


def test_cap_applications_keeps_the_largest():
    counts = {"a": 5, "b": 1, "c": 3, "other": 1, "d": 1}
    assert cap_applications(counts, 2) == {"a": 5, "c": 3, "other": 3}
    assert cap_applications(counts, 10) == counts


@PG_DRIVERS
async def test_postgres_down_at_start_then_recovers(postgres_isolated, collectors, caplog, driver):
    postgres_isolated.stop()
    collector = collectors({"main": {"url": on_driver(postgres_isolated.url, driver)}})
    caplog.set_level(logging.INFO, logger="vigil.collectors.database")
    for _ in range(2):
        families = await collector.collect()
        assert value(families, "vigil_db_up", database="main") == 0
    check = collector.checks()[0]
    assert check.status == FAILING and check.critical and "refused" in check.message.lower()
    failing = [r for r in caplog.records if "failing" in r.getMessage()]
    assert len(failing) == 1 and failing[0].exc_info is None  # once per cause, no traceback

    postgres_isolated.start()
    families = await collector.collect()
    assert value(families, "vigil_db_up", database="main") == 1
    assert value(families, "vigil_db_server_max_connections", database="main") == 50
    assert collector.checks()[0].status == OK
    assert any("recovered" in r.getMessage() for r in caplog.records)

    # A restart while running: the pooled connection is dead, the next checkout reconnects.
    postgres_isolated.stop()
    assert value(await collector.collect(), "vigil_db_up", database="main") == 0
    postgres_isolated.start()
    assert value(await collector.collect(), "vigil_db_up", database="main") == 1


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+asyncpg"])
async def test_silent_socket_is_down_within_the_timeout(silent_port, collectors, caplog, scheme):
    url = f"{scheme}://vigil:{PASSWORD}@127.0.0.1:{silent_port}/vigil"
    collector = collectors({"stuck": {"url": url, "connect_timeout": "10s"}}, timeout="1s")
    caplog.set_level(logging.DEBUG)
    for _ in range(2):
        started = time.monotonic()
        families = await collector.collect()
        assert time.monotonic() - started < 1.3
        assert value(families, "vigil_db_up", database="stuck") == 0
    check = collector.checks()[0]
    assert check.status == FAILING and check.critical
    started = time.monotonic()
    await collector.close()
    assert time.monotonic() - started < 1.5
    logged = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert f'"url": "{scheme}://vigil:***@127.0.0.1' in logged  # which database, redacted
    for output in (render(families), logged, check.message):
        assert PASSWORD not in output


@PG_DRIVERS
async def test_server_frozen_mid_session(postgres_isolated, collectors, driver):
    """A server that stops answering on an established connection (SIGSTOP)."""
    collector = collectors({"main": {"url": on_driver(postgres_isolated.url, driver)}},
                           timeout="1s")
    assert value(await collector.collect(), "vigil_db_up", database="main") == 1
    freeze(postgres_isolated, signal.SIGSTOP)
    try:
        for _ in range(2):
            started = time.monotonic()
            families = await collector.collect()
            assert time.monotonic() - started < 1.3
            assert value(families, "vigil_db_up", database="main") == 0
        started = time.monotonic()
        await collector.close()
        assert time.monotonic() - started < 1.5
    finally:
        freeze(postgres_isolated, signal.SIGCONT)


def freeze(server, sig) -> None:
    """Signal the postmaster and every backend (each backend is a session of its own)."""
    postmaster = psutil.Process(server.pid)
    for process in [postmaster, *postmaster.children(recursive=True)]:
        process.send_signal(sig)


# --- SQLite ----------------------------------------------------------------------------------

def make_sqlite(path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO items (body) VALUES (?)", [("x" * 500,)] * 100)
    conn.close()


async def test_sqlite_families(tmp_path, collectors):
    path = tmp_path / "app.db"
    make_sqlite(path)
    collector = collectors({"main": {"url": f"sqlite:///{path}"}, "memory": {"url": "sqlite://"}})
    families = await collector.collect()
    for name in ("main", "memory"):
        assert value(families, "vigil_db_up", database=name) == 1
        assert value(families, "vigil_db_probe_duration_seconds", database=name) > 0
    assert value(families, "vigil_db_size_bytes", database="main") == os.path.getsize(path)
    assert value(families, "vigil_db_size_bytes", database="memory") is None
    assert value(families, "vigil_db_pool_size", database="main") == 2
    info = by_label(families, "vigil_db_info", "dialect")
    assert info == {"sqlite": 1}
    assert not by_label(families, "vigil_db_server_connections", "state")


async def test_sqlite_missing_directory_is_down(tmp_path, collectors):
    collector = collectors({"main": {"url": f"sqlite:///{tmp_path}/nowhere/app.db"}})
    assert value(await collector.collect(), "vigil_db_up", database="main") == 0
    await asyncio.sleep(0.1)  # aiosqlite stops its worker thread after a failed connect


@pytest.mark.parametrize("write_first", [None, "INSERT INTO items (body) VALUES ('cancelled')"])
async def test_a_cancelled_sqlite_statement_does_not_keep_the_file_locked(tmp_path, write_first):
    """Every engine of the exporter and the demo: a task cancelled mid-statement (a read, or
    one in a write transaction) leaves the file free for the next writer at once. SQLite kept
    such a connection open after SQLAlchemy closed it, lock and transaction included, until
    the garbage collector freed the cancelled statement's cursor."""
    path = tmp_path / "app.db"
    make_sqlite(path)
    engine = make_engine(f"sqlite:///{path}", connect_timeout=5)
    try:
        cancelled = await cancel_mid_statement(engine, write_first=write_first)
        seconds = await asyncio.to_thread(
            write_seconds, path, "INSERT INTO items (body) VALUES ('next')", busy_timeout=2)
        assert seconds < 1, f"the write waited {seconds:.2f}s for the lock"
        assert cancelled.cancelled()  # still referenced until here
    finally:
        await engine.dispose()
    with sqlite3.connect(path) as conn:
        bodies = [body for (body,) in conn.execute("SELECT body FROM items WHERE id > 100")]
    conn.close()
    assert bodies == ["next"]  # the cancelled transaction was rolled back


def test_a_connect_cancelled_at_shutdown_leaves_no_thread_behind_the_loop(tmp_path,
                                                                           monkeypatch):
    """A shutdown that cancels a job while it connects: aiosqlite finishes the connect and
    closes it in its own thread. dispose() waits for that thread, so nothing posts to the
    event loop after it closed ("Event loop is closed", raised in the thread, seen from an
    in-process `vigil serve` that could not listen)."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    raised = []
    monkeypatch.setattr(threading, "excepthook", raised.append)

    async def cancel_a_connect(steps: int) -> list[str]:
        engine = make_engine(url)

        async def use():
            async with engine.connect():
                pass
        task = asyncio.create_task(use())
        for _ in range(steps):  # the connect is at a different point each time
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await dispose(engine)
        return worker_threads()

    before = worker_threads()
    left = {steps: set(asyncio.run(cancel_a_connect(steps))) - before for steps in range(1, 6)}
    time.sleep(0.2)
    assert not any(left.values()), f"threads alive when the loop closed: {left}"
    assert not raised, [f"{args.exc_type.__name__}: {args.exc_value}" for args in raised]


def worker_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if "_connection_worker_thread" in t.name}


# --- exposition ------------------------------------------------------------------------------

async def test_promtool_accepts_the_exposition(postgres_server, tmp_path, collectors,
                                               silent_port):
    path = tmp_path / "app.db"
    make_sqlite(path)
    collector = collectors({
        "pg": {"url": postgres_server.url},
        "lite": {"url": f"sqlite:///{path}"},
        "down": {"url": f"postgresql://u:{PASSWORD}@127.0.0.1:{silent_port}/x"},
    }, timeout="1s", interval="30s")
    text = render(await collector.collect())
    assert "Refreshed in the background every 30s." in text
    assert PASSWORD not in text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True)
    assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check


# --- configuration and helpers ---------------------------------------------------------------

def test_config_defaults_and_faults():
    errors = Errors()
    config = DatabaseCollector.config_schema.validate(
        {"databases": {"main": {"url": "sqlite:///vigil.db"}}}, "collectors.database", errors)
    assert not errors.faults
    assert (config["interval"], config["timeout"]) == (15.0, 5.0)
    main = config["databases"]["main"]
    assert main == {"url": "sqlite:///vigil.db", "connect_timeout": 3.0, "pool_size": 2,
                    "max_applications": 20, "postgres": main["postgres"]}
    assert main["postgres"]["statements"] == {"enabled": True, "limit": 20, "query_length": 120}
    errors = Errors()
    DatabaseCollector.config_schema.validate(
        {"databases": {"main": {"url": "not a url", "max_aplications": 3}}},
        "collectors.database", errors)
    faults = [str(f) for f in errors.faults]
    assert faults == ['collectors.database.databases.main.max_aplications: unknown key '
                      '(did you mean "max_applications"?)']
    errors = Errors()
    DatabaseCollector.config_schema.validate(
        {"databases": {"a": {"url": "not a url"}, "b": {"url": f"postgresql://u:{PASSWORD}@h:x/d"}}},
        "collectors.database", errors)
    faults = [str(f) for f in errors.faults]  # never the value: it may hold a password
    assert [f.split(":")[0] for f in faults] == ["collectors.database.databases.a.url",
                                                 "collectors.database.databases.b.url"]
    assert all("expected an SQLAlchemy URL such as" in f and "not a url" not in f
               and PASSWORD not in f for f in faults)
    errors = Errors()
    DatabaseCollector.config_schema.validate(
        {"databases": {"a": {"url": "postgresql+asyncpg://h/d?sslmode=require&sslrootcert=/ca.pem"},
                       "b": {"url": "postgresql://h/d?sslrootcert=/ca.pem"}}},
        "collectors.database", errors)
    (fault,) = [str(f) for f in errors.faults]
    assert fault.startswith("collectors.database.databases.a.url: asyncpg does not understand "
                            "the query key(s) sslrootcert (it takes application_name, ")
    assert fault.endswith("use postgresql+psycopg:// for every libpq parameter")


@pytest.mark.parametrize("given, expected", [
    ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
    ("postgres://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
    ("postgresql+psycopg2://h/db", "postgresql+psycopg://h/db"),
    ("postgresql+asyncpg://h/db", "postgresql+asyncpg://h/db"),
    ("sqlite:///vigil.db", "sqlite+aiosqlite:///vigil.db"),
    ("sqlite://", "sqlite+aiosqlite://"),
    ("mysql+aiomysql://h/db", "mysql+aiomysql://h/db"),
])
def test_async_url(given, expected):
    assert async_url(given).render_as_string(hide_password=False) == expected


def test_sqlite_path():
    assert sqlite_path("sqlite:///vigil.db") == "vigil.db"
    assert sqlite_path("sqlite:////var/lib/vigil.db") == "/var/lib/vigil.db"
    assert sqlite_path("sqlite:///file:data.db?mode=ro&uri=true") == "data.db"
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql://h/db") is None


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+asyncpg"])
async def test_make_engine_postgres_session_settings(postgres_server, scheme):
    from sqlalchemy import text
    url = postgres_server.url.replace("postgresql+psycopg", scheme)
    engine = make_engine(url, statement_timeout=0.2, read_only=True)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SHOW application_name"))).scalar() == "vigil-exporter"
            assert (await conn.execute(text("SHOW statement_timeout"))).scalar() == "200ms"
            with pytest.raises(Exception, match="read-only"):
                await conn.execute(text("CREATE TABLE t_read_only (n int)"))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+asyncpg"])
async def test_url_query_keys_reach_the_session(postgres_server, scheme):
    """libpq-style keys in the URL work with both drivers, and win over the engine's defaults."""
    from sqlalchemy import text
    url = (postgres_server.url.replace("postgresql+psycopg", scheme)
           + "?application_name=from-url&options=-c%20work_mem%3D5MB"
           + "&sslmode=disable&connect_timeout=4")
    engine = make_engine(url, statement_timeout=0.5)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SHOW application_name"))).scalar() == "from-url"
            assert (await conn.execute(text("SHOW work_mem"))).scalar() == "5MB"
            assert (await conn.execute(text("SHOW statement_timeout"))).scalar() == "500ms"
    finally:
        await engine.dispose()


async def test_make_engine_sqlite_read_only(tmp_path):
    from sqlalchemy import text
    path = tmp_path / "ro.db"
    make_sqlite(path)
    engine = make_engine(f"sqlite:///{path}", read_only=True)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM items"))).scalar() == 100
            with pytest.raises(Exception, match="readonly"):
                await conn.execute(text("DELETE FROM items"))
    finally:
        await engine.dispose()


async def test_close_without_collect():
    collector = make_collector({"main": {"url": "sqlite://"}})
    assert collector.checks()[0].status != FAILING
    await asyncio.wait_for(collector.close(), 1)
