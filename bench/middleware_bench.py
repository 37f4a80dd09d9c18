"""Per-request overhead of the HTTP middlewares, against the same app without them and against
the libraries services use today, with 6 and 56 routes.

    python bench/middleware_bench.py [--rounds 40] [--requests 300] [--routes 6 56]
                                     [--suites base labels exemplars wsgi]

Suites (all by default):
- base: FastAPI with vigil_instrument vs prometheus-fastapi-instrumentator and starlette-exporter;
  aiohttp with vigil_instrument.
- labels: per-request labels on (tenant from `X-Tenant-ID`, client from `X-Client-Name`, 20
  tenants and 3 clients cycled): vigil_instrument vs prometheus-fastapi-instrumentator (its
  default metrics plus a counter by tenant and client, the way its docs add labels) and
  starlette-exporter (`labels=` with its `from_header`); on FastAPI and aiohttp alike, what our
  figure is made of: a floor (code that only times the request and reads its status, recording
  nothing, installed where ours is: the framework's own price of any HTTP metrics code; on
  aiohttp also as a middleware, for the price of aiohttp's middleware machinery) and ours with
  the labels off, then with the request id off.
- exemplars: vigil_instrument with exemplars off and on while a sampled OpenTelemetry span is
  current (FastAPI and aiohttp).
- wsgi: Flask bare / vigil_instrument / prometheus_flask_exporter (`group_by="url_rule"`, route
  templates like ours) and Django bare / vigil_instrument / django-prometheus, WSGI apps called
  directly with a prebuilt environ, the body consumed and closed as a server does.

FastAPI: each variant is the same app plus one middleware (added with `add_middleware`), called
directly as an ASGI app (no network). aiohttp: instrumented as the docs say (`instrument_aiohttp`:
at start-up, done as aiohttp's runner does, its middleware moves around the app's handler; with
its `on_response_prepare` receiver); each request built with `make_mocked_request`
outside the timed block and sent through the app's handler chain (`Application._handle`, what
aiohttp's server calls) and a real `StreamWriter` writing into a null transport. Requests cycle
over every route. Variants are interleaved, one block of `--requests` requests each per round;
the table gives the min and median of the per-round µs/request (this thread's CPU time unless
`--clock wall`) and the overhead over the bare app: min - min, and the paired median (the median
over rounds of the variant's block minus the bare app's block of the same round, which cancels a
load that changes from round to round); the summary gives the issue's targets as figures of
this run.
The comparison libraries are the `bench` extra: `pip install -e '.[bench]'`.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import os
import platform
import statistics
import sys
import time
import types
from functools import partial
from importlib.metadata import version
from pathlib import Path
from time import perf_counter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web  # noqa: E402
from aiohttp.http_writer import StreamWriter  # noqa: E402
from aiohttp.test_utils import make_mocked_request  # noqa: E402
from fastapi import FastAPI, Response  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from vigil_instrument import (  # noqa: E402
    Metrics,
    PrometheusMiddleware,
    RequestLabels,
    from_header,
    instrument_aiohttp,
)

ROUTE_COUNTS = (6, 56)
# CPU time of this thread by default: on a shared machine, wall time also counts the time other
# processes held the CPU (--clock wall for the wall-clock figures).
CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]
SUITES = ("base", "labels", "exemplars", "wsgi")
TENANTS = [f"tenant-{n}" for n in range(20)]
CLIENTS = ["web", "mobile", "cli"]


def request_labels() -> RequestLabels:
    return RequestLabels(tenant=from_header("X-Tenant-ID"), client=from_header("X-Client-Name"))


# The labels suite also measures what the target's figure is made of: the framework's own price
# of any HTTP metrics middleware (FLOOR), and ours with each of its two per-request features off.
FLOOR = "floor: time + status only"
FLOOR_MIDDLEWARE = "floor as a middleware"  # aiohttp
LABELLED_VARIANTS = {"vigil_instrument, no labels": {"labels": False},
                     "vigil_instrument, no request id": {"request_id": False},
                     "vigil_instrument": {}}


def _labelled(labels: bool = True, request_id: bool = True) -> dict:
    """The middleware options of a LABELLED_VARIANTS entry (a fresh registry each)."""
    return {"metrics": Metrics(CollectorRegistry(), request_labels=request_labels() if labels else None),
            "request_id": request_id}


def label_headers(n: int) -> dict[str, str]:
    """The n-th request's tenant and client headers."""
    return {"X-Tenant-ID": TENANTS[n % len(TENANTS)], "X-Client-Name": CLIENTS[n % len(CLIENTS)]}


