"""HTTP middlewares (aiohttp and ASGI/FastAPI) against real requests."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import random
import re

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fastapi import BackgroundTasks, FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from vigil_instrument import (
    Cardinality,
    Metrics,
    PrometheusMiddleware,
    RequestLabels,
    aiohttp_metrics_handler,
    asgi_metrics_app,
    configure_logging,
    current_request_id,
    from_header,
    instrument_aiohttp,
)
from vigil_instrument.logging import new_request_id

STANDARD_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}


@pytest.fixture
def registry():
    return CollectorRegistry()


@pytest.fixture
def metrics(registry):
    return Metrics(registry)


def value(registry, name, **labels):
    return registry.get_sample_value(name, labels) or 0.0


def label_sets(registry, family):
    return {tuple(sorted(s.labels.items())) for metric in registry.collect() if metric.name == family
            for s in metric.samples if s.name == f"{family}_total"}


# --- aiohttp ---------------------------------------------------------------------------------

MIDDLEWARE = web.AppKey("middleware", object)  # what instrument_aiohttp installed


def aiohttp_app(metrics, registry, gate: asyncio.Event | None = None, normalize: bool = True, **options):
    log = logging.getLogger("test.app")

    async def item(request):
        log.info("serving item")
        return web.json_response({"id": request.match_info["id"], "rid": current_request_id()})

    async def upload(request):
        data = await request.read()
        return web.Response(body=data[::-1])

    async def stream(request):
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(4):
            await response.write(b"x" * 1000)
        return response

    async def missing(request):
        raise web.HTTPNotFound()

    async def boom(request):
        raise RuntimeError("handler failed")

    async def slow(request):
        await gate.wait()
        return web.Response(text="done")

    async def health(request):
        return web.Response(text="ok")

    normalizer = web.normalize_path_middleware(append_slash=False, remove_slash=True)
    app = web.Application(middlewares=[normalizer] if normalize else [])
    app[MIDDLEWARE] = instrument_aiohttp(app, metrics, **options)
    app.router.add_get("/items/{id}", item)
    app.router.add_post("/upload", upload)
    app.router.add_get("/stream", stream)
    app.router.add_get("/missing/{id}", missing)
    app.router.add_get("/boom", boom)
    app.router.add_get("/slow", slow)
    app.router.add_get("/health/live", health)
    app.router.add_get("/healthplans/{plan_id}", health)     # a route, not /health's subpath
    app.router.add_get("/metrics", aiohttp_metrics_handler(registry))
    admin = web.Application()
    admin.router.add_get("/users/{name}", health)
    app.add_subapp("/admin", admin)
    return app


async def test_aiohttp_counts_templates_statuses_and_sizes(metrics, registry):
    async with TestClient(TestServer(aiohttp_app(metrics, registry))) as client:
        for item_id in ("1", "2", "abc"):
            assert (await client.get(f"/items/{item_id}")).status == 200
        response = await client.post("/upload", data=b"a" * 5000)
        assert (await response.read()) == b"a" * 5000
        streamed = await client.get("/stream")
        assert len(await streamed.read()) == 4000
        assert (await client.get("/missing/7")).status == 404
        assert (await client.get("/boom")).status == 500
        assert (await client.get("/no/such/path")).status == 404
        assert (await client.delete("/items/1")).status == 405
        redirect = await client.get("/stream/", allow_redirects=False)
        assert redirect.status in (301, 308)
        assert (await client.request("PROPFIND", "/items/1")).status == 405
        assert (await client.get("/admin/users/ann")).status == 200

    assert value(registry, "http_requests_total", method="GET", route="/items/{id}", status="200") == 3
    assert value(registry, "http_requests_total", method="POST", route="/upload", status="200") == 1
    # A handler's own 404 keeps its template; the router's 404/405/redirects are "unmatched".
    assert value(registry, "http_requests_total", method="GET", route="/missing/{id}", status="404") == 1
    assert value(registry, "http_requests_total", method="GET", route="/boom", status="500") == 1
    assert value(registry, "http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value(registry, "http_requests_total", method="DELETE", route="unmatched", status="405") == 1
    assert value(registry, "http_requests_total", method="GET", route="unmatched", status=str(redirect.status)) == 1
    assert value(registry, "http_requests_total", method="other", route="unmatched", status="405") == 1
    assert value(registry, "http_requests_total", method="GET", route="/admin/users/{name}", status="200") == 1

    assert value(registry, "http_request_size_bytes_sum", method="POST", route="/upload") == 5000
    # aiohttp counts what it wrote to the connection: the body plus status line and headers.
    upload_sent = value(registry, "http_response_size_bytes_sum", method="POST", route="/upload")
    assert 5000 < upload_sent < 5400
    stream_sent = value(registry, "http_response_size_bytes_sum", method="GET", route="/stream")
    assert 4000 < stream_sent < 4400
    assert value(registry, "http_request_duration_seconds_count", method="GET", route="/items/{id}") == 3
    assert value(registry, "http_requests_in_flight", method="GET") == 0


async def test_aiohttp_request_id_excluded_paths_and_in_flight(metrics, registry):
    gate = asyncio.Event()
    async with TestClient(TestServer(aiohttp_app(metrics, registry, gate))) as client:
        given = await client.get("/items/1", headers={"X-Request-ID": "req-42"})
        assert given.headers["X-Request-ID"] == "req-42"
        assert (await given.json())["rid"] == "req-42"
        made = await client.get("/items/2")
        assert re.fullmatch(r"[0-9a-f]{12}-[0-9]+", made.headers["X-Request-ID"])
        assert (await made.json())["rid"] == made.headers["X-Request-ID"]
        hostile = await client.get("/items/3", headers={"X-Request-ID": "x" * 500})
        assert hostile.headers["X-Request-ID"] != "x" * 500
        streamed = await client.get("/stream")
        assert streamed.headers.get("X-Request-ID")  # prepared by the handler, still tagged

        slow = asyncio.ensure_future(client.get("/slow"))
        for _ in range(100):
            if value(registry, "http_requests_in_flight", method="GET") == 1:
                break
            await asyncio.sleep(0.01)
        assert value(registry, "http_requests_in_flight", method="GET") == 1
        gate.set()
        assert (await slow).status == 200
        assert value(registry, "http_requests_in_flight", method="GET") == 0

        assert (await client.get("/health/live")).status == 200
        assert (await client.get("/healthplans/3")).status == 200
        scrape = await client.get("/metrics")
        assert scrape.status == 200
        assert "http_requests_total" in await scrape.text()
        openmetrics = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await openmetrics.text()).endswith("# EOF\n")
    assert value(registry, "http_requests_total", method="GET", route="/health/live", status="200") == 0
    assert value(registry, "http_requests_total", method="GET", route="/healthplans/{plan_id}", status="200") == 1
    assert value(registry, "http_requests_total", method="GET", route="/metrics", status="200") == 0


def tenant_labels(registry):
    """Metrics with a per-request tenant label capped at 50: the random-path tests send 10,000
    requests, each from a tenant of its own."""
    return Metrics(registry, request_labels=RequestLabels(tenant=from_header("X-Tenant-ID"), max_values={"tenant": 50}))


async def test_aiohttp_random_paths_keep_labels_bounded(registry):
    rng = random.Random(4)
    templates = {"/items/{id}", "/upload", "/stream", "/missing/{id}", "/boom", "/slow", "/health/live",
                 "/healthplans/{plan_id}", "/admin/users/{name}"}
    app = aiohttp_app(tenant_labels(registry), registry, normalize=False)
    async with TestClient(TestServer(app)) as client:
        paths = [random_path(rng) for _ in range(10_000)]
        for start in range(0, len(paths), 20):
            batch = [client.request(method, path, allow_redirects=False, headers={"X-Tenant-ID": f"tenant-{n}"})
                     for n, (method, path) in enumerate(paths[start:start + 20], start)]
            for response in await asyncio.gather(*batch):
                response.release()
    assert_bounded(registry, paths, templates, "/items/{id}")
    # aiohttp makes a route object per unmatched request: the middleware's cache is not keyed by it
    assert len(app[MIDDLEWARE].recorder.entries) <= len(label_sets(registry, "http_requests"))


def random_path(rng: random.Random) -> tuple[str, str]:
    method = rng.choice(["GET", "GET", "GET", "POST", "DELETE", "PATCH", "PROPFIND", "MKCOL"])
    token = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=rng.randint(1, 12)))
    path = rng.choice([f"/items/{token}", f"/{token}", f"/{token}/{token}/", f"/missing/{token}",
                       f"/wp-admin/{token}.php", f"/items/{token}/"])
    return method, path


def assert_bounded(registry, paths, templates, item_route):
    sets = label_sets(registry, "http_requests")
    routes = {dict(labels)["route"] for labels in sets}
    methods = {dict(labels)["method"] for labels in sets}
    assert routes <= templates | {"unmatched"}
    assert "unmatched" in routes and item_route in routes
    assert methods <= STANDARD_METHODS | {"other"}
    assert "other" in methods
    # one tenant per request: the first 50 keep their name, the rest are "other"
    assert {dict(labels)["tenant"] for labels in sets} == {f"tenant-{n}" for n in range(50)} | {"other"}
    assert len({tuple(label for label in labels if label[0] != "tenant") for labels in sets}) < 60
    total = sum(registry.get_sample_value("http_requests_total", dict(labels)) for labels in sets)
    assert total == len(paths)  # nothing dropped, scanners included
    exposition = generate_latest(registry).decode()
    leaked = [p for _, p in paths if len(p) > 12 and f'"{p}"' in exposition]
    assert not leaked


# --- ASGI / FastAPI --------------------------------------------------------------------------

def fastapi_app(metrics, registry, wrap: bool = False):
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        if item_id == 0:
            raise HTTPException(404)
        return {"id": item_id, "rid": current_request_id()}

    @app.post("/echo")
    async def echo(body: dict):
        return body

    @app.get("/stream")
    async def stream():
        async def chunks():
            for _ in range(5):
                yield b"y" * 1000
        return StreamingResponse(chunks())

    @app.get("/boom")
    async def boom():
        raise RuntimeError("endpoint failed")

    @app.get("/health")
    async def health():
        return {"ok": True}

    sub = Starlette(routes=[Route("/users/{name}", lambda request: PlainTextResponse("hi"))])
    app.mount("/admin", sub)
    app.add_route("/metrics", asgi_metrics_app(registry))
    if wrap:
        return PrometheusMiddleware(app, metrics)
    app.add_middleware(PrometheusMiddleware, metrics=metrics)
    return app


def asgi_client(app):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_fastapi_counts_templates_statuses_and_sizes(metrics, registry):
    async with asgi_client(fastapi_app(metrics, registry)) as client:
        for item_id in (1, 2, 3):
            assert (await client.get(f"/items/{item_id}")).status_code == 200
        assert (await client.get("/items/0")).status_code == 404
        assert (await client.get("/items/abc")).status_code == 422
        body = json.dumps({"k": "v" * 100})
        echoed = await client.post("/echo", content=body, headers={"content-type": "application/json"})
        assert echoed.status_code == 200
        assert len((await client.get("/stream")).content) == 5000
        assert (await client.get("/admin/users/bob")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.put("/items/1")).status_code == 405
        assert (await client.get("/stream/")).status_code == 307
        assert (await client.request("PROPFIND", "/items/1")).status_code == 405
        assert (await client.get("/boom")).status_code == 500

    assert value(registry, "http_requests_total", method="GET", route="/items/{item_id}", status="200") == 3
    assert value(registry, "http_requests_total", method="GET", route="/items/{item_id}", status="404") == 1
    assert value(registry, "http_requests_total", method="GET", route="/items/{item_id}", status="422") == 1
    assert value(registry, "http_requests_total", method="GET", route="/admin/users/{name}", status="200") == 1
    assert value(registry, "http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value(registry, "http_requests_total", method="PUT", route="unmatched", status="405") == 1
    assert value(registry, "http_requests_total", method="GET", route="unmatched", status="307") == 1
    assert value(registry, "http_requests_total", method="other", route="unmatched", status="405") == 1
    assert value(registry, "http_requests_total", method="GET", route="/boom", status="500") == 1

    assert value(registry, "http_request_size_bytes_sum", method="POST", route="/echo") == len(body)
    assert value(registry, "http_response_size_bytes_sum", method="POST", route="/echo") == len(echoed.content)
    assert value(registry, "http_response_size_bytes_sum", method="GET", route="/stream") == 5000
    assert value(registry, "http_request_duration_seconds_count", method="GET", route="/stream") == 1
    assert value(registry, "http_requests_in_flight", method="GET") == 0


async def test_fastapi_request_id_exclusion_and_wrapped_errors(metrics, registry):
    async with asgi_client(fastapi_app(metrics, registry, wrap=True)) as client:
        given = await client.get("/items/5", headers={"X-Request-ID": "abc.123"})
        assert given.headers["x-request-id"] == "abc.123"
        assert given.json()["rid"] == "abc.123"
        made = await client.get("/items/6")
        assert made.json()["rid"] == made.headers["x-request-id"]
        assert made.headers["x-request-id"] != given.headers["x-request-id"]
        # Wrapping the whole app also sees the 500 that Starlette's error middleware sends.
        failed = await client.get("/boom")
        assert failed.status_code == 500 and failed.headers.get("x-request-id")
        assert (await client.get("/health")).status_code == 200
        scrape = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert scrape.status_code == 200 and "http_requests_total" in scrape.text
    assert value(registry, "http_requests_total", method="GET", route="/boom", status="500") == 1
    assert value(registry, "http_response_size_bytes_count", method="GET", route="/boom") == 1
    assert value(registry, "http_requests_total", method="GET", route="/health", status="200") == 0
    assert value(registry, "http_requests_total", method="GET", route="/metrics", status="200") == 0


async def test_asgi_response_carries_one_request_id_ours(metrics):
    """An app that copies an upstream's headers, its request id among them, still answers with
    one X-Request-ID: the id of our log lines (as on aiohttp and WSGI)."""
    def proxied(request):
        return PlainTextResponse("upstream", headers={"X-Request-ID": "upstream-1", "X-Upstream": "yes"})
    app = PrometheusMiddleware(Starlette(routes=[Route("/proxied", proxied)]), metrics)
    async with asgi_client(app) as client:
        copied = await client.get("/proxied", headers={"X-Request-ID": "ours-1"})
    assert copied.headers.get_list("x-request-id") == ["ours-1"]
    assert copied.headers["x-upstream"] == "yes" and copied.text == "upstream"


async def test_fastapi_random_paths_keep_labels_bounded(registry):
    rng = random.Random(5)
    templates = {"/items/{item_id}", "/echo", "/stream", "/boom", "/health", "/admin/users/{name}"}
    async with asgi_client(fastapi_app(tenant_labels(registry), registry)) as client:
        paths = [random_path(rng) for _ in range(10_000)]
        for start in range(0, len(paths), 20):
            await asyncio.gather(*(client.request(method, path, headers={"X-Tenant-ID": f"tenant-{n}"})
                                   for n, (method, path) in enumerate(paths[start:start + 20], start)))
    assert_bounded(registry, paths, templates, "/items/{item_id}")


async def test_asgi_mounted_apps_websockets_and_no_request_id(metrics, registry):
    async def files(scope, receive, send):  # a plain ASGI app under a Mount, like StaticFiles
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"file"})

    seen = []

    async def websocket(scope, receive, send):
        seen.append(scope["type"])

    ping = Route("/ping", lambda request: PlainTextResponse("pong"))
    app = Starlette(routes=[Mount("/static", app=files), Mount("/v1", routes=[ping])])
    async with asgi_client(PrometheusMiddleware(app, metrics, request_id=False)) as client:
        for name in ("a.css", "b/c.js"):
            response = await client.get(f"/static/{name}")
            assert response.status_code == 200 and "x-request-id" not in response.headers
        assert (await client.get("/v1/ping")).text == "pong"
    await PrometheusMiddleware(websocket, metrics)({"type": "websocket", "path": "/ws"}, None, None)
    assert seen == ["websocket"]
    routes = {dict(labels)["route"] for labels in label_sets(registry, "http_requests")}
    assert routes == {"/static/{path}", "/v1/ping"}
    assert value(registry, "http_requests_total", method="GET", route="/static/{path}", status="200") == 2


async def test_asgi_server_error_log_line_carries_the_request_id(metrics, registry):
    """ASGI servers run each request in a task of its own and log an exception once it has left
    every middleware (uvicorn: "Exception in ASGI application"): that line carries the id too,
    and nothing leaks into the caller's context."""
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("handler failed")

    app.add_middleware(PrometheusMiddleware, metrics=metrics)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/boom", "raw_path": b"/boom", "root_path": "", "query_string": b"",
             "headers": [(b"x-request-id", b"asgi-5")], "server": ("test", 80), "client": ("c", 1)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    async def run_asgi():  # what the server does per request
        try:
            await app(scope, receive, send)
        except RuntimeError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    stream = io.StringIO()
    handler = configure_logging("info", stream)
    try:
        await asyncio.create_task(run_asgi())
    finally:
        logging.getLogger().removeHandler(handler)
    assert sent[0]["status"] == 500
    errors = [json.loads(line) for line in stream.getvalue().splitlines() if "ASGI application" in line]
    assert errors and errors[0]["request_id"] == "asgi-5"
    assert current_request_id() is None
    assert value(registry, "http_requests_total", method="GET", route="/boom", status="500") == 1


