"""The demo service (`vigil demo`) against real SQLite, PostgreSQL and Redis: with its traffic
generator for a few seconds, its /metrics carries every family a rule or a dashboard panel reads,
rows land in the business tables, route labels stay templates; and the command starts, answers
and stops on SIGTERM."""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select

from tests.sqlite_statements import cancel_mid_statement
from vigil_demo.app import make_app
from vigil_demo.auth import AuthFailure, Tokens
from vigil_demo.cli import settings_from
from vigil_demo.llm import MODELS, FakeLLM
from vigil_demo.settings import Settings
from vigil_demo.state import ENGINE, SERVICES
from vigil_demo.storage import prepare_database
from vigil_demo.traffic import Budget, Traffic
from vigil_exporter import dbschema
from vigil_exporter.cli import build_parser
from vigil_exporter.tools.stack import components
from vigil_exporter.tools.stack.process import free_port
from vigil_instrument import Metrics

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(90)

# The contract's "Service metrics", as sample names (Redis ones apart).
CONTRACT_SERVICE_SAMPLES = {
    "http_requests_total", "http_request_duration_seconds_bucket", "http_request_size_bytes_bucket",
    "http_response_size_bytes_bucket", "http_requests_in_flight", "agent_executions_total",
    "agent_execution_duration_seconds_bucket", "agent_errors_total", "agents_running",
    "agent_messages_total", "agent_message_size_bytes_bucket",
    "agent_message_processing_duration_seconds_bucket", "tool_executions_total",
    "tool_execution_duration_seconds_bucket", "llm_requests_total",
    "llm_request_duration_seconds_bucket", "llm_tokens_total", "llm_cost_usd_total",
    "cache_hits_total", "cache_misses_total",
    "auth_logins_total", "auth_token_refreshes_total", "auth_failed_attempts_total",
    "auth_api_keys_created_total", "auth_api_keys_revoked_total", "auth_requests_total",
    "websocket_connections", "websocket_messages_total", "queue_depth", "vigil_db_pool_size",
    "vigil_db_pool_checked_out", "vigil_db_pool_overflow", "vigil_db_pool_checked_in",
    "vigil_db_pool_checkout_duration_seconds_bucket", "vigil_db_pool_connections_created_total",
    "vigil_db_query_duration_seconds_bucket", "vigil_db_pool_invalidations_total",
}
REDIS_SAMPLES = {"redis_client_operations_total", "redis_client_operation_duration_seconds_bucket",
                 "redis_client_connections_active"}
# Sample names that come from elsewhere: Prometheus itself, or the exporter's process.
NOT_SERVICE = ("up", "ALERTS", "ALERTS_FOR_STATE")
NOT_SERVICE_PREFIXES = ("scrape_", "process_", "python_", "prometheus_", "alertmanager_")
# Counters whose series exist from the start but that a few seconds of traffic may not move.
MAY_STAY_ZERO = {"agent_errors_total", "vigil_db_pool_invalidations_total", "llm_errors_total",
                 "llm_retries_total", "agent_message_errors_total"}
BUSINESS_TABLES = ("tenants", "users", "api_keys", "sessions", "agents", "channels", "messages",
                   "api_calls", "documents")


def is_service_sample(name: str) -> bool:
    if ":" in name or name in NOT_SERVICE or name.startswith(NOT_SERVICE_PREFIXES):
        return False
    return not name.startswith("vigil_") or name.startswith(("vigil_db_pool_", "vigil_db_query_"))


def rule_samples() -> set[str]:
    try:
        from vigil_exporter.tools.bundle import metric_names_used_by_rules
        return set(metric_names_used_by_rules())
    except (ImportError, OSError):
        return set()


def panel_samples() -> set[str]:
    from vigil_exporter.tools.dashboards.lint import targets
    from vigil_exporter.tools.promql import selectors

    names = set()
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        for _, target in targets(json.loads(path.read_text())):
            names |= {s.metric for s in selectors(target.get("expr", "")) if s.metric}
    return names


def required_samples() -> set[str]:
    """What the demo must expose: every service sample name a rule or a panel reads (the pool
    families with a `pool` label), and the contract's list of service metrics."""
    used = {n for n in rule_samples() | panel_samples() if is_service_sample(n)}
    return used | CONTRACT_SERVICE_SAMPLES


def exposed(text: str) -> dict[str, list]:
    """sample name -> samples."""
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def row_counts(url: str) -> dict[str, int]:
    engine = create_engine(dbschema.sync_url(url))
    try:
        with engine.connect() as conn:
            return {t.name: conn.scalar(select(func.count()).select_from(t))
                    for t in dbschema.metadata.sorted_tables}
    finally:
        engine.dispose()