def route_paths(count: int) -> list[tuple[str, str]]:
    """(template, a concrete path) for `count` routes, half with a path parameter."""
    routes = []
    for i in range(count):
        if i % 2:
            routes.append((f"/api/r{i}/items/{{item_id}}", f"/api/r{i}/items/{1000 + i}"))
        else:
            routes.append((f"/api/r{i}/status", f"/api/r{i}/status"))
    return routes


# --- FastAPI ---------------------------------------------------------------------------------

def fastapi_app(count: int) -> FastAPI:
    app = FastAPI()
    for template, _ in route_paths(count):
        async def endpoint() -> Response:
            return Response(b"ok", media_type="text/plain")
        app.add_api_route(template, endpoint, methods=["GET"])
    return app


def fastapi_variants(count: int) -> dict:
    from prometheus_fastapi_instrumentator import Instrumentator
    from starlette_exporter import PrometheusMiddleware as StarletteExporter

    bare = fastapi_app(count)
    ours = fastapi_app(count)
    ours.add_middleware(PrometheusMiddleware, metrics=Metrics(CollectorRegistry()))
    instrumentator = fastapi_app(count)
    Instrumentator(registry=CollectorRegistry()).instrument(instrumentator)
    exporter = fastapi_app(count)
    exporter.add_middleware(StarletteExporter, app_name="bench", prefix=f"bench{count}")
    return {"bare": bare, "vigil_instrument": ours,
            "prometheus-fastapi-instrumentator": instrumentator, "starlette-exporter": exporter}


def asgi_scope(path: str, headers: dict[str, str] | None = None) -> dict:
    extra = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "headers": [(b"host", b"bench"), (b"user-agent", b"bench"), *extra],
            "server": ("bench", 80), "client": ("127.0.0.1", 40000)}


def fastapi_label_variants(count: int) -> dict:
    """Per-request labels on: each library configured for the same two labels."""
    from prometheus_client import Counter
    from prometheus_fastapi_instrumentator import Instrumentator
    from prometheus_fastapi_instrumentator import metrics as instrumentator_metrics
    from starlette_exporter import PrometheusMiddleware as StarletteExporter
    from starlette_exporter import from_header as exporter_header

    ours = {}
    for name, options in LABELLED_VARIANTS.items():
        ours[name] = fastapi_app(count)
        ours[name].add_middleware(PrometheusMiddleware, **_labelled(**options))
    floor = fastapi_app(count)
    floor.add_middleware(FloorMiddleware)

    registry = CollectorRegistry()
    by_tenant = Counter("http_requests_by_tenant", "Requests by tenant and client.",
                        ("handler", "method", "status", "tenant", "client"), registry=registry)

    def count_tenant(info) -> None:
        headers = info.request.headers
        by_tenant.labels(info.modified_handler, info.method, info.modified_status,
                         headers.get("x-tenant-id", ""), headers.get("x-client-name", "")).inc()

    instrumentator = fastapi_app(count)
    (Instrumentator(registry=registry).add(instrumentator_metrics.default(registry=registry))
     .add(count_tenant).instrument(instrumentator))
    exporter = fastapi_app(count)
    exporter.add_middleware(StarletteExporter, app_name="bench", prefix=f"bench_labels{count}",
                            labels={"tenant": exporter_header("x-tenant-id"),
                                    "client": exporter_header("x-client-name")})
    return {"bare": fastapi_app(count), FLOOR: floor, **ours,
            "prometheus-fastapi-instrumentator": instrumentator, "starlette-exporter": exporter}