async def test_fastapi_mount_is_labelled_with_its_prefix(metrics, registry, tmp_path):
    """FastAPI's router names no route in the scope for `app.mount("/static", StaticFiles(...))`:
    the mount prefix is the label, as on Starlette, not `unmatched`; a route of a mounted FastAPI
    app keeps its own template; a real route that starts like /health is counted."""
    from fastapi.staticfiles import StaticFiles

    (tmp_path / "b").mkdir()
    for name in ("a.css", "b/c.css"):
        (tmp_path / name).write_text("body {}")
    files = StaticFiles(directory=tmp_path)
    sub = FastAPI()

    @sub.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {"id": item_id}

    app = FastAPI()

    @app.get("/healthplans/{plan_id}")
    async def plan(plan_id: int) -> dict:
        return {"plan": plan_id}

    app.mount("/static", files)
    app.mount("/v2", sub)
    app.add_middleware(PrometheusMiddleware, metrics=metrics)
    async with asgi_client(app) as client:
        assert [(await client.get(f"/static/{name}")).status_code for name in ("a.css", "b/c.css", "missing.js")] \
            == [200, 200, 404]
        assert (await client.get("/v2/items/3")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.get("/healthplans/7")).status_code == 200
    requests = {(dict(labels)["route"], dict(labels)["status"]) for labels in label_sets(registry, "http_requests")}
    assert requests == {("/static/{path}", "200"), ("/static/{path}", "404"), ("/v2/items/{item_id}", "200"),
                        ("unmatched", "404"), ("/healthplans/{plan_id}", "200")}
    assert value(registry, "http_requests_total", method="GET", route="/static/{path}", status="200") == 2


