"""Exemplars: trace and span ids of the current OpenTelemetry span on the HTTP, agent, tool and
LLM histograms, served only with OpenMetrics, stored and read back by a real Prometheus."""
from __future__ import annotations

import json
import time
import urllib.request

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.test_instrument_wsgi import serve
from vigil_exporter.tools.stack.components import Prometheus
from vigil_exporter.tools.stack.process import free_port
from vigil_instrument import (
    Metrics,
    PrometheusMiddleware,
    asgi_metrics_app,
    instrument_flask,
    track_agent,
    track_llm,
    track_tool,
)

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


def span(trace_id: int = TRACE_ID, span_id: int = SPAN_ID, sampled: bool = True):
    """What an OpenTelemetry SDK or instrumentation makes current while a request is served."""
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return trace.use_span(NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)))


class TraceparentASGI:
    """Stands in for OpenTelemetry's ASGI instrumentation: the W3C traceparent's span is current."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        header = dict(scope.get("headers", ())).get(b"traceparent")
        if header is None:
            return await self.app(scope, receive, send)
        _, trace_id, span_id, flags = header.decode().split("-")
        with span(int(trace_id, 16), int(span_id, 16), flags == "01"):
            await self.app(scope, receive, send)


def exemplars_of(text: str, family: str) -> list:
    return [s.exemplar for f in text_string_to_metric_families(text) if f.name == family
            for s in f.samples if s.exemplar is not None]


async def test_asgi_exemplars_only_with_openmetrics_and_sampled_spans():
    metrics = Metrics(CollectorRegistry())
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        with track_tool("search", metrics=metrics):
            pass
        return {"item": item_id}

    app.add_route("/metrics", asgi_metrics_app(metrics))
    app.add_middleware(PrometheusMiddleware, metrics=metrics)
    traced = TraceparentASGI(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=traced), base_url="http://t") as client:
        sampled = f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"
        assert (await client.get("/items/1", headers={"traceparent": sampled})).status_code == 200
        unsampled = f"00-{0xABC:032x}-{0xDEF:016x}-00"
        assert (await client.get("/items/2", headers={"traceparent": unsampled})).status_code == 200
        assert (await client.get("/items/3")).status_code == 200
        text = (await client.get("/metrics")).text
        openmetrics = await client.get("/metrics", headers={"Accept": OPENMETRICS})

    assert "trace_id" not in text                       # the text format has no exemplars
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    http = exemplars_of(openmetrics.text, "http_request_duration_seconds")
    assert [e.labels for e in http] == [{"trace_id": f"{TRACE_ID:032x}", "span_id": f"{SPAN_ID:016x}"}]
    assert 0 < http[0].value < 1 and abs(http[0].timestamp.sec - time.time()) < 60
    assert len(exemplars_of(openmetrics.text, "tool_execution_duration_seconds")) == 1
    assert exemplars_of(openmetrics.text, "http_request_size_bytes") == []   # durations only


@pytest.mark.filterwarnings("ignore:Inheritance class _InstrumentedApplication:DeprecationWarning")
async def test_aiohttp_exemplars_are_the_server_span_of_opentelemetry():
    """OpenTelemetry's aiohttp instrumentation with the SDK (AioHttpServerInstrumentor puts its
    middleware first in every application): `instrument_aiohttp` goes inside it, so the
    duration's exemplar is the server span it started (a child of the caller's traceparent), the
    same as the LLM call's inside the handler; an unsampled caller gives none."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
    from opentelemetry.sdk.trace import TracerProvider

    from vigil_instrument import aiohttp_metrics_handler, instrument_aiohttp

    metrics = Metrics(CollectorRegistry())

    async def item(request):
        with track_llm("openai", "gpt-4o", metrics=metrics) as call:
            call.usage(prompt_tokens=3, completion_tokens=1)
        return web.json_response({"item": request.match_info["item_id"]})

    instrumentor = AioHttpServerInstrumentor()
    instrumentor.instrument(tracer_provider=TracerProvider())
    try:
        app = web.Application()
        instrument_aiohttp(app, metrics)
        app.router.add_get("/items/{item_id}", item)
        app.router.add_get("/metrics", aiohttp_metrics_handler(metrics))
        async with TestClient(TestServer(app)) as client:
            sampled = f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"
            assert (await client.get("/items/1", headers={"traceparent": sampled})).status == 200
            unsampled = f"00-{0xABC:032x}-{0xDEF:016x}-00"
            assert (await client.get("/items/2", headers={"traceparent": unsampled})).status == 200
            text = await (await client.get("/metrics")).text()
            openmetrics = await (await client.get("/metrics", headers={"Accept": OPENMETRICS})).text()
    finally:
        instrumentor.uninstrument()  # web.Application is aiohttp's own again

    assert "trace_id" not in text
    http = [e.labels for e in exemplars_of(openmetrics, "http_request_duration_seconds")]
    llm = [e.labels for e in exemplars_of(openmetrics, "llm_request_duration_seconds")]
    assert len(http) == 1 and http[0]["trace_id"] == f"{TRACE_ID:032x}"
    assert http[0]["span_id"] != f"{SPAN_ID:016x}"   # the server span, not the caller's
    assert llm == http


