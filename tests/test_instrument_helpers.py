"""Configurable buckets, `set_app_info`, `record_request` and bounded custom families."""
from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from vigil_instrument import (
    Cardinality,
    DuplicateMetricsError,
    Metrics,
    RequestLabels,
    custom_counter,
    custom_gauge,
    custom_histogram,
    from_header,
    instrument_aiohttp,
    record_request,
    set_app_info,
    track_tool,
)


def samples(registry, prefix):
    """{(name, sorted labels): value} of the samples whose name starts with `prefix`."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in registry.collect()
            for s in family.samples if s.name.startswith(prefix) and not s.name.endswith("_created")}


def bucket_bounds(registry, name):
    return sorted({s.labels["le"] for family in registry.collect() for s in family.samples
                   if s.name == f"{name}_bucket"}, key=float)


# --- buckets ---------------------------------------------------------------------------------

async def test_buckets_per_family_reach_the_exposition():
    registry = CollectorRegistry()
    metrics = Metrics(registry, buckets={"http_request_duration_seconds": [0.002, 0.02, 0.2, float("inf")],
                                         "tool_execution_duration_seconds": (1, 30)})

    async def item(request):
        return web.Response(text="ok")

    app = web.Application()
    instrument_aiohttp(app, metrics)
    app.router.add_get("/items/{id}", item)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/items/1")).status == 200
    with track_tool("search", metrics=metrics):
        pass
    assert bucket_bounds(registry, "http_request_duration_seconds") == ["0.002", "0.02", "0.2", "+Inf"]
    assert bucket_bounds(registry, "tool_execution_duration_seconds") == ["1.0", "30.0", "+Inf"]
    assert len(bucket_bounds(registry, "http_request_size_bytes")) == 11   # untouched: the defaults
    assert registry.get_sample_value("tool_execution_duration_seconds_bucket", {"tool": "search", "le": "1.0"}) == 1


@pytest.mark.parametrize("buckets, message", [
    ({"http_request_duration_secs": [1]}, r"\['http_request_duration_secs'\] is not a histogram family"),
    ({"http_requests_total": [1]}, "not a histogram family"),
    ({"http_request_duration_seconds": [1, 0.5]}, "strictly increasing"),
    ({"http_request_duration_seconds": [1, 1]}, "strictly increasing"),
    ({"http_request_duration_seconds": []}, "at least one finite upper bound"),
    ({"http_request_duration_seconds": [float("inf")]}, "at least one finite upper bound"),
    ({"http_request_duration_seconds": [0.1, float("nan")]}, "finite"),
    ({"http_request_duration_seconds": "0.1,1"}, "list of upper bounds"),
    ({"http_request_duration_seconds": [0.1, "1"]}, "must be numbers"),
    ([0.1, 1], "expected {histogram family name"),
])
def test_bad_buckets_get_a_clear_error_and_register_nothing(buckets, message):
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match=message):
        Metrics(registry, buckets=buckets)
    assert list(registry.collect()) == []
    Metrics(registry)  # the registry is still free


# --- app_info --------------------------------------------------------------------------------

def test_app_info_is_one_series_replaced_by_a_later_call():
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    set_app_info("1.4.2", commit="9f2c1e0", environment="prod", metrics=metrics)
    set_app_info("1.4.3", commit="0c0ffee", environment="prod", metrics=metrics)
    assert samples(registry, "app_info") == {
        ("app_info", (("commit", "0c0ffee"), ("environment", "prod"), ("version", "1.4.3"))): 1.0}
    set_app_info("2.0.0", namespace="checkout", metrics=metrics)
    assert samples(registry, "app_info") == {}
    assert samples(registry, "checkout_app_info") == {("checkout_app_info", (("version", "2.0.0"),)): 1.0}
    families = {f.name: f.type for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert families["checkout_app_info"] == "gauge"


@pytest.mark.parametrize("version, labels, message", [
    ("", {}, "non-empty text"),
    ("1.0", {"commit": "x" * 129}, "at most 128 characters"),
    ("1.0", {"build": 7}, "non-empty text"),
    ("1.0", {f"l{i}": "v" for i in range(11)}, "at most 10 labels"),
    ("1.0", {"__name": "v"}, "not a valid label name"),
])
def test_app_info_rejects_unbounded_labels(version, labels, message):
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    with pytest.raises(ValueError, match=message):
        set_app_info(version, metrics=metrics, **labels)
    assert samples(registry, "app_info") == {}


# --- record_request --------------------------------------------------------------------------

async def test_record_request_records_what_the_middleware_records():
    """The same request through the aiohttp middleware and through `record_request` gives the
    same families, label sets and counts (durations differ)."""
    labels = RequestLabels(tenant=from_header("X-Tenant-ID"), max_values={"tenant": 2})
    via_middleware, by_hand = CollectorRegistry(), CollectorRegistry()
    served = Metrics(via_middleware, request_labels=labels)
    manual = Metrics(by_hand, request_labels=labels)

    async def create(request):
        await request.read()
        return web.Response(status=201, body=b"x" * 300)

    app = web.Application()
    instrument_aiohttp(app, served)
    app.router.add_post("/items/{id}", create)
    async with TestClient(TestServer(app)) as client:
        for n, tenant in enumerate(("acme", "globex", "initech")):
            # request ids of one length: a generated one grows by a byte at 10, 100, ... requests
            # served by this process, and the response carries it
            response = await client.post("/items/1", data=b"y" * 100,
                                         headers={"X-Tenant-ID": tenant, "X-Request-ID": f"request-{n}"})
            assert response.status == 201
    response_bytes = via_middleware.get_sample_value(
        "http_response_size_bytes_sum", {"method": "POST", "route": "/items/{id}"}) / 3
    for tenant in ("acme", "globex", "initech"):
        record_request("/items/{id}", 0.001, 201, method="post", request_size=100,
                       response_size=int(response_bytes), labels={"tenant": tenant}, metrics=manual)

    def shape(registry):
        return {key: value for key, value in samples(registry, "http_").items()
                if not key[0].startswith("http_request_duration_seconds") and key[0] != "http_requests_in_flight"}
    assert shape(by_hand) == shape(via_middleware)
    assert by_hand.get_sample_value("http_requests_total", {"method": "POST", "route": "/items/{id}",
                                                            "status": "201", "tenant": "other"}) == 1
    assert by_hand.get_sample_value("http_request_duration_seconds_count",
                                    {"method": "POST", "route": "/items/{id}"}) == 3


def test_record_request_bounds_labels_and_rejects_bad_input():
    registry = CollectorRegistry()
    metrics = Metrics(registry, cardinality=Cardinality(max_values={"route": 20}))
    record_request("/jobs", 0.5, 200, method="PURGE", metrics=metrics)
    for i in range(60):                                      # a route per raw path: capped
        record_request(f"/raw/{i}", 0.01, 200, metrics=metrics)
    routes = {dict(labels)["route"] for name, labels in samples(registry, "http_requests_total")}
    assert len(routes) == 21 and "other" in routes and "/jobs" in routes
    assert registry.get_sample_value("http_requests_total", {"method": "GET", "route": "other",
                                                             "status": "200"}) == 41
    assert registry.get_sample_value("http_requests_total", {"method": "other", "route": "/jobs",
                                                             "status": "200"}) == 1
    assert registry.get_sample_value("http_response_size_bytes_count", {"method": "other", "route": "/jobs"}) == 0
    for bad, message in (({"seconds": -1}, "seconds must be"), ({"seconds": float("nan")}, "seconds must be"),
                         ({"status": 42}, "status must be"), ({"status": "200"}, "status must be"),
                         ({"route": ""}, "route must be"), ({"request_size": -5}, "request_size"),
                         ({"labels": {"tenant": "acme"}}, "declares no per-request labels")):
        call = {"route": "/jobs", "seconds": 0.1, "status": 200, **bad}
        with pytest.raises(ValueError, match=message):
            record_request(call.pop("route"), call.pop("seconds"), call.pop("status"), metrics=metrics, **call)
    assert registry.get_sample_value("http_requests_total", {"method": "GET", "route": "/jobs",
                                                             "status": "200"}) is None


# --- custom families -------------------------------------------------------------------------

def test_custom_families_cap_their_labels_with_other():
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    orders = custom_counter("orders_total", "Orders placed.", ["customer", "plan"],
                            max_values={"customer": 3}, metrics=metrics)
    for i in range(10_000):
        orders.labels(f"customer-{i}", "pro").inc()
    orders.labels(customer="customer-1", plan="pro").inc()
    customers = {dict(labels)["customer"] for _, labels in samples(registry, "orders_total")}
    assert customers == {"customer-0", "customer-1", "customer-2", "other"}
    assert registry.get_sample_value("orders_total", {"customer": "other", "plan": "pro"}) == 9_997

    sessions = custom_gauge("sessions", "Open sessions.", ["tenant"], metrics=metrics)
    for i in range(500):                  # `tenant` shares the library's tenant cap (100)
        sessions.labels(f"t{i}").inc()
    assert len({dict(labels)["tenant"] for _, labels in samples(registry, "sessions")}) == 101

    reports = custom_histogram("report_duration_seconds", "Report runs.", ["kind"], buckets=[1, 10],
                               metrics=metrics)
    reports.labels("daily").observe(5)
    assert bucket_bounds(registry, "report_duration_seconds") == ["1.0", "10.0", "+Inf"]
    jobs = custom_histogram("job_seconds", "Jobs.", metrics=metrics)   # prometheus_client's buckets
    jobs.observe(1)
    assert registry.get_sample_value("job_seconds_bucket", {"le": "1.0"}) == 1
    assert len(bucket_bounds(registry, "job_seconds")) == 15


def test_custom_families_reject_bad_declarations():
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    with pytest.raises(ValueError, match="_total suffix"):
        custom_counter("orders", "Orders.", metrics=metrics)
    with pytest.raises(ValueError, match=r"max_values names \['custmer'\]"):
        custom_counter("orders_total", "Orders.", ["customer"], max_values={"custmer": 3}, metrics=metrics)
    with pytest.raises(ValueError, match="positive whole number"):
        custom_counter("orders_total", "Orders.", ["customer"], max_values=0, metrics=metrics)
    with pytest.raises(ValueError, match="strictly increasing"):
        custom_histogram("job_seconds", "Jobs.", buckets=[2, 1], metrics=metrics)
    with pytest.raises(DuplicateMetricsError):
        custom_counter("http_requests_total", "Clash with the library's own.", metrics=metrics)
    orders = custom_counter("orders_total", "Orders.", ["customer"], metrics=metrics)
    with pytest.raises(ValueError, match="by position or all by name"):
        orders.labels(client="x")