async def test_route_cap_collapses_into_other(registry):
    metrics = Metrics(registry, cardinality=Cardinality(max_values={"route": 3}))
    app = Starlette(routes=[Route(f"/r{i}", lambda request: PlainTextResponse("x")) for i in range(6)])
    async with asgi_client(PrometheusMiddleware(app, metrics)) as client:
        for i in range(6):
            await client.get(f"/r{i}")
    routes = {dict(labels)["route"] for labels in label_sets(registry, "http_requests")}
    assert routes == {"/r0", "/r1", "/r2", "other"}
    assert value(registry, "http_requests_total", method="GET", route="other", status="200") == 3


async def test_json_logs_carry_the_request_id(metrics, registry):
    stream = io.StringIO()
    handler = configure_logging("info", stream)
    try:
        async with TestClient(TestServer(aiohttp_app(metrics, registry))) as client:
            await client.get("/items/9", headers={"X-Request-ID": "trace-9"})
        logging.getLogger("test.app").info("outside any request")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    served = [line for line in lines if line["msg"] == "serving item"]
    assert served and served[0]["request_id"] == "trace-9"
    outside = [line for line in lines if line["msg"] == "outside any request"]
    assert outside and "request_id" not in outside[0]


def test_forked_workers_do_not_repeat_request_ids():
    """gunicorn forks its workers from a master that has imported the library (the documented
    gunicorn.conf.py does): no worker may repeat another's request ids."""
    before = new_request_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        in_worker = pipe.read()
    os.waitpid(pid, 0)
    after = new_request_id()
    assert in_worker.rsplit("-", 1)[0] != before.rsplit("-", 1)[0]   # a prefix of its own
    assert after.rsplit("-", 1)[0] == before.rsplit("-", 1)[0] and in_worker not in (before, after)


