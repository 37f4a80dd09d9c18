"""The business collector against a real PostgreSQL and an SQLite file with the demo data."""
from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from vigil_exporter import dbschema
from vigil_exporter.collectors.business import (
    BusinessCollector,
    Query,
    check_queries,
    configured_queries,
)
from vigil_exporter.config import ConfigError, load
from vigil_exporter.scheduler import Scheduler
from vigil_exporter.validation import format_duration

INSERT = ("INSERT INTO tenants (name, plan, max_agents, max_channels, max_messages_per_day, "
          "max_api_calls_per_day, max_storage_bytes, max_concurrent_connections, created_at) "
          "VALUES ('intruder', 'free', 1, 1, 1, 1, 1, 1, :now) RETURNING id AS value")


@pytest.fixture(scope="module")
def pg_url(postgres_server):
    postgres_server.sql("DROP DATABASE IF EXISTS vigil_business", database="postgres")
    postgres_server.sql("CREATE DATABASE vigil_business", database="postgres")
    url = postgres_server.url.rsplit("/", 1)[0] + "/vigil_business"
    dbschema.load_demo_data(url)
    return url


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('business') / 'demo.db'}"
    dbschema.load_demo_data(url)
    return url


@pytest.fixture(scope="module")
def asyncpg_url(pg_url):
    """The same database through the other PostgreSQL driver the exporter speaks."""
    return pg_url.replace("postgresql+psycopg://", "postgresql+asyncpg://")


@pytest.fixture(params=["sqlite", "pg", "asyncpg"])
def url(request):
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(params=["pg", "asyncpg"])
def postgres_url(request):
    return request.getfixturevalue(f"{request.param}_url")


def config(url: str, **business):
    return load(None, environ={}, overrides={
        "collectors.database.databases": {"main": {"url": url}},
        "collectors.business": {"default_queries": False, **business}})


def collector(url: str, **business) -> BusinessCollector:
    cfg = config(url, **business)
    return BusinessCollector(cfg.collector("business"), cfg.business_database())


async def run_once(url: str, **business) -> dict:
    """Run every job of a collector once through the real scheduler; jobs by name."""
    scheduler = Scheduler([collector(url, **business)])
    try:
        await scheduler.run_once()
    finally:
        await scheduler.stop()
    return {job.name: job for job in scheduler.jobs}


def samples(job) -> dict:
    """{(sample name, labels as a sorted tuple): value} of a successful job."""
    assert job.success, job.error
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in job.families for s in family.samples}


def per_tenant(job) -> dict[str, float]:
    return {dict(labels)["tenant"]: value for (_, labels), value in samples(job).items()}


def q(name, sql, **extra) -> dict:
    return {"name": name, "help": f"Test {name}.", "sql": sql, **extra}


async def test_default_queries_give_plausible_values(url):
    jobs = await run_once(url, default_queries=True)
    assert all(job.success for job in jobs.values()), {n: j.error for n, j in jobs.items()}
    agents, limit = per_tenant(jobs["vigil_tenant_agents"]), per_tenant(
        jobs["vigil_tenant_agents_limit"])
    assert sorted(agents) == ["acme", "globex", "hooli", "initech", "umbrella"]
    assert agents["initech"] / limit["initech"] >= 0.95
    assert all(agents[t] < limit[t] for t in agents)
    today = samples(jobs["vigil_tenant_messages_today"])
    assert len(today) == 10  # every tenant, both directions
    initech_today = sum(v for (_, labels), v in today.items() if ("tenant", "initech") in labels)
    day_limit = per_tenant(jobs["vigil_tenant_messages_per_day_limit"])["initech"]
    assert 0.95 <= initech_today / day_limit < 1
    total = samples(jobs["vigil_tenant_messages_total"])
    assert all(name == "vigil_tenant_messages_total" for name, _ in total)
    assert sum(total.values()) > sum(today.values())
    storage = per_tenant(jobs["vigil_tenant_storage_bytes"])
    storage_limit = per_tenant(jobs["vigil_tenant_storage_limit_bytes"])
    assert 0.95 <= storage["initech"] / storage_limit["initech"] < 1
    connections = per_tenant(jobs["vigil_tenant_connections"])
    assert sum(connections.values()) == samples(jobs["vigil_business_sessions_active"])[
        ("vigil_business_sessions_active", ())]
    assert samples(jobs["vigil_business_users"])[("vigil_business_users", ())] > 0
    assert jobs["vigil_business_users"].families[0].documentation.endswith(
        "Refreshed in the background every 1m.")


