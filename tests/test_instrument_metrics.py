"""The metric families themselves: names, registry handling, cardinality bounds, id hashing."""
from __future__ import annotations

import hashlib
import re

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest

from vigil_instrument import (
    Cardinality,
    DuplicateMetricsError,
    Metrics,
    hash_id,
    record_auth_request,
    track_agent,
)
from vigil_instrument._fast import HttpSeries, request_recorder
from vigil_instrument.metrics import HTTP_REQUEST_FAMILIES, SIZE_BUCKETS, _build

# The "Service metrics" of the Vigil contract, as exposed (counters with _total).
CONTRACT_FAMILIES = {
    "http_requests_total": ("method", "route", "status"),
    "http_request_duration_seconds": ("method", "route"),
    "http_request_size_bytes": ("method", "route"),
    "http_response_size_bytes": ("method", "route"),
    "http_requests_in_flight": ("method",),
    "agent_executions_total": ("agent", "status"),
    "agent_execution_duration_seconds": ("agent",),
    "agent_errors_total": ("agent", "error_type"),
    "agents_running": ("agent",),
    "agent_messages_total": ("source_agent", "target_agent", "message_type"),
    "agent_message_size_bytes": ("source_agent", "target_agent", "message_type"),
    "agent_message_processing_duration_seconds": ("message_type",),
    "agent_message_context_tokens": ("source_agent", "target_agent"),
    "agent_message_retries_total": ("source_agent", "target_agent", "message_type"),
    "agent_message_errors_total": ("source_agent", "target_agent", "error_type"),
    "tool_executions_total": ("tool", "status"),
    "tool_execution_duration_seconds": ("tool",),
    "llm_requests_total": ("provider", "model", "status", "tenant", "agent"),
    "llm_errors_total": ("provider", "model", "error_class"),
    "llm_retries_total": ("provider", "model"),
    "llm_request_duration_seconds": ("provider", "model"),
    "llm_time_to_first_token_seconds": ("provider", "model"),
    "llm_streaming_duration_seconds": ("provider", "model"),
    "llm_tokens_total": ("provider", "model", "type", "tenant", "agent"),
    "llm_cost_usd_total": ("provider", "model", "tenant", "agent"),
    "cache_hits_total": ("cache",),
    "cache_misses_total": ("cache",),
    "auth_logins_total": ("provider", "outcome"),
    "auth_token_refreshes_total": ("provider", "outcome"),
    "auth_failed_attempts_total": ("reason",),
    "auth_api_keys_created_total": (),
    "auth_api_keys_revoked_total": (),
    "auth_requests_total": ("auth_type",),
    "websocket_connections": (),
    "websocket_messages_total": ("direction",),
    "queue_depth": ("queue",),
    "vigil_db_pool_size": ("pool",),
    "vigil_db_pool_checked_out": ("pool",),
    "vigil_db_pool_overflow": ("pool",),
    "vigil_db_pool_checked_in": ("pool",),
    "vigil_db_pool_checkout_duration_seconds": ("pool",),
    "vigil_db_pool_connections_created_total": ("pool",),
    "vigil_db_pool_invalidations_total": ("pool",),
    "vigil_db_query_duration_seconds": ("pool", "statement"),
    "redis_client_operations_total": ("client", "command", "status"),
    "redis_client_operation_duration_seconds": ("client", "command"),
    "redis_client_connections_active": ("client",),
}


def test_families_match_the_contract():
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    assert {spec.name: spec.labels for spec in metrics.families()} == CONTRACT_FAMILIES
    exposed = {family.name + ("_total" if family.type == "counter" else "") for family in registry.collect()}
    assert exposed == set(CONTRACT_FAMILIES)
    gauges = {spec.name: spec.multiprocess_mode for spec in metrics.families() if spec.type == "gauge"}
    assert gauges.pop("queue_depth") == "livemostrecent"
    assert set(gauges.values()) == {"livesum"}