async def test_aiohttp_handler_error_keeps_the_request_id(metrics, registry):
    """aiohttp answers a handler's exception itself, after the middleware: its 500 and its
    "Error handling request" log line still carry the request id."""
    stream = io.StringIO()
    handler = configure_logging("info", stream)
    try:
        async with TestClient(TestServer(aiohttp_app(metrics, registry))) as client:
            response = await client.get("/boom", headers={"X-Request-ID": "boom-7"})
            assert response.status == 500
            assert response.headers.get("X-Request-ID") == "boom-7"
    finally:
        logging.getLogger().removeHandler(handler)
    errors = [json.loads(line) for line in stream.getvalue().splitlines() if "Error handling request" in line]
    assert errors and errors[0]["request_id"] == "boom-7"
    assert value(registry, "http_requests_total", method="GET", route="/boom", status="500") == 1


@web.middleware
async def require_key(request, handler):
    """An application's own middleware: refuses /items/* without a key."""
    if request.path.startswith("/items/") and "X-Key" not in request.headers:
        raise web.HTTPUnauthorized()
    return await handler(request)


async def test_aiohttp_request_id_beside_the_apps_own_response_receivers(metrics):
    """The application's own `on_response_prepare` receivers, added before and after
    `instrument_aiohttp`, still run, in order, and every response still gets the request id
    (the signal sets it without a coroutine only when it is the one receiver)."""
    app = web.Application()
    seen = []

    async def before(request, response):
        seen.append("before")
        response.headers["X-Before"] = "1"

    async def after(request, response):
        seen.append("after")
        response.headers["X-After"] = "1"

    async def item(request):
        return web.Response(text="ok")

    async def streamed(request):
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"chunk")
        return response
    app.on_response_prepare.append(before)
    instrument_aiohttp(app, metrics)
    app.on_response_prepare.append(after)
    app.router.add_get("/item", item)
    app.router.add_get("/streamed", streamed)
    async with TestClient(TestServer(app)) as client:
        answers = [await client.get(path, headers={"X-Request-ID": f"both-{n}"})
                   for n, path in enumerate(("/item", "/streamed", "/nowhere"))]
    assert [a.status for a in answers] == [200, 200, 404]
    assert [a.headers.get("X-Request-ID") for a in answers] == ["both-0", "both-1", "both-2"]
    assert all(a.headers.get("X-Before") == a.headers.get("X-After") == "1" for a in answers)
    assert seen == ["before", "after"] * 3


