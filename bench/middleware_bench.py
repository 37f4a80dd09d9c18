"""Per-request overhead of the HTTP middleware, against the same app without it and against
prometheus-fastapi-instrumentator and starlette-exporter, with 6 and 56 routes.

    python bench/middleware_bench.py [--rounds 40] [--requests 300] [--routes 6 56]

FastAPI: each variant is the same app plus one middleware (added with `add_middleware`), called
directly as an ASGI app (no network). aiohttp: `vigil_instrument` vs no middleware, each
request built with `make_mocked_request` outside the timed block and sent through the app's
handler chain (`Application._handle`, what aiohttp's server calls) and a real `StreamWriter`
writing into a null transport. Requests cycle over every route. Variants are interleaved, one
block of `--requests` requests each per round; the table gives the min and median of the
per-round µs/request and the overhead over the bare app (min - min, median - median).
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web  # noqa: E402
from aiohttp.http_writer import StreamWriter  # noqa: E402
from aiohttp.test_utils import make_mocked_request  # noqa: E402
from fastapi import FastAPI, Response  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from vigil_instrument import Metrics, PrometheusMiddleware, aiohttp_middleware  # noqa: E402

ROUTE_COUNTS = (6, 56)


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


def asgi_scope(path: str) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "headers": [(b"host", b"bench"), (b"user-agent", b"bench")],
            "server": ("bench", 80), "client": ("127.0.0.1", 40000)}


async def _receive():
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message):
    pass


async def asgi_block(app, scopes: list[dict]) -> float:
    """µs per request over a block; each request gets a fresh copy of its scope."""
    gc.collect()
    start = time.perf_counter()
    for scope in scopes:
        await app(dict(scope), _receive, _send)
    return (time.perf_counter() - start) / len(scopes) * 1e6


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


def aiohttp_app(count: int, instrumented: bool) -> web.Application:
    async def endpoint(request):
        return web.Response(body=b"ok", content_type="text/plain")

    middlewares = [aiohttp_middleware(Metrics(CollectorRegistry()))] if instrumented else []
    app = web.Application(middlewares=middlewares)
    for template, _ in route_paths(count):
        app.router.add_get(template, endpoint)
    app.freeze()
    return app


def aiohttp_requests(app: web.Application, paths: list[str], loop) -> list:
    protocol = _NullProtocol()
    return [make_mocked_request("GET", path, headers={"Host": "bench"}, app=app, loop=loop,
                                writer=StreamWriter(protocol, loop)) for path in paths]


async def aiohttp_block(app: web.Application, requests: list) -> float:
    gc.collect()
    start = time.perf_counter()
    for request in requests:
        response = await app._handle(request)
        # What aiohttp's server does next (no-ops when the middleware already sent it).
        await response.prepare(request)
        await response.write_eof()
    return (time.perf_counter() - start) / len(requests) * 1e6


# --- run -------------------------------------------------------------------------------------

async def measure(rounds: int, requests: int, route_counts=ROUTE_COUNTS) -> list[tuple]:
    loop = asyncio.get_running_loop()
    rows = []
    for count in route_counts:
        paths = [path for _, path in route_paths(count)]
        cycle = [paths[i % len(paths)] for i in range(requests)]
        scopes = [asgi_scope(path) for path in cycle]

        variants = fastapi_variants(count)
        for app in variants.values():  # build middleware stacks, create label children
            await asgi_block(app, scopes[:200])
        samples = {name: [] for name in variants}
        for round_ in range(rounds):
            order = list(variants.items())
            order = order[round_ % len(order):] + order[:round_ % len(order)]
            for name, app in order:
                samples[name].append(await asgi_block(app, scopes))
        rows += table_rows("FastAPI", count, samples)

        apps = {"bare": aiohttp_app(count, False), "vigil_instrument": aiohttp_app(count, True)}
        for app in apps.values():
            await aiohttp_block(app, aiohttp_requests(app, cycle[:200], loop))
        samples = {name: [] for name in apps}
        for round_ in range(rounds):
            order = list(apps.items())[::1 if round_ % 2 == 0 else -1]
            for name, app in order:
                prepared = aiohttp_requests(app, cycle, loop)
                samples[name].append(await aiohttp_block(app, prepared))
        rows += table_rows("aiohttp", count, samples)
    return rows


def table_rows(framework: str, count: int, samples: dict[str, list[float]]) -> list[tuple]:
    bare_min, bare_median = min(samples["bare"]), statistics.median(samples["bare"])
    rows = []
    for name, values in samples.items():
        low, mid = min(values), statistics.median(values)
        overhead = ("-", "-") if name == "bare" else (f"{low - bare_min:.1f}", f"{mid - bare_median:.1f}")
        rows.append((framework, count, name, f"{low:.1f}", f"{mid:.1f}", *overhead))
    return rows


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
        "fastapi", "starlette", "aiohttp", "prometheus-client", "prometheus-fastapi-instrumentator",
        "starlette-exporter"))
    return (f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()} on "
            f"{platform.system()} {platform.release()}; {packages}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--requests", type=int, default=300, help="requests per block")
    parser.add_argument("--routes", type=int, nargs="+", default=ROUTE_COUNTS, help="route counts")
    args = parser.parse_args()
    rows = asyncio.run(measure(args.rounds, args.requests, args.routes))
    print(f"{args.rounds} rounds x {args.requests} requests per variant; {machine()}\n")
    print("| app | routes | variant | min µs/req | median µs/req | overhead min µs | overhead median µs |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


if __name__ == "__main__":
    main()