class FloorMiddleware:
    """The least any ASGI metrics middleware does, recording nothing: time the request and read
    the status from a wrapped `send` (the only place ASGI gives it)."""

    def __init__(self, app):
        self.app = app
        self.last = None

    async def __call__(self, scope, receive, send):
        status = 0

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.last = (perf_counter() - start, status)


def fastapi_exemplar_variants(count: int) -> dict:
    variants = {"bare": fastapi_app(count)}
    for name, exemplars in (("exemplars off", False), ("exemplars on", True)):
        app = variants[name] = fastapi_app(count)
        app.add_middleware(PrometheusMiddleware, metrics=Metrics(CollectorRegistry(), exemplars=exemplars))
    return variants


async def _receive():
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message):
    pass


async def asgi_block(app, scopes: list[dict]) -> float:
    """µs per request over a block; each request gets a fresh copy of its scope."""
    gc.collect()
    start = clock()
    for scope in scopes:
        await app(dict(scope), _receive, _send)
    return (clock() - start) / len(scopes) * 1e6


# --- aiohttp ---------------------------------------------------------------------------------

class _NullTransport:
    def write(self, data):
        pass

    def writelines(self, data):
        pass

    def is_closing(self):
        return False

    def get_extra_info(self, name, default=None):
        return default


class _NullProtocol:
    transport = _NullTransport()
    _paused = False

    async def _drain_helper(self):
        pass


def aiohttp_app(count: int, metrics: Metrics | None, middleware=None, request_id: bool = True,
                around_handler=None) -> web.Application:
    """The app bare, instrumented for `metrics` the documented way (`instrument_aiohttp`: the
    middleware, moved around the app's handler at start-up, and with the request id on its
    `on_response_prepare` receiver), with `middleware`, or with `around_handler(handler,
    request)` wrapping the app's handler; started as aiohttp's runner starts it."""
    async def endpoint(request):
        return web.Response(body=b"ok", content_type="text/plain")

    app = web.Application(middlewares=[] if middleware is None else [middleware])
    if metrics is not None:
        instrument_aiohttp(app, metrics, request_id=request_id)
    for template, _ in route_paths(count):
        app.router.add_get(template, endpoint)
    start(app)
    if around_handler is not None:
        app._handle = partial(around_handler, app._handle)
    return app


def start(app: web.Application) -> None:
    """What aiohttp's runner does before it makes its server: start-up, then freeze. Start-up
    is driven by hand (it runs inside the bench's event loop): none of its receivers here
    waits on anything."""
    app.on_startup.freeze()
    try:
        app.startup().send(None)
    except StopIteration:
        pass
    else:
        raise RuntimeError("an on_startup receiver waited: start the app in an event loop")
    app.freeze()


def aiohttp_label_variants(count: int) -> dict:
    """The labels suite's aiohttp apps (see LABELLED_VARIANTS): the floor wraps the app's
    handler as ours does; FLOOR_MIDDLEWARE is the same as a middleware, for aiohttp's own price
    of running one."""
    return {"bare": aiohttp_app(count, None), FLOOR: aiohttp_app(count, None, around_handler=aiohttp_floor),
            FLOOR_MIDDLEWARE: aiohttp_app(count, None, web.middleware(_reordered(aiohttp_floor))),
            **{name: aiohttp_app(count, **_labelled(**options)) for name, options in LABELLED_VARIANTS.items()}}


async def aiohttp_floor(handler, request):
    """The least any aiohttp metrics code does, recording nothing: a timed handler and its
    response's status."""
    start_ = perf_counter()
    response = await handler(request)
    request["bench.floor"] = (perf_counter() - start_, response.status)
    return response


def _reordered(around_handler):
    """`around_handler(handler, request)` as a middleware function `(request, handler)`."""
    def middleware(request, handler):
        return around_handler(handler, request)
    return middleware


def aiohttp_requests(app: web.Application, paths: list[str], loop, labelled: bool = False, first: int = 0) -> list:
    """A request per path; labelled: the n-th with label_headers(first + n)."""
    protocol = _NullProtocol()
    return [make_mocked_request("GET", path, app=app, loop=loop, writer=StreamWriter(protocol, loop),
                                headers={"Host": "bench", **(label_headers(first + n) if labelled else {})})
            for n, path in enumerate(paths)]