def row_count(url: str, table, condition) -> int:
    engine = create_engine(dbschema.sync_url(url))
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(table).where(condition))
    finally:
        engine.dispose()


def tenant_names(url: str) -> set[str]:
    engine = create_engine(dbschema.sync_url(url))
    try:
        with engine.connect() as conn:
            return set(conn.execute(select(dbschema.tenants.c.name)).scalars())
    finally:
        engine.dispose()


class Demo:
    """The app on a TestServer with a fresh registry, and a client."""

    def __init__(self, settings: Settings):
        self.registry = CollectorRegistry()
        self.app = make_app(settings, Metrics(self.registry))
        self.server = TestServer(self.app, port=free_port())
        self.client = TestClient(self.server)

    async def __aenter__(self):
        await self.client.start_server()
        return self

    async def __aexit__(self, *exc):
        await self.client.close()

    async def metrics(self) -> str:
        response = await self.client.get("/metrics")
        assert response.status == 200
        return await response.text()

    async def traffic(self, rate: float, seconds: float, **options) -> Traffic:
        options.setdefault("burst_interval", 2.0)
        traffic = Traffic(str(self.server.make_url("")), rate, **options)
        await traffic.start()
        try:
            await asyncio.wait_for(traffic.toured.wait(), 20)
            await asyncio.sleep(seconds)
        finally:
            await traffic.stop()
        await asyncio.sleep(0.3)  # the inbox answers the last messages
        return traffic


def fast(url: str, redis_url: str | None = None, **options) -> Settings:
    return Settings(listen="127.0.0.1:0", database_url=url, redis_url=redis_url, latency_scale=0.02,
                    secret="test-secret", **options)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'vigil.db'}"


@pytest.fixture
def pg_url(postgres_server) -> str:
    name = f"demo_{uuid.uuid4().hex[:8]}"
    postgres_server.sql(f"CREATE DATABASE {name}", database="postgres")
    yield postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    postgres_server.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", database="postgres")


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url.rsplit("/", 1)[0] + "/7"


# ---- with traffic -------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", "postgres+redis"])
async def test_traffic_feeds_every_family_and_the_business_tables(backend, request):
    if backend == "sqlite":
        url, redis_url = request.getfixturevalue("sqlite_url"), None
    else:
        url, redis_url = request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url")
    prepare_database(url, seed=42)  # what the app does at start; done here to count before
    before = row_counts(url)
    assert before["tenants"] == len(dbschema.DEMO_TENANTS)

    async with Demo(fast(url, redis_url)) as demo:
        traffic = await demo.traffic(rate=40, seconds=2.5)
        samples = exposed(await demo.metrics())

    assert traffic.stats["requests"] > 60, traffic.stats
    # Without Redis there is no Redis client to measure.
    required = required_samples() | REDIS_SAMPLES
    if not redis_url:
        required -= REDIS_SAMPLES
    missing = sorted(required - set(samples))
    assert not missing, f"families a rule or a panel reads but the demo does not expose: {missing}"
    for name in sorted(required - MAY_STAY_ZERO):
        values = [s.value for s in samples[name]]
        if name.endswith(("_total", "_bucket")):
            assert sum(values) > 0, f"{name}: no observation after the traffic"
    pools = {s.labels.get("pool") for n in samples if n.startswith("vigil_db_") for s in samples[n]}
    assert pools == {"demo"}
    assert [s.value for s in samples["vigil_db_pool_size"]] == [5.0]
    # LLM cost is counted under the tenant that asked (a demo tenant, or a trial tenant the
    # traffic signed up) and the agent that called the model.
    costs = [s for s in samples["llm_cost_usd_total"] if s.value > 0]
    tenants = {s.labels["tenant"] for s in costs} - {"none"}
    assert tenants and tenants <= tenant_names(url), tenants
    assert {s.labels["agent"] for s in costs} <= {"planner", "researcher", "writer", "responder"}

    after = row_counts(url)
    grown = {t for t in BUSINESS_TABLES if after[t] > before[t]}
    assert grown == set(BUSINESS_TABLES), {t: (before[t], after[t]) for t in BUSINESS_TABLES}

    engine = create_engine(dbschema.sync_url(url))
    with engine.connect() as conn:
        directions = dict(conn.execute(
            select(dbschema.messages.c.direction, func.count()).where(
                dbschema.messages.c.id > before["messages"])
            .group_by(dbschema.messages.c.direction)).all())
        endpoints = set(conn.execute(select(dbschema.api_calls.c.endpoint).where(
            dbschema.api_calls.c.id > before["api_calls"])).scalars())
    engine.dispose()
    assert directions.get("in", 0) > 0 and directions.get("out", 0) > 0
    templates = {r.canonical for r in demo.app.router.resources()} | {"unmatched"}
    assert endpoints and endpoints <= templates, endpoints - templates  # templates, never paths


