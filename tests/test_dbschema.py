"""The default business schema and its demo data set, on SQLite and PostgreSQL."""
from __future__ import annotations

import random
from datetime import datetime

import pytest
from sqlalchemy import create_engine, func, inspect, select

from vigil_exporter import dbschema
from vigil_exporter.dbschema import agents, messages, tenants

# The columns docs and contract promise (contract.md, "Default business schema").
CONTRACT = {
    "tenants": {"id", "name", "plan", "max_agents", "max_channels", "max_messages_per_day",
                "max_api_calls_per_day", "max_storage_bytes", "max_concurrent_connections",
                "created_at"},
    "users": {"id", "tenant_id", "email", "is_active", "created_at"},
    "api_keys": {"id", "tenant_id", "user_id", "key_prefix", "created_at", "expires_at",
                 "revoked_at"},
    "sessions": {"id", "tenant_id", "user_id", "created_at", "expires_at", "ended_at"},
    "agents": {"id", "tenant_id", "name", "is_active", "created_at"},
    "channels": {"id", "tenant_id", "name", "is_active", "created_at"},
    "messages": {"id", "tenant_id", "channel_id", "agent_id", "direction", "size_bytes",
                 "created_at"},
    "api_calls": {"id", "tenant_id", "endpoint", "status_code", "created_at"},
    "documents": {"id", "tenant_id", "name", "size_bytes", "created_at"},
}
NOW = datetime(2024, 5, 17, 15, 30)


@pytest.fixture(scope="module")
def pg_url(postgres_server):
    postgres_server.sql("DROP DATABASE IF EXISTS vigil_schema", database="postgres")
    postgres_server.sql("CREATE DATABASE vigil_schema", database="postgres")
    return postgres_server.url.rsplit("/", 1)[0] + "/vigil_schema"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'business.db'}"
    pg_url = request.getfixturevalue("pg_url")
    engine = create_engine(pg_url)
    dbschema.metadata.drop_all(engine)
    engine.dispose()
    return pg_url


def test_the_schema_has_the_contract_columns():
    assert {t.name: set(t.c.keys()) for t in dbschema.metadata.sorted_tables} == CONTRACT


def test_create_schema_creates_the_missing_tables_once(url):
    assert sorted(dbschema.create_schema(url)) == sorted(CONTRACT)
    assert dbschema.create_schema(url) == []
    engine = create_engine(dbschema.sync_url(url))
    assert set(inspect(engine).get_table_names()) >= set(CONTRACT)
    engine.dispose()


def test_demo_data_loads_once_with_a_tenant_near_its_limits(url):
    assert dbschema.load_demo_data(url, now=NOW) is True
    assert dbschema.load_demo_data(url, now=NOW) is False  # already there: unchanged
    engine = create_engine(dbschema.sync_url(url))
    today = NOW.replace(hour=0, minute=0)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tenants)).scalar() == 5
        near = conn.execute(select(tenants).where(tenants.c.name == "initech")).mappings().one()
        count = conn.execute(select(func.count()).select_from(agents)
                             .where(agents.c.tenant_id == near["id"])).scalar()
        today_messages = conn.execute(select(func.count()).select_from(messages).where(
            messages.c.tenant_id == near["id"], messages.c.created_at >= today)).scalar()
        future = conn.execute(select(func.count()).select_from(messages)
                              .where(messages.c.created_at > NOW)).scalar()
    engine.dispose()
    assert 0.95 <= count / near["max_agents"] < 1
    assert 0.95 <= today_messages / near["max_messages_per_day"] < 1
    assert future == 0


def test_demo_rows_are_deterministic_for_a_seed():
    first = dbschema.demo_rows(random.Random(7), NOW)
    assert first == dbschema.demo_rows(random.Random(7), NOW)
    assert first != dbschema.demo_rows(random.Random(8), NOW)
    keys = first[dbschema.api_keys]
    assert any(k["revoked_at"] for k in keys) and any(k["expires_at"] is None for k in keys)
    assert any(k["expires_at"] and k["expires_at"] < NOW for k in keys)
    sessions = first[dbschema.sessions]
    assert any(s["ended_at"] for s in sessions)
    assert any(s["expires_at"] < NOW and s["ended_at"] is None for s in sessions)


def test_sync_url_maps_asyncio_drivers():
    assert dbschema.sync_url("sqlite+aiosqlite:///x.db").drivername == "sqlite"
    assert dbschema.sync_url("postgresql+asyncpg://h/db").drivername == "postgresql+psycopg"
    assert dbschema.sync_url("postgres://h/db").drivername == "postgresql+psycopg"


def test_rows_added_after_the_demo_data_get_fresh_ids(postgres_isolated):
    from datetime import datetime

    from sqlalchemy import create_engine, insert

    from vigil_exporter import dbschema
    url = postgres_isolated.url
    assert dbschema.load_demo_data(url)
    engine = create_engine(dbschema.sync_url(url))
    with engine.begin() as conn:
        conn.execute(insert(dbschema.tenants).values(
            name="newcomer", plan="free", max_agents=1, max_channels=1, max_messages_per_day=1,
            max_api_calls_per_day=1, max_storage_bytes=1, max_concurrent_connections=1,
            created_at=datetime(2026, 1, 1)))
    engine.dispose()