async def aiohttp_block(app: web.Application, requests: list) -> float:
    gc.collect()
    start = clock()
    for request in requests:
        response = await app._handle(request)
        # What aiohttp's server does next (no-ops when the middleware already sent it).
        await response.prepare(request)
        await response.write_eof()
    return (clock() - start) / len(requests) * 1e6


# --- run -------------------------------------------------------------------------------------

async def interleave(blocks: dict, rounds: int) -> dict[str, list[float]]:
    """µs/request per variant and round; `blocks[name]()` runs one block (sync or async)."""
    async def run(block):
        result = block()
        return await result if inspect.isawaitable(result) else result

    for block in blocks.values():  # warm up: middleware stacks built, label children created
        await run(block)
    samples = {name: [] for name in blocks}
    for round_ in range(rounds):
        order = list(blocks.items())
        order = order[round_ % len(order):] + order[:round_ % len(order)]
        for name, block in order:
            samples[name].append(await run(block))
    return samples


async def fastapi_suite(framework: str, variants: dict, count: int, requests: int, rounds: int,
                        labelled: bool = False) -> list[tuple]:
    paths = [path for _, path in route_paths(count)]
    scopes = [asgi_scope(paths[n % len(paths)], label_headers(n) if labelled else None) for n in range(requests)]
    blocks = {name: (lambda app=app: asgi_block(app, scopes)) for name, app in variants.items()}
    return table_rows(framework, count, await interleave(blocks, rounds))


async def aiohttp_suite(framework: str, variants: dict, count: int, requests: int, rounds: int,
                        labelled: bool = False) -> list[tuple]:
    loop = asyncio.get_running_loop()
    paths = [path for _, path in route_paths(count)]
    cycle = [paths[n % len(paths)] for n in range(requests)]
    blocks = {name: (lambda app=app: aiohttp_block(app, aiohttp_requests(app, cycle, loop, labelled)))
              for name, app in variants.items()}
    return table_rows(framework, count, await interleave(blocks, rounds))


def sampled_span():
    """Make a sampled OpenTelemetry span current (what a tracing SDK does per request)."""
    from opentelemetry import context, trace

    span = trace.NonRecordingSpan(trace.SpanContext(
        trace_id=0x5B8AA5A2D2C872E8321CF37308D69DF2, span_id=0x051581BF3CB55C13, is_remote=False,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)))
    return context.attach(trace.set_span_in_context(span))


async def measure(rounds: int, requests: int, route_counts=ROUTE_COUNTS, suites=SUITES) -> list[tuple]:
    rows = []
    for count in route_counts:
        if "base" in suites:
            rows += await fastapi_suite("FastAPI", fastapi_variants(count), count, requests, rounds)
            plain = {"bare": aiohttp_app(count, None),
                     "vigil_instrument": aiohttp_app(count, Metrics(CollectorRegistry()))}
            rows += await aiohttp_suite("aiohttp", plain, count, requests, rounds)
        if "labels" in suites:
            rows += await fastapi_suite("FastAPI, labels", fastapi_label_variants(count), count, requests, rounds,
                                        labelled=True)
            rows += await aiohttp_suite("aiohttp, labels", aiohttp_label_variants(count), count, requests, rounds,
                                        labelled=True)
        if "exemplars" in suites:
            from opentelemetry import context

            token = sampled_span()
            try:
                rows += await fastapi_suite("FastAPI, sampled span", fastapi_exemplar_variants(count), count,
                                            requests, rounds)
                rows += await aiohttp_suite("aiohttp, sampled span", {"bare": aiohttp_app(count, None), **{
                    name: aiohttp_app(count, Metrics(CollectorRegistry(), exemplars=on))
                    for name, on in (("exemplars off", False), ("exemplars on", True))}}, count, requests, rounds)
            finally:
                context.detach(token)
        if "wsgi" in suites:
            rows += await wsgi_suite("Flask", flask_variants(count), count, requests, rounds)
            rows += await wsgi_suite("Django", django_variants(count), count, requests, rounds)
    return rows