async def test_route_labels_stay_templates(sqlite_url):
    async with Demo(fast(sqlite_url)) as demo:
        rng = random.Random(7)
        for _ in range(300):
            kind = rng.randrange(4)
            token = f"{rng.getrandbits(40):x}"
            path = (f"/api/items/{token}", f"/api/tenants/{token}/usage", f"/{token}/{token}",
                    f"/api/agents/{token}/run")[kind]
            await (demo.client.post(path, data=b"{}") if kind == 3 else demo.client.get(path))
        samples = exposed(await demo.metrics())
    templates = {r.canonical for r in demo.app.router.resources()} | {"unmatched"}
    routes = {s.labels["route"] for s in samples["http_requests_total"]}
    assert routes <= templates, routes - templates
    assert len({tuple(sorted(s.labels.items())) for s in samples["http_requests_total"]}) < 12


# ---- without traffic ----------------------------------------------------------------------

async def test_series_exist_before_any_traffic(sqlite_url):
    async with Demo(fast(sqlite_url)) as demo:
        samples = exposed(await demo.metrics())

    def value(name, **labels):
        return [s.value for s in samples.get(name, []) if s.labels == labels]

    assert value("agent_executions_total", agent="planner", status="error") == [0.0]
    assert value("llm_requests_total", provider="openai", model="gpt-4o", status="error",
                 tenant="none", agent="none") == [0.0]
    assert value("tool_executions_total", tool="web_search", status="error") == [0.0]
    assert value("auth_logins_total", provider="password", outcome="failure") == [0.0]
    assert value("cache_misses_total", cache="items") == [0.0]
    assert value("queue_depth", queue="inbox") == [0.0]
    assert value("vigil_db_pool_size", pool="demo") == [5.0]
    assert "http_requests_total" not in samples  # the health and metrics paths are not counted