def test_families_go_to_the_given_registry_only():
    before = set(REGISTRY._names_to_collectors)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    with track_agent("a", metrics=metrics):
        pass
    assert set(REGISTRY._names_to_collectors) == before
    assert registry.get_sample_value("agent_executions_total", {"agent": "a", "status": "success"}) == 1


def test_double_registration_fails_loudly_and_leaves_the_registry_as_it_was():
    registry = CollectorRegistry()
    Metrics(registry)
    names = set(registry._names_to_collectors)
    with pytest.raises(DuplicateMetricsError, match="already registered"):
        Metrics(registry)
    assert set(registry._names_to_collectors) == names

    clash = CollectorRegistry()
    Counter("agent_errors", "someone else's family", registry=clash)
    with pytest.raises(DuplicateMetricsError):
        Metrics(clash)
    assert set(clash._names_to_collectors) == {"agent_errors", "agent_errors_total", "agent_errors_created"}


def test_allow_list_and_cap_collapse_into_other():
    registry = CollectorRegistry()
    metrics = Metrics(registry, cardinality=Cardinality(allow={"agent": ["planner", "writer"]},
                                                         max_values={"tool": 2}))
    for agent in ("planner", "writer", "intruder-1", "intruder-2"):
        metrics.agent_executions.labels(agent, "success").inc()
    for tool in ("search", "fetch", "t3", "t4", "search"):
        metrics.tool_executions.labels(tool, "success").inc()
    sample = registry.get_sample_value
    assert sample("agent_executions_total", {"agent": "planner", "status": "success"}) == 1
    assert sample("agent_executions_total", {"agent": "other", "status": "success"}) == 2
    assert sample("agent_executions_total", {"agent": "intruder-1", "status": "success"}) is None
    assert sample("tool_executions_total", {"tool": "search", "status": "success"}) == 2
    assert sample("tool_executions_total", {"tool": "other", "status": "success"}) == 2


def test_default_cap_bounds_any_label():
    registry = CollectorRegistry()
    metrics = Metrics(registry, cardinality=Cardinality(default_max_values=50))
    for i in range(1000):
        metrics.cache_hits.labels(f"cache-{i}").inc()
    values = {s.labels["cache"] for m in registry.collect() if m.name == "cache_hits" for s in m.samples
              if s.name == "cache_hits_total"}
    assert len(values) == 51 and "other" in values
    assert registry.get_sample_value("cache_hits_total", {"cache": "other"}) == 950


def test_hash_id_is_a_salted_sha256_prefix():
    assert hash_id(42) == hashlib.sha256(b"42").hexdigest()[:8]
    assert hash_id(42, salt="s3cret") == hashlib.sha256(b"s3cret42").hexdigest()[:8]
    assert hash_id(42, salt="s3cret") != hash_id(42)


def test_ids_never_reach_the_exposition():
    ids = [f"user-{i:05d}-{'x' * 8}" for i in range(300)] + [str(i) for i in range(100, 400)]

    plain = CollectorRegistry()
    metrics = Metrics(plain)
    for principal in ids:
        record_auth_request("jwt", principal, metrics=metrics)
    text = generate_latest(plain).decode()
    assert "principal" not in text
    assert plain.get_sample_value("auth_requests_total", {"auth_type": "jwt"}) == len(ids)

    opted_in = CollectorRegistry()
    metrics = Metrics(opted_in, cardinality=Cardinality(identities=True, id_salt="pepper",
                                                        max_values={"principal": 1000}))
    for principal in ids:
        record_auth_request("api_key", principal, metrics=metrics)
    text = generate_latest(opted_in).decode()
    principals = set(re.findall(r'principal="([^"]*)"', text))
    assert principals == {hash_id(principal, "pepper") for principal in ids}
    assert all(re.fullmatch(r"[0-9a-f]{8}", p) for p in principals)
    for principal in ids:
        assert f'"{principal}"' not in text
        assert hashlib.sha256(principal.encode()).hexdigest()[:8] not in principals  # salted