async def test_insert_returning_changes_nothing(url):
    before = await run_once(url, queries=[q("vigil_test_tenants", "SELECT count(*) AS value "
                                                                  "FROM tenants")])
    jobs = await run_once(url, queries=[q("vigil_test_insert", INSERT),
                                        q("vigil_test_tenants", "SELECT count(*) AS value "
                                                                "FROM tenants")])
    assert jobs["vigil_test_insert"].success is False
    assert "read" in jobs["vigil_test_insert"].error.lower()  # read-only transaction / database
    assert samples(jobs["vigil_test_tenants"]) == samples(before["vigil_test_tenants"])


async def test_timed_out_query_is_cancelled_on_the_server(postgres_url, postgres_server):
    started = time.monotonic()
    jobs = await run_once(postgres_url, queries=[
        q("vigil_test_sleep", "SELECT 1 AS value FROM pg_sleep(5)", timeout="1s"),
        q("vigil_test_fast", "SELECT 3 AS value")])
    elapsed = time.monotonic() - started
    assert jobs["vigil_test_sleep"].success is False
    # Our timeout, or the server's statement_timeout if it fired first: both are the same 1s.
    assert "timed out" in jobs["vigil_test_sleep"].error or "statement timeout" in jobs[
        "vigil_test_sleep"].error
    assert elapsed < 2.5
    assert samples(jobs["vigil_test_fast"]) == {("vigil_test_fast", ()): 3}
    deadline = time.monotonic() + 1
    while True:
        active = postgres_server.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            "AND application_name = 'vigil-business:vigil_test_sleep'")
        if active == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert active == 0


async def test_cancelled_run_stops_the_statement_on_the_server(postgres_url,
                                                                 postgres_server):
    """The scheduler's timeout cancels the run long before statement_timeout would."""
    def active() -> int:
        return postgres_server.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            "AND application_name = 'vigil-business:vigil_test_cancel'")

    business = collector(postgres_url, queries=[q("vigil_test_cancel",
                                            "SELECT 1 AS value FROM pg_sleep(30)", timeout="30s")])
    task = asyncio.create_task(business.jobs()[0].run())
    deadline = time.monotonic() + 5
    while await asyncio.to_thread(active) != 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await asyncio.to_thread(active) == 1  # running, under its own application_name
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1
    assert await asyncio.to_thread(active) == 0
    await business.close()


async def test_runaway_sqlite_query_is_interrupted(sqlite_url):
    forever = ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
               "SELECT count(*) AS value FROM n")
    started = time.monotonic()
    jobs = await run_once(sqlite_url, queries=[q("vigil_test_forever", forever, timeout="0.5s"),
                                               q("vigil_test_fast", "SELECT 3 AS value")])
    assert time.monotonic() - started < 2
    assert jobs["vigil_test_forever"].success is False
    assert samples(jobs["vigil_test_fast"]) == {("vigil_test_fast", ()): 3}


async def test_missing_table_fails_only_that_query(url):
    jobs = await run_once(url, queries=[
        q("vigil_test_missing", "SELECT count(*) AS value FROM no_such_table"),
        q("vigil_test_agents", "SELECT count(*) AS value FROM agents")])
    assert jobs["vigil_test_missing"].success is False
    assert "no_such_table" in jobs["vigil_test_missing"].error
    assert samples(jobs["vigil_test_agents"])[("vigil_test_agents", ())] > 0


async def test_series_cap_keeps_the_first_rows_and_counts_the_rest(url):
    jobs = await run_once(url, max_series=3, queries=[
        q("vigil_test_capped", "SELECT name AS tenant, 1 AS value FROM tenants ORDER BY name",
          labels=["tenant"]),
        q("vigil_test_wide", "SELECT name AS tenant, 1 AS value FROM tenants",
          labels=["tenant"], max_series=10)])
    capped = jobs["vigil_test_capped"]
    assert sorted(per_tenant(capped)) == ["acme", "globex", "hooli"]
    assert capped.series_dropped == 2
    wide = jobs["vigil_test_wide"]
    assert len(per_tenant(wide)) == 5 and wide.series_dropped == 0


async def test_values_and_labels_of_any_type(postgres_url):
    jobs = await run_once(postgres_url, queries=[q("vigil_test_types", """
        SELECT * FROM (VALUES ('decimal', 2.5::numeric), ('int', 7::numeric),
                              ('skipped', NULL::numeric), (NULL, 1.0::numeric)) AS t(kind, value)
        """, labels=["kind"])])
    assert samples(jobs["vigil_test_types"]) == {
        ("vigil_test_types", (("kind", "decimal"),)): 2.5,
        ("vigil_test_types", (("kind", "int"),)): 7.0,
        ("vigil_test_types", (("kind", ""),)): 1.0}