async def test_aiohttp_started_app_is_wrapped_around_its_handler(metrics, registry):
    """Started by aiohttp's runner, the instrumentation leaves the middleware list (aiohttp's
    price of running any middleware) and wraps the app's handler: it still sees the other
    middlewares' answers, the router's 404s and aiohttp's own 500s, with the request id."""
    app = web.Application(middlewares=[require_key])
    instrument_aiohttp(app, metrics)

    async def item(request):
        return web.Response(text=request.match_info["id"])

    async def boom(request):
        raise RuntimeError("boom")

    async def proxied(request):  # copies an upstream's headers, its request id among them
        return web.Response(text="upstream", headers={"X-Request-ID": "upstream-1"})
    app.router.add_get("/items/{id}", item)
    app.router.add_get("/boom", boom)
    app.router.add_get("/proxied", proxied)
    async with TestClient(TestServer(app)) as client:
        assert list(app.middlewares) == [require_key]
        copied = await client.get("/proxied", headers={"X-Request-ID": "ours-1"})
        assert copied.headers["X-Request-ID"] == "ours-1"  # the id of our log lines and metrics
        ok = await client.get("/items/1", headers={"X-Key": "k"})
        refused = await client.get("/items/2")
        missing = await client.get("/nowhere")
        failed = await client.get("/boom")
    assert [r.status for r in (ok, refused, missing, failed)] == [200, 401, 404, 500]
    assert all(r.headers.get("X-Request-ID") for r in (ok, refused, missing, failed))
    for status, route, count in ((200, "/items/{id}", 1), (401, "/items/{id}", 1), (404, "unmatched", 1),
                                 (500, "/boom", 1)):
        assert value(registry, "http_requests_total", method="GET", route=route, status=str(status)) == count
    assert value(registry, "http_requests_in_flight", method="GET") == 0