def test_http_fast_paths_match_the_public_api():
    """The compact store (single process) and the direct value updates (multiprocess mode)
    expose exactly what prometheus_client's own observe()/inc() would."""
    series_registry, direct_registry, public_registry = CollectorRegistry(), CollectorRegistry(), CollectorRegistry()
    series = HttpSeries(HTTP_REQUEST_FAMILIES)
    for collector in series.collectors():
        series_registry.register(collector)
    direct, public = [], []
    for spec in HTTP_REQUEST_FAMILIES:
        for registry, kept in ((direct_registry, direct), (public_registry, public)):
            kept.append(_build(spec))
            registry.register(kept[-1])

    values = [0, 1e-7, .005, .0050001, .1, 2.5, 10, 11, 1e6] + list(SIZE_BUCKETS)
    for labels in (("GET", "/items/{id}"), ("POST", "/items")):
        status = "200" if labels[0] == "GET" else "201"
        via_series = series.recorder(*labels, status)
        requests, *histograms = direct
        via_values = request_recorder(requests.labels(*labels, status), *(h.labels(*labels) for h in histograms))
        for i, seconds in enumerate(values):
            size = int(seconds * 1000) if seconds < 1e5 else 10**9
            sent = -1 if i % 4 == 0 else size
            via_series(seconds, size, sent)
            via_values(seconds, size, sent)
            public[0].labels(*labels, status).inc()
            public[1].labels(*labels).observe(seconds)
            public[2].labels(*labels).observe(size)
            response_size = public[3].labels(*labels)  # exposed even before its first observation
            if sent >= 0:
                response_size.observe(sent)

    def samples(registry):
        return sorted((s.name, tuple(sorted(s.labels.items())), s.value) for m in registry.collect()
                      for s in m.samples if not s.name.endswith("_created"))
    assert samples(series_registry) == samples(public_registry)
    assert samples(direct_registry) == samples(public_registry)
    assert len(samples(public_registry)) > 60


def test_in_flight_sets_expose_what_the_gauge_would():
    """Single process: requests in flight are members of a set per method, counted at scrape
    time; the exposition is the labelled gauge's."""
    from prometheus_client import Gauge

    metrics = Metrics(CollectorRegistry())
    reference = CollectorRegistry()
    gauge = Gauge("http_requests_in_flight", "HTTP requests being served now.", ("method",), registry=reference)
    in_flight = metrics.in_flight_counters(("GET", "POST", "other"))
    gauge.labels("other")  # shown at 0, as the sets are
    requests = [object() for _ in range(3)]
    for request in requests:
        in_flight["GET"].add(request)
        gauge.labels("GET").inc()
    in_flight["POST"].add(requests[0])
    gauge.labels("POST").inc()
    in_flight["GET"].discard(requests[1])
    gauge.labels("GET").dec()

    def in_flight_lines(registry) -> list[str]:
        return sorted(line for line in generate_latest(registry).decode().splitlines() if "in_flight" in line)
    assert in_flight_lines(metrics.registry) == in_flight_lines(reference)
    assert 'http_requests_in_flight{method="GET"} 2.0' in in_flight_lines(reference)