async def test_counter_type_is_exposed_as_a_counter(sqlite_url):
    jobs = await run_once(sqlite_url, queries=[
        q("vigil_test_calls_total", "SELECT 5 AS value", type="counter"),
        q("vigil_test_events", "SELECT 6 AS value", type="counter")])
    registry = CollectorRegistry()

    class Snapshot:
        def collect(self):
            return [f for job in jobs.values() for f in job.families]
    registry.register(Snapshot())
    text = generate_latest(registry).decode()
    assert "# TYPE vigil_test_calls_total counter" in text
    assert "vigil_test_calls_total 5.0" in text
    assert "# TYPE vigil_test_events_total counter" in text  # _total added
    assert "vigil_test_events_total 6.0" in text


@pytest.mark.parametrize("query,fault", [
    (q("vigil_x", "SELECT 1 AS value", interval="soon"),
     'collectors.business.queries[0].interval: expected a duration like "15s", got "soon"'),
    ({"name": "vigil_x", "help": "X."}, "collectors.business.queries[0].sql: is required"),
    ({**q("vigil_x", "SELECT 1"), "sqll": "SELECT 1"},
     'collectors.business.queries[0].sqll: unknown key (did you mean "sql"?)'),
    (q("vigil_x_total", "SELECT 1 AS value"),
     "collectors.business.queries[0].name: a gauge must not end in _total"),
    (q("vigil x", "SELECT 1 AS value"), "collectors.business.queries[0].name: expected a string"),
    (q("vigil_x", "SELECT 1 AS value", labels=["__name__"]),
     "collectors.business.queries[0].labels[0]: expected a string"),
    (q("vigil_x", "SELECT 1 AS value", type="histogram"),
     'collectors.business.queries[0].type: expected one of "gauge", "counter"'),
])
def test_config_faults_name_the_key(query, fault):
    with pytest.raises(ConfigError) as raised:
        config("sqlite:///x.db", queries=[query])
    assert any(f.startswith(fault) for f in raised.value.faults), raised.value.faults


def test_duplicate_query_names_are_a_fault():
    with pytest.raises(ConfigError) as raised:
        config("sqlite:///x.db", queries=[q("vigil_x_total", "SELECT 1", type="counter"),
                                          q("vigil_x", "SELECT 1", type="counter")])
    assert any(f.startswith("collectors.business.queries[1].name: ") for f in raised.value.faults)


def test_unknown_database_name_is_a_fault_naming_the_key(sqlite_url):
    with pytest.raises(ConfigError) as raised:
        collector(sqlite_url, database="reporting")
    assert raised.value.faults == [
        'collectors.business.database: expected the name of a database in '
        'collectors.database.databases ("main"), got "reporting"']


def test_a_configured_query_replaces_the_default_of_the_same_name(sqlite_url):
    cfg = config(sqlite_url, default_queries=True, interval="30s",
                 queries=[q("vigil_business_users", "SELECT 1 AS value", interval="2m")])
    queries = {query.name: query for query in configured_queries(cfg.collector("business"))}
    assert len(queries) == 19
    assert queries["vigil_business_users"].sql == "SELECT 1 AS value"
    assert queries["vigil_business_users"].interval == 120
    assert queries["vigil_tenant_agents"].interval == 30
    assert queries["vigil_tenant_agents"].max_series == 20_000  # 10,000 tenants x 2 directions


async def test_check_queries_reports_faults_by_key_path(url):
    def query(i, sql, **extra):
        return Query(f"vigil_q{i}", "Q.", sql, extra.get("value", "value"),
                     tuple(extra.get("labels", ())), "gauge", 60, 5, 500,
                     f"collectors.business.queries[{i}]")
    faults = await check_queries(url, [
        query(0, "SELECT 1 AS value"),
        query(1, "SELECT 1 AS val"),
        query(2, "SELECT name, 1 AS value FROM tenants", labels=["tenant"]),
        query(3, "SELECT count(*) AS value FROM no_such_table"),
        query(4, "SELECT 'x' AS value"),
    ])
    assert len(faults) == 4, faults
    assert faults[0] == ('collectors.business.queries[1].value: column "value" is not in the '
                         "result (columns: val)")
    assert faults[1].startswith('collectors.business.queries[2].labels[0]: column "tenant"')
    assert faults[2].startswith("collectors.business.queries[3].sql: ")
    assert "no_such_table" in faults[2]
    assert faults[3].startswith("collectors.business.queries[4]: ")


async def test_check_queries_passes_the_default_queries(url):
    cfg = config(url, default_queries=True)
    assert await check_queries(url, configured_queries(cfg.collector("business"))) == []


def test_format_duration():
    assert [format_duration(s) for s in (60, 90, 15, 0.5, 3600, 86400 + 1)] == [
        "1m", "1m30s", "15s", "500ms", "1h", "1d1s"]