async def test_plan_limit_answers_429(sqlite_url):
    async with Demo(fast(sqlite_url)) as demo:
        directory = await (await demo.client.get("/api/directory")).json()
        initech = next(t for t in directory["tenants"] if t["name"] == "initech")
        email = initech["users"][0]
        login = await demo.client.post("/api/login", json={"email": email, "password": "demo"})
        assert login.status == 200, await login.text()
        token = (await login.json())["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        usage = await (await demo.client.get("/api/tenants/initech/usage", headers=auth)).json()
        left = usage["usage"]["messages"]["limit"] - usage["usage"]["messages"]["used"]
        assert 0 < left < 100  # the demo data puts initech at 96 % of its limits
        channel = initech["channels"][0]
        statuses = [(await demo.client.post(f"/api/channels/{channel}/messages",
                                            json={"text": "hi"}, headers=auth)).status
                    for _ in range(left // 2 + 1)]
        assert statuses[:-1] == [202] * (left // 2) and statuses[-1] == 429
        wrong = await demo.client.post("/api/login", json={"email": email, "password": "x"})
        assert wrong.status == 401 and (await wrong.json())["error"] == "bad_password"
        samples = exposed(await demo.metrics())
    failed = {s.labels["reason"]: s.value for s in samples["auth_failed_attempts_total"]}
    assert failed["bad_password"] == 1


async def test_injected_errors_answer_500_until_turned_off(sqlite_url):
    """PUT /admin/faults makes a share of the /api requests fail, to watch an SLO burn."""
    async with Demo(fast(sqlite_url)) as demo:
        assert await (await demo.client.get("/admin/faults")).json() == {"error_ratio": 0.0}
        for bad in ({"error_ratio": 1.5}, {"error_ratio": "all"}, {"ratio": 1}):
            answer = await demo.client.put("/admin/faults", json=bad)
            assert answer.status == 400, bad
        answer = await demo.client.put("/admin/faults", json={"error_ratio": 1})
        assert await answer.json() == {"error_ratio": 1.0}
        failed = [(await demo.client.get("/api/directory")).status for _ in range(5)]
        await demo.client.put("/admin/faults", json={"error_ratio": 0})
        served = (await demo.client.get("/api/directory")).status
        samples = exposed(await demo.metrics())
    assert failed == [500] * 5 and served == 200
    counts = {s.labels["status"]: s.value for s in samples["http_requests_total"]
              if s.labels["route"] == "/api/directory"}
    assert counts == {"500": 5, "200": 1}


# ---- units --------------------------------------------------------------------------------

async def test_a_statement_cancelled_at_shutdown_costs_neither_time_nor_the_last_api_calls(
        sqlite_url):
    """SIGTERM cancels the demo's tasks wherever they are, in a statement too. The API calls
    still buffered are written on the way out, without waiting out SQLite's busy timeout (5 s:
    the cancelled statement kept the file locked, so `vigil demo` was killed, rows lost)."""
    async with Demo(fast(sqlite_url)) as demo:
        cancelled = await cancel_mid_statement(demo.app[ENGINE])  # a quota refresh, say
        demo.app[SERVICES].store.log_api_call(1, "/api/last-call", 200)
        started = time.monotonic()
    seconds = time.monotonic() - started
    assert seconds < 3, f"the shutdown took {seconds:.2f}s"
    calls = dbschema.api_calls
    assert row_count(sqlite_url, calls, calls.c.endpoint == "/api/last-call") == 1
    assert cancelled.cancelled()  # still referenced until here


def test_tokens_sign_expire_and_refuse_tampering():
    tokens = Tokens(b"k")
    good = tokens.encode({"typ": "access", "exp": time.time() + 60, "sub": 1})
    assert tokens.decode(good, "access")["sub"] == 1
    expired = tokens.encode({"typ": "access", "exp": time.time() - 1})
    for token, kind, reason in ((good, "refresh", "invalid_token"),
                                (good[:-2] + "AA", "access", "invalid_token"),
                                ("garbage", "access", "invalid_token"),
                                (expired, "access", "expired_token")):
        with pytest.raises(AuthFailure) as failure:
            tokens.decode(token, kind)
        assert failure.value.reason == reason
    key = tokens.api_key("vk_abc")
    assert tokens.api_key_prefix(key) == "vk_abc"
    with pytest.raises(AuthFailure):
        Tokens(b"other").api_key_prefix(key)


def test_fake_llm_is_deterministic():
    metrics = Metrics(CollectorRegistry())
    model = MODELS["gpt-4o-mini"]
    draws = [[FakeLLM(metrics, seed=seed).draw(model, "hello", 300)[:3] for _ in range(5)]
             for seed in (1, 1, 2)]
    assert draws[0] == draws[1] != draws[2]


def test_budget_keeps_a_tenant_below_its_limit():
    budget = Budget()
    budget.reset("messages", used=899, limit=1000)  # 90 % is 900: one row left
    assert budget.take() and not budget.take()
    budget = Budget()
    budget.reset("messages", used=960, limit=1000)
    assert not budget.take()
    budget = Budget()
    budget.reset("messages", used=0, limit=1000)
    assert sum(budget.take() for _ in range(50)) == 10  # the burst allowance, then the pace


def test_cli_flags_and_environment():
    args = build_parser().parse_args(["demo", "--traffic", "2.5", "--seed", "3"])
    settings = settings_from(args, {"VIGIL_DATABASE_URL": "postgresql://db/x",
                                    "VIGIL_REDIS_URL": "redis://r:6379/0"})
    assert (settings.listen, settings.traffic, settings.seed) == ("0.0.0.0:8080", 2.5, 3)
    assert (settings.database_url, settings.redis_url) == ("postgresql://db/x", "redis://r:6379/0")
    defaults = settings_from(build_parser().parse_args(["demo"]), {})
    assert defaults.database_url == "sqlite:///vigil.db" and defaults.redis_url is None
    assert defaults.traffic == 0
    flags = settings_from(build_parser().parse_args(["demo", "--database-url", "sqlite:///a.db"]),
                          {"VIGIL_DATABASE_URL": "sqlite:///b.db"})
    assert flags.database_url == "sqlite:///a.db"
    with pytest.raises(ValueError):
        settings_from(build_parser().parse_args(["demo", "--listen", "8080"]), {})


def test_vigil_demo_serves_and_stops_on_sigterm(tmp_path):
    # the stack's component without a database URL: the default SQLite file
    demo = components.Demo("demo", tmp_path, free_port(), traffic=20,
                           extra_args=["--latency-scale", "0.05"])
    try:
        demo.start()  # until /metrics answers
        with demo.get("/health/live", timeout=1) as response:
            assert response.status == 200
        time.sleep(1.5)
        exposition = demo.text("/metrics").encode()
        assert b'http_requests_total{method="GET",route="/api/items/{item_id}"' in exposition
        started = time.monotonic()
        demo.stop(timeout=5)  # SIGTERM, SIGKILL after 5 s
        assert time.monotonic() - started < 5
    finally:
        demo.stop()
    assert demo.process.returncode == 0, demo.log()
    assert (demo.dir / "vigil.db").exists()  # the exporter's default, in the working directory
    output = [line for line in demo.log().splitlines() if not line.startswith("--- ")]
    lines = [json.loads(line) for line in output if line.strip()]  # JSON logs, nothing else
    assert any(line["msg"].startswith("demo service listening") for line in lines)
    assert lines[-1]["msg"] == "stopping"