async def test_asgi_exemplars_are_the_server_span_of_opentelemetry(caplog):
    """OpenTelemetry's ASGI middleware with the SDK, outside ours as the docs ask (added after
    `app.add_middleware(PrometheusMiddleware)`, or wrapping an app given to `instrument_starlette`):
    the duration's exemplar is its server span. Added inside `instrument_starlette`'s, where the
    span is over before the request is recorded, it is reported once at start-up."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.trace import TracerProvider

    from vigil_instrument import instrument_starlette

    provider = TracerProvider()

    def service(metrics):
        app = FastAPI()

        @app.get("/items/{item_id}")
        async def item(item_id: int):
            return {"item": item_id}
        return app

    async def exemplars_after_one_request(app, metrics):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/items/1", headers={
                "traceparent": f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"})).status_code == 200
        from prometheus_client.openmetrics.exposition import generate_latest
        return exemplars_of(generate_latest(metrics.registry).decode(), "http_request_duration_seconds")

    added = Metrics(CollectorRegistry())
    app = service(added)
    app.add_middleware(PrometheusMiddleware, metrics=added)
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=provider)      # outermost
    (exemplar,) = await exemplars_after_one_request(app, added)
    assert exemplar.labels["trace_id"] == f"{TRACE_ID:032x}" and exemplar.labels["span_id"] != f"{SPAN_ID:016x}"

    wrapped = Metrics(CollectorRegistry())
    app = service(wrapped)
    instrument_starlette(app, wrapped)
    assert len(await exemplars_after_one_request(OpenTelemetryMiddleware(app, tracer_provider=provider),
                                                 wrapped)) == 1

    inside = Metrics(CollectorRegistry())
    app = service(inside)
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=provider)
    instrument_starlette(app, inside)
    with caplog.at_level("WARNING", logger="vigil_instrument"):
        assert await exemplars_after_one_request(app, inside) == []
    assert caplog.text.count("HTTP durations get no exemplars") == 1


def test_exemplars_can_be_turned_off_and_cost_nothing_then():
    metrics = Metrics(CollectorRegistry(), exemplars=False)
    assert metrics.exemplar is None and metrics.current_exemplar() is None
    with span():
        with track_agent("planner", metrics=metrics):
            pass
    from prometheus_client.openmetrics.exposition import generate_latest
    assert b"trace_id" not in generate_latest(metrics.registry)


# --- round trip through a real Prometheus ----------------------------------------------------

class TraceparentWSGI:
    """The same stand-in for OpenTelemetry's WSGI instrumentation."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        header = environ.get("HTTP_TRACEPARENT")
        if header is None:
            return self.app(environ, start_response)
        _, trace_id, span_id, _ = header.split("-")
        with span(int(trace_id, 16), int(span_id, 16)):  # the body is sent and closed in the span
            body = self.app(environ, start_response)
            try:
                return list(body)
            finally:
                body.close()


@pytest.fixture
def traced_flask_service():
    from flask import Flask

    metrics = Metrics(CollectorRegistry())
    app = Flask("exemplars")

    @app.get("/answer")
    def answer():
        with track_agent("planner", metrics=metrics):
            with track_llm("openai", "gpt-4o", metrics=metrics) as call:
                call.usage(prompt_tokens=3, completion_tokens=1)
        return {"answer": 42}

    instrument_flask(app, metrics)
    for url in serve(TraceparentWSGI(app.wsgi_app)):
        yield url.removeprefix("http://")


def test_exemplars_round_trip_through_prometheus(traced_flask_service, tmp_path):
    target = traced_flask_service
    trace_ids = [f"{n:032x}" for n in (0xA1, 0xA2, 0xA3)]
    for trace_id in trace_ids:
        answer = httpx.get(f"http://{target}/answer", headers={"traceparent": f"00-{trace_id}-{0xB7:016x}-01"})
        assert answer.json() == {"answer": 42}

    config = ("global: {scrape_interval: 1s}\n"
              f"scrape_configs: [{{job_name: service, static_configs: [{{targets: ['{target}']}}]}}]\n")
    prometheus = Prometheus("exemplars", tmp_path, free_port(), config_text=lambda: config,
                            features=("exemplar-storage",))
    prometheus.start()
    try:
        found = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and set(found) != {"http", "agent", "llm"}:
            for key, metric in (("http", "http_request_duration_seconds_bucket"),
                                ("agent", "agent_execution_duration_seconds_bucket"),
                                ("llm", "llm_request_duration_seconds_bucket")):
                now = time.time()
                url = (f"{prometheus.url}/api/v1/query_exemplars?query={metric}"
                       f"&start={now - 300:.0f}&end={now + 60:.0f}")
                with urllib.request.urlopen(url, timeout=5) as reply:
                    data = json.load(reply)["data"]
                ids = {e["labels"]["trace_id"] for series in data for e in series["exemplars"]}
                if ids:
                    found[key] = ids
            time.sleep(0.2)
    finally:
        prometheus.stop()
        prometheus.cleanup()
    assert set(found) == {"http", "agent", "llm"}, found
    assert found["http"] <= set(trace_ids) and found["http"]   # the latest per bucket
    assert found["agent"] <= set(trace_ids)


def test_direct_span_reader_agrees_with_the_public_api():
    """The middlewares read the current span's ids straight from OpenTelemetry's context
    variable; each case gives what get_current_span() would."""
    from opentelemetry import context
    from opentelemetry.trace.propagation import _SPAN_KEY

    from vigil_instrument.exemplars import _direct_reader

    def public():
        found = trace.get_current_span().get_span_context()
        return (found.trace_id, found.span_id) if found.trace_flags.sampled and found.is_valid else None

    direct = _direct_reader(public)
    assert direct is not None  # this OpenTelemetry API keeps the span where the reader looks
    assert direct() is None and public() is None
    for trace_id, span_id, sampled in ((TRACE_ID, SPAN_ID, True), (TRACE_ID, SPAN_ID, False), (0, SPAN_ID, True)):
        with span(trace_id, span_id, sampled):
            assert direct() == public()
    with span():
        assert direct() == (TRACE_ID, SPAN_ID)
    token = context.attach(context.set_value(_SPAN_KEY, "not a span"))
    try:
        assert direct() is None and public() is None
    finally:
        context.detach(token)