async def ok(request):
    return web.Response(text="ok")


def frozen_before_start(metrics):
    app = web.Application()
    instrument_aiohttp(app, metrics)
    app.router.add_get("/users/{name}", ok)
    app.freeze()
    return app, "/users/ann", "/users/{name}"


def instrumented_sub_application(metrics):
    """A sub-application's requests are served by its parent's handler: its instrumentation
    stays a middleware."""
    admin = web.Application()
    instrument_aiohttp(admin, metrics)
    admin.router.add_get("/users/{name}", ok)
    root = web.Application()
    root.router.add_get("/", ok)
    root.add_subapp("/admin", admin)
    return root, "/admin/users/ann", "/admin/users/{name}"


async def test_instrumenting_a_frozen_aiohttp_app_says_why(metrics):
    started = web.Application()
    async with TestClient(TestServer(started)):
        with pytest.raises(RuntimeError, match="instrument_aiohttp: the application is frozen"):
            instrument_aiohttp(started, metrics)
    sub = web.Application()
    web.Application().add_subapp("/admin", sub)
    with pytest.raises(RuntimeError, match="add_subapp"):
        instrument_aiohttp(sub, metrics)


@pytest.mark.parametrize("make", [frozen_before_start, instrumented_sub_application])
async def test_aiohttp_instrumentation_stays_a_middleware_where_it_must(make, metrics, registry):
    app, path, route = make(metrics)
    async with TestClient(TestServer(app)) as client:
        response = await client.get(path)
        assert response.status == 200 and response.headers.get("X-Request-ID")
        assert (await client.get("/")).status in (200, 404)  # not the instrumented app's route
    assert value(registry, "http_requests_total", method="GET", route=route, status="200") == 1
    assert sum(s.value for family in registry.collect() for s in family.samples
               if s.name == "http_requests_total") == (1 if make is instrumented_sub_application else 2)