# A service as a developer first writes it: `Metrics()` on the default registry, then middlewares
# and helpers without `metrics=`, on each framework in one process. Printed: each answer's status,
# then the exposition every /metrics handler serves.
DEFAULT_PATH_SERVICE = r'''
import asyncio, json
import httpx
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fastapi import FastAPI
from flask import Flask
from vigil_instrument import (Metrics, PrometheusMiddleware, aiohttp_metrics_handler, asgi_metrics_app,
                              default_metrics, instrument_aiohttp, instrument_flask, record_cache, track_tool)

metrics = Metrics()                                  # the docs' first line
assert default_metrics() is metrics

def work():
    record_cache("items", hit=False)                 # no metrics=: the same families
    with track_tool("search"):
        pass

fastapi_app = FastAPI()

@fastapi_app.get("/items/{item_id}")
async def item(item_id: int) -> dict:
    work()
    return {"item": item_id}

fastapi_app.add_route("/metrics", asgi_metrics_app())
fastapi_app.add_middleware(PrometheusMiddleware)     # no metrics=

async def aiohttp_item(request):
    work()
    return web.json_response({})

flask_app = Flask("defaults")

@flask_app.get("/flask/<int:item_id>")
def flask_item(item_id):
    work()
    return {}

instrument_flask(flask_app)                          # no metrics=

async def main():
    statuses = []
    transport = httpx.ASGITransport(app=fastapi_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        statuses += [(await client.get(path)).status_code for path in ("/items/1", "/metrics", "/items/2")]
        expositions = [(await client.get("/metrics")).text]
    app = web.Application()
    instrument_aiohttp(app)                          # no metrics=
    app.router.add_get("/aio/{id}", aiohttp_item)
    app.router.add_get("/metrics", aiohttp_metrics_handler())
    async with TestClient(TestServer(app)) as client:
        statuses.append((await client.get("/aio/1")).status)
        expositions.append(await (await client.get("/metrics")).text())
    with flask_app.test_client() as client:
        answer = client.get("/flask/1")
        statuses.append(answer.status_code)
        answer.close()                               # a WSGI request is recorded when closed
        expositions.append(client.get("/metrics").text)
    print(json.dumps({"statuses": statuses, "expositions": expositions}))

asyncio.run(main())
'''


def test_the_default_path_shares_one_set_of_metrics():
    """`Metrics()` on the default registry is the set every helper and middleware given no
    `metrics=` uses, on aiohttp, ASGI and WSGI alike: no request answers 500 with
    DuplicateMetricsError, and every `/metrics` handler serves the same counts."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from prometheus_client.parser import text_string_to_metric_families

    root = Path(__file__).resolve().parent.parent
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    run = subprocess.run([sys.executable, "-c", DEFAULT_PATH_SERVICE], cwd=root, env={**env, "PYTHONPATH": str(root)},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["statuses"] == [200, 200, 200, 200, 200]

    def value(text, name, **labels):
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == name and labels.items() <= s.labels.items())
    last = result["expositions"][-1]
    assert value(last, "cache_misses_total", cache="items") == 4
    assert value(last, "tool_executions_total", tool="search", status="success") == 4
    for route in ("/items/{item_id}", "/aio/{id}", "/flask/<int:item_id>"):
        assert value(last, "http_requests_total", route=route, status="200") >= 1, route
    # the ASGI handler made first serves what the others recorded later: one registry
    assert result["expositions"][0].count("cache_misses_total") and value(
        result["expositions"][1], "http_requests_total", route="/items/{item_id}") == 2


def test_exposition_handlers_serve_the_metrics_they_are_given():
    """`Metrics(CollectorRegistry())` with `asgi_metrics_app(metrics)` (and the aiohttp and WSGI
    handlers) serves that registry, not the default one."""
    import asyncio

    from vigil_instrument import asgi_metrics_app, record_cache, wsgi_metrics_app

    metrics = Metrics(CollectorRegistry())
    record_cache("only-here", hit=True, metrics=metrics)
    sent = []

    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": []}
    asyncio.run(asgi_metrics_app(metrics)(scope, None, send))
    assert b'cache_hits_total{cache="only-here"} 1.0' in sent[1]["body"]
    body = b"".join(wsgi_metrics_app(metrics)({"PATH_INFO": "/metrics"}, lambda status, headers: None))
    assert b'cache_hits_total{cache="only-here"} 1.0' in body
    assert b"only-here" not in generate_latest(REGISTRY)
