"""WSGI middleware on real Flask and Django applications served by a real WSGI server (werkzeug),
and on gunicorn with several worker processes."""
from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.serving import make_server

from vigil_instrument import (
    Metrics,
    RequestLabels,
    from_header,
    from_path_param,
    from_state,
    hash_id,
    instrument_django,
    instrument_flask,
    track_llm,
)
from vigil_instrument.django import metrics_view

ROOT = Path(__file__).resolve().parent.parent
LABELS = RequestLabels(tenant=[from_header("X-Tenant-ID"), from_path_param("tenant")],
                       auth_type=from_state("auth_type"), client=from_header("X-Client-Name", hash=True),
                       max_values={"tenant": 5})


def serve(app):
    """A threaded werkzeug server on a free port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def samples(registry, name):
    return [s for family in registry.collect() for s in family.samples if s.name == name]


def value(registry, name, **labels):
    return sum(s.value for s in samples(registry, name) if labels.items() <= s.labels.items())


def settled(registry):
    """A WSGI server closes a response (where it is recorded) after the client has it: wait
    until no request is in flight."""
    deadline = time.monotonic() + 5
    while value(registry, "http_requests_in_flight") and time.monotonic() < deadline:
        time.sleep(0.001)
    return registry


def llm_call(metrics):
    with track_llm("openai", "gpt-4o", metrics=metrics) as call:
        call.usage(prompt_tokens=5, completion_tokens=1)


# --- Flask -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def flask_site():
    from flask import Blueprint, Flask, Response, abort, request

    registry = CollectorRegistry()
    metrics = Metrics(registry, request_labels=LABELS)
    app = Flask("wsgi_test")

    @app.get("/items/<int:item_id>")
    def item(item_id):
        request.environ["auth_type"] = "api_key"
        llm_call(metrics)
        if item_id == 404:
            abort(404)
        return {"item": item_id}

    @app.get("/stream")
    def stream():
        def chunks():
            for _ in range(4):
                time.sleep(0.02)
                yield b"x" * 1000
        return Response(chunks(), mimetype="text/plain")

    @app.post("/upload")
    def upload():
        return {"bytes": len(request.get_data())}

    @app.get("/boom")
    def boom():
        raise RuntimeError("handler failed")

    @app.get("/healthplans/<int:plan_id>")
    def plan(plan_id):
        return {"plan": plan_id}

    @app.get("/health/ready")
    def ready():
        return "ok"

    api = Blueprint("api", "api", url_prefix="/api")

    @api.get("/tenants/<tenant>/usage")
    def usage(tenant):
        llm_call(metrics)
        return {"tenant": tenant}

    app.register_blueprint(api)
    instrument_flask(app, metrics)
    for url in serve(app):
        with httpx.Client(base_url=url) as client:
            yield client, registry


def test_flask_route_templates_sizes_and_unmatched(flask_site):
    client, registry = flask_site
    assert client.get("/items/1").status_code == 200
    assert client.get("/items/404").status_code == 404                 # raised by a matched route
    assert client.post("/upload", content=b"y" * 3000).json() == {"bytes": 3000}
    started = time.perf_counter()
    assert len(client.get("/stream").content) == 4000
    # The server records /stream when it closes the body, which may be after the client has read
    # it: bound the duration by the time until the server has recorded it (nothing in flight).
    settled(registry)
    stream_seconds = time.perf_counter() - started
    assert client.get("/boom").status_code == 500
    assert client.post("/items/1").status_code == 405                   # no rule for POST
    for n in range(30):
        assert client.get(f"/scan/{random.getrandbits(40):x}/{n}").status_code == 404
    assert client.get("/healthplans/3").status_code == 200               # a route, not /health
    assert client.get("/health/ready").status_code == 200                # excluded by default
    settled(registry)
    assert value(registry, "http_requests_total", route="/healthplans/<int:plan_id>") == 1
    assert value(registry, "http_requests_total", route="/health/ready") == 0

    assert value(registry, "http_requests_total", route="/items/<int:item_id>", status="200") == 1
    assert value(registry, "http_requests_total", route="/items/<int:item_id>", status="404") == 1
    assert value(registry, "http_requests_total", route="/boom", status="500") == 1
    assert value(registry, "http_requests_total", route="unmatched", status="404") == 30
    assert value(registry, "http_requests_total", route="unmatched", status="405", method="POST") == 1
    assert value(registry, "http_request_size_bytes_sum", route="/upload") == 3000
    assert value(registry, "http_response_size_bytes_sum", route="/stream") == 4000
    # The duration covers sending the streamed body (4 chunks 20 ms apart).
    assert 0.06 <= value(registry, "http_request_duration_seconds_sum", route="/stream") <= stream_seconds
    routes = {s.labels["route"] for s in samples(registry, "http_requests_total")}
    assert routes <= {"/items/<int:item_id>", "/upload", "/stream", "/boom", "/api/tenants/<tenant>/usage",
                      "/healthplans/<int:plan_id>", "unmatched"}
    assert value(registry, "http_requests_in_flight") == 0


def test_flask_request_labels_request_id_and_metrics(flask_site):
    client, registry = flask_site
    answer = client.get("/api/tenants/acme/usage", headers={"X-Request-ID": "req-42"})
    assert answer.headers["X-Request-ID"] == "req-42"
    assert client.get("/items/2", headers={"X-Tenant-ID": "globex"}).status_code == 200
    assert client.get("/items/3").headers["X-Request-ID"]                # one is made up
    for n in range(20):
        client.get(f"/api/tenants/t{n}/usage")
    settled(registry)

    assert value(registry, "http_requests_total", route="/api/tenants/<tenant>/usage", tenant="acme") == 1
    assert value(registry, "http_requests_total", route="/items/<int:item_id>", tenant="globex",
                 auth_type="api_key") == 1
    tenants = {s.labels["tenant"] for s in samples(registry, "http_requests_total")}
    assert len(tenants - {"none", "other"}) == 5 and "other" in tenants   # cap 5 + other
    # Both the header and the path parameter are known before a Flask view runs.
    assert value(registry, "llm_requests_total", tenant="acme") == 1
    assert value(registry, "llm_requests_total", tenant="globex") == 1

    exposition = client.get("/metrics")
    assert exposition.status_code == 200
    settled(registry)
    names = {family.name for family in text_string_to_metric_families(exposition.text)}
    assert {"http_requests", "http_request_duration_seconds", "llm_requests"} <= names
    assert value(registry, "http_requests_total", route="/metrics") == 0   # excluded
    negotiated = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert negotiated.headers["Content-Type"].startswith("application/openmetrics-text")


# --- Django ----------------------------------------------------------------------------------

def django_views(metrics):
    from django.http import Http404, JsonResponse, StreamingHttpResponse

    def item(request, item_id):
        request.META["auth_type"] = "jwt"
        if item_id == 404:
            raise Http404("no such item")
        return JsonResponse({"item": item_id})

    def stream(request):
        return StreamingHttpResponse(b"z" * 500 for _ in range(3))

    def boom(request):
        raise RuntimeError("view failed")

    def usage(request, tenant):
        llm_call(metrics)
        return JsonResponse({"tenant": tenant})
    return item, stream, boom, usage


urlpatterns: list = []  # this module is the Django test site's ROOT_URLCONF


@pytest.fixture(scope="module")
def django_site():
    import django
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from django.urls import include, path

    if not settings.configured:
        settings.configure(
            DEBUG=False, SECRET_KEY="test-only", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
            MIDDLEWARE=["vigil_instrument.django.RouteMiddleware", "django.middleware.common.CommonMiddleware"],
            INSTALLED_APPS=[], USE_TZ=True, LOGGING_CONFIG=None)
        django.setup()
    registry = CollectorRegistry()
    metrics = Metrics(registry, request_labels=LABELS)
    item, stream, boom, usage = django_views(metrics)
    api = [path("tenants/<slug:tenant>/usage/", usage)]
    urlpatterns[:] = [path("items/<int:item_id>/", item), path("stream/", stream), path("boom/", boom),
                      path("api/", include(api)), path("metrics", metrics_view(metrics))]
    application = instrument_django(get_wsgi_application(), metrics)
    for url in serve(application):
        with httpx.Client(base_url=url) as client:
            yield client, registry


def test_django_route_templates_labels_and_unmatched(django_site):
    client, registry = django_site
    assert client.get("/items/7/").json() == {"item": 7}
    assert client.get("/items/404/").status_code == 404
    assert len(client.get("/stream/").content) == 1500
    assert client.get("/boom/").status_code == 500
    assert client.get("/items/7").status_code == 301                    # APPEND_SLASH, before routing
    assert client.get("/api/tenants/acme/usage/", headers={"X-Request-ID": "dj-1"}).headers["X-Request-ID"] == "dj-1"
    assert client.get("/api/tenants/acme/usage/", headers={"X-Tenant-ID": "globex",
                                                            "X-Client-Name": "mobile"}).status_code == 200
    for n in range(20):
        assert client.get(f"/scan/{random.getrandbits(40):x}/{n}/").status_code == 404
    settled(registry)

    assert value(registry, "http_requests_total", route="/items/<int:item_id>/", status="200",
                 auth_type="jwt") == 1
    assert value(registry, "http_requests_total", route="/items/<int:item_id>/", status="404") == 1
    assert value(registry, "http_requests_total", route="/boom/", status="500") == 1
    assert value(registry, "http_requests_total", route="/api/tenants/<slug:tenant>/usage/", tenant="acme",
                 client="none") == 1
    assert value(registry, "http_requests_total", route="/api/tenants/<slug:tenant>/usage/", tenant="globex",
                 client=hash_id("mobile")) == 1                     # the header first, the client hashed
    # the tenant of the request (path parameter or header) is the LLM calls' in the view
    assert value(registry, "llm_requests_total", tenant="acme") == 1
    assert value(registry, "llm_requests_total", tenant="globex") == 1
    assert value(registry, "http_request_duration_seconds_count", route="/items/<int:item_id>/") == 2
    assert value(registry, "http_request_size_bytes_count", route="/items/<int:item_id>/") == 2
    assert value(registry, "http_requests_in_flight") == 0
    assert value(registry, "http_requests_total", route="unmatched", status="301") == 1
    assert value(registry, "http_requests_total", route="unmatched", status="404") == 20
    assert value(registry, "http_response_size_bytes_sum", route="/stream/") == 1500
    exposition = client.get("/metrics")
    assert exposition.status_code == 200 and "http_requests_total" in exposition.text
    negotiated = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert negotiated.headers["Content-Type"].startswith("application/openmetrics-text")
    assert negotiated.text.endswith("# EOF\n")


# --- gunicorn, several worker processes ------------------------------------------------------

GUNICORN_APP = r'''
import os
from flask import Flask
from vigil_instrument import Metrics, RequestLabels, from_header, instrument_flask

app = Flask("multiworker")

@app.get("/items/<int:item_id>")
def item(item_id):
    return {"item": item_id, "pid": os.getpid()}

instrument_flask(app, Metrics(request_labels=RequestLabels(tenant=from_header("X-Tenant-ID"))))
'''


def item_counts(exposition: str) -> dict[str, float]:
    """Requests to /items/<int:item_id> by tenant."""
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    return {s.labels["tenant"]: s.value for s in families["http_requests"].samples
            if s.name == "http_requests_total" and s.labels["route"] == "/items/<int:item_id>"}


def test_gunicorn_workers_share_one_exposition(tmp_path):
    """Two sync workers write to PROMETHEUS_MULTIPROC_DIR; whichever answers /metrics
    serves every worker's counts."""
    from vigil_exporter.tools.stack.process import free_port

    (tmp_path / "multiworker.py").write_text(GUNICORN_APP)
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc), "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
                               "--chdir", str(tmp_path), "multiworker:app"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/ready-probe", timeout=1)  # unmatched: not in the counts below
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr.read1().decode()
                time.sleep(0.05)
        with httpx.Client(base_url=url) as client:
            pids, sent = set(), 0
            while len(pids) < 2 or sent < 20:          # until both workers have served some
                pids.add(client.get(f"/items/{sent}", headers={"X-Tenant-ID": f"t{sent % 2}"}).json()["pid"])
                sent += 1
                assert sent < 500, "one worker served everything"
            # a worker records a request once its body is sent, so the other worker may answer
            # /metrics a moment before the last request is counted
            expected = {"t0": float((sent + 1) // 2), "t1": float(sent // 2)}   # per-request labels too
            deadline = time.monotonic() + 5
            while (counts := item_counts(client.get("/metrics").text)) != expected \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
        assert counts == expected
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.parametrize("site, boom", [("flask_site", "/boom"), ("django_site", "/boom/")])
def test_error_log_line_carries_the_request_id(site, boom, request):
    """The line Flask ("Exception on ...") or Django ("Internal Server Error: ...") writes about a
    view's exception carries the id of the request it failed, as the 500 does."""
    import io
    import json
    import logging

    from vigil_instrument import configure_logging

    client, _ = request.getfixturevalue(site)
    stream = io.StringIO()
    handler = configure_logging("info", stream)
    try:
        answer = client.get(boom, headers={"X-Request-ID": f"{site}-500"})
    finally:
        logging.getLogger().removeHandler(handler)
    assert answer.status_code == 500 and answer.headers["X-Request-ID"] == f"{site}-500"
    errors = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    errors = [line for line in errors if line["level"] == "error"]
    assert errors and all(line["request_id"] == f"{site}-500" for line in errors), errors
    assert any(line.get("exc") for line in errors)


# --- bounded labels under scanners and 10,000 tenants (as tests/test_instrument_http.py does for
# aiohttp and ASGI), in process: the real framework called as a WSGI server calls it

def bounded_metrics():
    return Metrics(CollectorRegistry(), request_labels=RequestLabels(tenant=from_header("X-Tenant-ID"),
                                                                     max_values={"tenant": 50}))


def call(application, method: str, path: str, tenant: str) -> None:
    """One request, as a WSGI server makes it: the body read, then closed."""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_HOST": "127.0.0.1", "HTTP_X_TENANT_ID": tenant, "wsgi.url_scheme": "http",
               "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0),
               "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False}
    body = application(environ, lambda status, headers, exc_info=None: None)
    for _ in body:
        pass
    body.close()


def assert_bounded(registry, requests: int, templates: set[str], tenants: int) -> None:
    from tests.test_instrument_http import STANDARD_METHODS

    sets = [s.labels for s in samples(registry, "http_requests_total")]
    assert {labels["route"] for labels in sets} <= templates | {"unmatched"}
    assert {labels["method"] for labels in sets} <= STANDARD_METHODS | {"other"}
    assert {labels["tenant"] for labels in sets} == {f"tenant-{n}" for n in range(tenants)} | {"other"}
    assert value(registry, "http_requests_total") == requests      # nothing lost in the overflow
    assert value(registry, "http_requests_in_flight") == 0


def scan(application, registry, templates: set[str]) -> None:
    """2,000 requests with random methods and paths, each from a tenant of its own."""
    from tests.test_instrument_http import random_path

    rng = random.Random(16)
    paths = [random_path(rng) for _ in range(2_000)]
    for n, (method, path) in enumerate(paths):
        call(application, method, path, f"tenant-{n}")
    assert_bounded(registry, len(paths), templates, 50)
    routes = {s.labels["route"] for s in samples(registry, "http_requests_total")}
    assert "unmatched" in routes and len(routes) > 1
    exposition = repr([s.labels for family in registry.collect() for s in family.samples])
    assert not [p for _, p in paths if len(p) > 12 and f"'{p}'" in exposition]


def test_flask_labels_stay_bounded_under_scanners():
    from flask import Flask

    metrics = bounded_metrics()
    app = Flask("bounded")
    app.add_url_rule("/items/<item_id>", "item", lambda item_id: {"item": item_id})
    app.add_url_rule("/missing/<item_id>", "missing", lambda item_id: ("gone", 404))
    instrument_flask(app, metrics)
    scan(app, metrics.registry, {"/items/<item_id>", "/missing/<item_id>"})


def test_django_labels_stay_bounded_under_scanners(django_site):
    from django.core.wsgi import get_wsgi_application

    metrics = bounded_metrics()
    scan(instrument_django(get_wsgi_application(), metrics), metrics.registry,
         {"/items/<int:item_id>/", "/stream/", "/boom/", "/api/tenants/<slug:tenant>/usage/"})


def test_wsgi_caps_hold_under_10000_tenants():
    from vigil_instrument import WSGIMiddleware
    from vigil_instrument.wsgi import route_matched

    def bare(environ, start_response):  # a minimal routed WSGI app: 10,000 requests stay fast
        route_matched(environ, "/me", {})
        start_response("200 OK", [])
        return [b"ok"]

    metrics = bounded_metrics()
    application = WSGIMiddleware(bare, metrics)
    for n in range(10_000):
        call(application, "GET", "/me", f"tenant-{n}")
    assert_bounded(metrics.registry, 10_000, {"/me"}, 50)


def test_wsgi_response_carries_one_request_id_ours():
    """An app that copies an upstream's headers, its request id among them, still answers with
    one X-Request-ID: the id of our log lines (as on aiohttp and ASGI)."""
    from vigil_instrument import WSGIMiddleware

    def proxied(environ, start_response):
        start_response("200 OK", [("x-request-id", "upstream-1"), ("X-Upstream", "yes")])
        return [b"upstream"]

    for url in serve(WSGIMiddleware(proxied, Metrics(CollectorRegistry()))):
        copied = httpx.get(url + "/proxied", headers={"X-Request-ID": "ours-1"})
    assert copied.headers.get_list("x-request-id") == ["ours-1"]
    assert copied.headers["x-upstream"] == "yes" and copied.text == "upstream"