# --- WSGI: Flask and Django ------------------------------------------------------------------

def wsgi_environs(paths: list[str]) -> list[dict]:
    from werkzeug.test import EnvironBuilder

    return [EnvironBuilder(path=path, method="GET", headers={"User-Agent": "bench"}).get_environ() for path in paths]


def _start_response(status, headers, exc_info=None):
    return None


def wsgi_block(app, environs: list[dict]) -> float:
    """µs per request over a block, as a WSGI server calls the app: call, iterate, close."""
    gc.collect()
    start = clock()
    for environ in environs:
        body = app(environ, _start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (clock() - start) / len(environs) * 1e6


async def wsgi_suite(framework: str, variants: dict, count: int, requests: int, rounds: int) -> list[tuple]:
    paths = [path for _, path in route_paths(count)]
    cycle = [paths[n % len(paths)] for n in range(requests)]
    blocks = {name: (lambda app=app: wsgi_block(app, wsgi_environs(cycle))) for name, app in variants.items()}
    return table_rows(framework, count, await interleave(blocks, rounds))


def flask_app(count: int):
    from flask import Flask

    app = Flask(f"bench{count}")
    for n, (template, _) in enumerate(route_paths(count)):
        app.add_url_rule(template.replace("{item_id}", "<int:item_id>"), f"r{n}", lambda **params: "ok")
    return app


def flask_variants(count: int) -> dict:
    from prometheus_flask_exporter import PrometheusMetrics

    from vigil_instrument import instrument_flask

    ours = flask_app(count)
    instrument_flask(ours, Metrics(CollectorRegistry()))
    exporter = flask_app(count)
    PrometheusMetrics(exporter, registry=CollectorRegistry(), group_by="url_rule")
    return {"bare": flask_app(count), "vigil_instrument": ours, "prometheus_flask_exporter": exporter}


def django_variants(count: int) -> dict:
    """Django's handler reads MIDDLEWARE when it is made and ROOT_URLCONF per request: one
    URL module per route count, one handler per middleware list."""
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.urls import path

    from vigil_instrument import instrument_django

    if not settings.configured:
        settings.configure(DEBUG=False, SECRET_KEY="bench", ALLOWED_HOSTS=["*"], MIDDLEWARE=[],
                           INSTALLED_APPS=[], USE_TZ=True, LOGGING_CONFIG=None)
        django.setup()
    urls = types.ModuleType(f"vigil_bench_urls_{count}")
    urls.urlpatterns = [path(template.lstrip("/").replace("{item_id}", "<int:item_id>"),
                             lambda request, **params: HttpResponse(b"ok"), name=f"r{n}")
                        for n, (template, _) in enumerate(route_paths(count))]
    sys.modules[urls.__name__] = urls
    settings.ROOT_URLCONF = urls.__name__

    def handler(*middleware: str) -> WSGIHandler:
        settings.MIDDLEWARE = list(middleware)
        return WSGIHandler()
    return {"bare": handler(),
            "vigil_instrument": instrument_django(handler("vigil_instrument.django.RouteMiddleware"),
                                                  Metrics(CollectorRegistry())),
            "django-prometheus": handler("django_prometheus.middleware.PrometheusBeforeMiddleware",
                                         "django_prometheus.middleware.PrometheusAfterMiddleware")}


def table_rows(framework: str, count: int, samples: dict[str, list[float]]) -> list[tuple]:
    """(app, routes, variant, min, median, overhead min, overhead paired median); None for the
    bare app. The paired median is the median over rounds of (variant - bare) within the round:
    blocks of one round run back to back, so a load that changes between rounds cancels out."""
    bare = samples["bare"]
    rows = []
    for name, values in samples.items():
        low, mid = min(values), statistics.median(values)
        overhead = (None, None) if name == "bare" else (
            low - min(bare), statistics.median(v - b for v, b in zip(values, bare)))
        rows.append((framework, count, name, low, mid, *overhead))
    return rows


def summary(rows: list[tuple]) -> list[str]:
    """The issue's targets, as figures of this run (overheads: min / median µs per request)."""
    overhead = {(app, count, name): (low, mid) for app, count, name, _, _, low, mid in rows if low is not None}
    counts = sorted({row[1] for row in rows})
    lines = []

    def pair(key) -> str:
        low, mid = overhead[key]
        return f"{low:.1f} / {mid:.1f}"

    def ratio(key, reference) -> str:
        return " / ".join(f"{other / ours:.1f}x" if ours > 0 else "n/a"
                          for other, ours in zip(overhead[key], overhead[reference]))

    for app, others in (("FastAPI, labels", ("prometheus-fastapi-instrumentator", "starlette-exporter")),
                        ("aiohttp, labels", ())):
        for count in counts:
            ours = (app, count, "vigil_instrument")
            if ours in overhead:
                against = "; ".join(f"{name} {pair((app, count, name))} ({ratio((app, count, name), ours)})"
                                    for name in others)
                lines.append(f"- {app}, {count} routes: vigil_instrument {pair(ours)} µs"
                             + (f"; {against}" if against else ""))
    lines += makeup(rows)
    for app in ("FastAPI, sampled span", "aiohttp, sampled span"):
        for count in counts:
            if (app, count, "exemplars on") in overhead:
                on, off = overhead[(app, count, "exemplars on")], overhead[(app, count, "exemplars off")]
                lines.append(f"- {app}, {count} routes: exemplars add {on[0] - off[0]:.1f} / {on[1] - off[1]:.1f} µs")
    for app, library in (("Flask", "prometheus_flask_exporter"), ("Django", "django-prometheus")):
        for count in counts:
            if (app, count, library) in overhead:
                lines.append(f"- {app}, {count} routes: vigil_instrument {pair((app, count, 'vigil_instrument'))} µs, "
                             f"{library} {pair((app, count, library))} µs: "
                             f"{ratio((app, count, library), (app, count, 'vigil_instrument'))} cheaper")
    return lines


def makeup(rows: list[tuple]) -> list[str]:
    """What our labelled figure is made of (min overheads): the framework's floor, what each
    per-request feature adds over ours without it, and the rest of the middleware."""
    overhead = {(app, count, name): (low, mid) for app, count, name, _, _, low, mid in rows if low is not None}
    return [_makeup(overhead, app, count) for app in ("FastAPI, labels", "aiohttp, labels")
            for count in sorted({row[1] for row in rows}) if (app, count, FLOOR) in overhead]


def _makeup(overhead: dict, app: str, count: int) -> str:
    ours = overhead[(app, count, "vigil_instrument")][0]
    floor = overhead[(app, count, FLOOR)][0]
    labels = ours - overhead[(app, count, "vigil_instrument, no labels")][0]
    request_id = ours - overhead[(app, count, "vigil_instrument, no request id")][0]
    return (f"- {app}, {count} routes, made of: floor (time + status, nothing recorded) {floor:.1f} µs, "
            f"per-request labels {labels:.1f}, request id {request_id:.1f}, "
            f"the rest (recording, sizes, in-flight, route) {ours - floor - labels - request_id:.1f}")


# The targets (docs/performance.md). Each is judged on the min overheads, the figures
# least disturbed by other processes; the paired medians are printed next to them.
LABELS_MAX_US = 10.0      # per-request labels on, whole middleware, aiohttp and ASGI
FLAT_MAX_GROWTH_US = 2.0  # "flat": the most routes may cost at most this much more than the fewest
EXEMPLARS_MAX_US = 2.0    # exemplars on minus off
WSGI_MIN_RATIO = 3.0      # Flask and Django: the other library's overhead / ours


def targets(rows: list[tuple]) -> list[str]:
    """One PASS / FAIL line per target of the issue, with the figures it was judged on."""
    overhead = {(app, count, name): (low, mid) for app, count, name, _, _, low, mid in rows if low is not None}
    counts = sorted({row[1] for row in rows})
    return [line for line in (_labels_target(overhead, counts), _exemplars_target(overhead, counts),
                              *(_wsgi_target(overhead, counts, app, library) for app, library in (
                                  ("Flask", "prometheus_flask_exporter"), ("Django", "django-prometheus"))))
            if line is not None]


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _figures(by_case: dict, unit: str = " µs") -> str:
    """`app routes min (paired median)` for each (app, route count)."""
    return "; ".join(f"{app.split(',')[0]} {count} routes {low:.1f}{unit} (paired median {mid:.1f}{unit})"
                     for (app, count), (low, mid) in by_case.items())


def _labels_target(overhead: dict, counts: list[int]) -> str | None:
    ours = {(app, count): overhead[(app, count, "vigil_instrument")] for app in ("aiohttp, labels", "FastAPI, labels")
            for count in counts if (app, count, "vigil_instrument") in overhead}
    if not ours:
        return None
    within = all(low <= LABELS_MAX_US for low, _ in ours.values())
    fewest, most = counts[0], counts[-1]
    flat = all(ours[(app, most)][0] - ours[(app, fewest)][0] <= FLAT_MAX_GROWTH_US
               for app, count in ours if count == fewest and (app, most) in ours)
    return (f"{_verdict(within and flat)}: per-request labels <= {LABELS_MAX_US:g} µs per request on aiohttp and "
            f"ASGI, flat across routes (+<= {FLAT_MAX_GROWTH_US:g} µs): {_figures(ours)}")


def _exemplars_target(overhead: dict, counts: list[int]) -> str | None:
    added = {}
    for app in ("aiohttp, sampled span", "FastAPI, sampled span"):
        for count in counts:
            if (app, count, "exemplars on") in overhead:
                on, off = overhead[(app, count, "exemplars on")], overhead[(app, count, "exemplars off")]
                added[(app, count)] = (on[0] - off[0], on[1] - off[1])
    if not added:
        return None
    return (f"{_verdict(all(low <= EXEMPLARS_MAX_US for low, _ in added.values()))}: exemplars add <= "
            f"{EXEMPLARS_MAX_US:g} µs per request: {_figures(added)}")


def _wsgi_target(overhead: dict, counts: list[int], app: str, library: str) -> str | None:
    ratios = {}
    for count in counts:
        if (app, count, library) in overhead:
            ours, theirs = overhead[(app, count, "vigil_instrument")], overhead[(app, count, library)]
            ratios[(app, count)] = tuple(other / mine if mine > 0 else float("inf")
                                         for other, mine in zip(theirs, ours))
    if not ratios:
        return None
    return (f"{_verdict(all(low >= WSGI_MIN_RATIO for low, _ in ratios.values()))}: {app} at least "
            f"{WSGI_MIN_RATIO:g}x cheaper per request than {library}: {_figures(ratios, 'x')}")


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = ", ".join(f"{name} {version(name)}" for name in (
        "fastapi", "starlette", "aiohttp", "flask", "django", "prometheus-client", "opentelemetry-api",
        "prometheus-fastapi-instrumentator", "starlette-exporter", "prometheus-flask-exporter",
        "django-prometheus"))
    return (f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()} on "
            f"{platform.system()} {platform.release()}; {packages}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--requests", type=int, default=300, help="requests per block")
    parser.add_argument("--routes", type=int, nargs="+", default=ROUTE_COUNTS, help="route counts")
    parser.add_argument("--suites", nargs="+", choices=SUITES, default=SUITES)
    parser.add_argument("--clock", choices=CLOCKS, default="cpu", help="cpu: this thread's CPU time")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    rows = asyncio.run(measure(args.rounds, args.requests, args.routes, args.suites))
    print(f"{args.rounds} rounds x {args.requests} requests per variant, {args.clock} time; {machine()}\n")
    print("| app | routes | variant | min µs/req | median µs/req | overhead min µs | overhead paired median µs |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for row in rows:
        cells = [f"{cell:.1f}" if isinstance(cell, float) else "-" if cell is None else str(cell) for cell in row]
        print("| " + " | ".join(cells) + " |")
    print("\nOverheads over the bare app, min / paired median µs per request (ratios: theirs / ours):")
    print("\n".join(summary(rows)))
    lines = targets(rows)
    if lines:
        print("\nTargets (judged on the min overheads):")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
