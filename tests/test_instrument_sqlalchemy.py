"""SQLAlchemy pool and query instrumentation against SQLite and a real PostgreSQL."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import create_async_engine

from vigil_instrument import Metrics, instrument_engine, statement_type


class Samples:
    def __init__(self, pool: str):
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.pool = pool

    def __call__(self, name, **labels):
        return self.registry.get_sample_value(name, {"pool": self.pool, **labels}) or 0.0

    def pool_state(self):
        return {stat: self(f"vigil_db_pool_{stat}") for stat in ("size", "checked_out", "overflow", "checked_in")}


def test_statement_type():
    assert statement_type("  select 1") == "SELECT"
    assert statement_type("INSERT INTO t VALUES (1)") == "INSERT"
    assert statement_type("\nupdate t set a = 1") == "UPDATE"
    assert statement_type("DELETE FROM t") == "DELETE"
    assert statement_type("WITH x AS (SELECT 1) SELECT * FROM x") == "other"
    assert statement_type("CREATE TABLE t (a int)") == "other"


def test_sqlite_pool_and_queries(tmp_path):
    s = Samples("main")
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}", pool_size=2, max_overflow=2)
    instrument_engine(engine, name="main", metrics=s.metrics)
    with pytest.raises(ValueError, match="already instrumented"):
        instrument_engine(engine, name="again", metrics=s.metrics)

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"))
        for i in range(5):
            conn.execute(text("INSERT INTO items (name) VALUES (:n)"), {"n": f"item{i}"})
        conn.execute(text("UPDATE items SET name = 'x' WHERE id = 1"))
        conn.execute(text("DELETE FROM items WHERE id = 2"))
        assert conn.execute(text("SELECT count(*) FROM items")).scalar() == 4

    assert s("vigil_db_query_duration_seconds_count", statement="INSERT") == 5
    assert s("vigil_db_query_duration_seconds_count", statement="UPDATE") == 1
    assert s("vigil_db_query_duration_seconds_count", statement="DELETE") == 1
    assert s("vigil_db_query_duration_seconds_count", statement="SELECT") >= 1
    assert s("vigil_db_query_duration_seconds_count", statement="other") >= 1  # CREATE TABLE
    assert s("vigil_db_pool_connections_created_total") == 1

    held = [engine.connect() for _ in range(3)]
    assert s.pool_state() == {"size": 2, "checked_out": 3, "overflow": 1, "checked_in": 0}
    assert s("vigil_db_pool_connections_created_total") == 3
    for conn in held:
        conn.close()
    # The third connection does not fit in the pool of 2 and is closed on return.
    assert s.pool_state() == {"size": 2, "checked_out": 0, "overflow": 0, "checked_in": 2}
    checkouts = s("vigil_db_pool_checkout_duration_seconds_count")
    assert checkouts >= 4

    with engine.connect() as conn:
        conn.invalidate()
    assert s("vigil_db_pool_invalidations_total") == 1

    engine.dispose()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        assert s("vigil_db_pool_checked_out") == 1
    assert s("vigil_db_pool_checkout_duration_seconds_count") == checkouts + 2
    assert s.pool_state()["checked_out"] == 0


def test_failed_queries_are_timed(tmp_path):
    s = Samples("side")
    engine = create_engine(f"sqlite:///{tmp_path / 'side.db'}")
    instrument_engine(engine, name="side", metrics=s.metrics)
    with engine.connect() as conn:
        with pytest.raises(OperationalError, match="no such table"):
            conn.execute(text("SELECT * FROM no_such_table"))
    assert s("vigil_db_query_duration_seconds_count", statement="SELECT") == 1


async def test_postgres_async_engine(postgres_server):
    s = Samples("pg")
    engine = create_async_engine(postgres_server.url, pool_size=3, max_overflow=0)
    instrument_engine(engine, name="pg", metrics=s.metrics)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS vigil_instr_items"))
            await conn.execute(text("CREATE TABLE vigil_instr_items (id serial PRIMARY KEY, n int)"))
            await conn.execute(text("INSERT INTO vigil_instr_items (n) VALUES (1), (2), (3)"))
            await conn.execute(text("UPDATE vigil_instr_items SET n = n + 1"))
            assert (await conn.execute(text("SELECT sum(n) FROM vigil_instr_items"))).scalar() == 9
            assert s("vigil_db_pool_checked_out") == 1
        with pytest.raises(ProgrammingError):
            async with engine.connect() as conn:
                await conn.execute(text("SELEC broken"))
        async with engine.connect() as first, engine.connect() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            assert s.pool_state() == {"size": 3, "checked_out": 2, "overflow": 0, "checked_in": 0}
        assert s.pool_state() == {"size": 3, "checked_out": 0, "overflow": 0, "checked_in": 2}
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE vigil_instr_items"))
    finally:
        await engine.dispose()

    assert s("vigil_db_query_duration_seconds_count", statement="INSERT") == 1
    assert s("vigil_db_query_duration_seconds_count", statement="UPDATE") == 1
    assert s("vigil_db_query_duration_seconds_count", statement="SELECT") >= 3
    assert s("vigil_db_query_duration_seconds_count", statement="other") >= 4  # DDL + the broken one
    assert s("vigil_db_pool_connections_created_total") == 2
    assert s("vigil_db_pool_checkout_duration_seconds_count") >= 5