async def test_fastapi_background_tasks_are_not_in_the_request_duration(metrics, registry):
    """The duration ends when the response's last byte is sent; background tasks run after it
    (the server holds the connection, not the client)."""
    app = FastAPI()
    done = []

    async def slow_job():
        await asyncio.sleep(0.3)
        done.append(True)

    @app.get("/orders/{order_id}")
    async def order(order_id: int, background: BackgroundTasks) -> dict:
        background.add_task(slow_job)
        return {"id": order_id}

    app.add_middleware(PrometheusMiddleware, metrics=metrics)
    loop = asyncio.get_running_loop()
    async with asgi_client(app) as client:
        started = loop.time()
        assert (await client.get("/orders/1")).status_code == 200
        assert done and loop.time() - started >= 0.3      # the transport waited for the task
    assert value(registry, "http_request_duration_seconds_count", method="GET", route="/orders/{order_id}") == 1
    assert value(registry, "http_request_duration_seconds_sum", method="GET", route="/orders/{order_id}") < 0.2
    assert value(registry, "http_requests_in_flight", method="GET") == 0


async def test_instrument_starlette_tags_starlettes_own_500(metrics, registry):
    """`add_middleware` sits inside Starlette's ServerErrorMiddleware, whose 500 it never sees;
    `instrument_starlette` puts the middleware outside it: that 500 carries the request id."""
    from vigil_instrument import instrument_starlette

    app = FastAPI()

    @app.get("/boom/{n}")
    async def boom(n: int) -> None:
        raise RuntimeError("handler failed")

    @app.get("/ok")
    async def ok() -> dict:
        return {"rid": current_request_id()}

    instrument_starlette(app, metrics)
    async with asgi_client(app) as client:
        failed = await client.get("/boom/1", headers={"X-Request-ID": "srv-500"})
        assert failed.status_code == 500 and failed.text == "Internal Server Error"
        assert failed.headers.get("x-request-id") == "srv-500"
        answer = await client.get("/ok", headers={"X-Request-ID": "srv-ok"})
        assert answer.json() == {"rid": "srv-ok"} and answer.headers["x-request-id"] == "srv-ok"
    assert value(registry, "http_requests_total", method="GET", route="/boom/{n}", status="500") == 1
    assert value(registry, "http_response_size_bytes_count", method="GET", route="/boom/{n}") == 1
    assert value(registry, "http_requests_total", method="GET", route="/ok", status="200") == 1
    with pytest.raises(RuntimeError, match="already started"):
        instrument_starlette(app, Metrics(CollectorRegistry()))
