"""`/metrics` for aiohttp and ASGI services, single-process or multiprocess.

With PROMETHEUS_MULTIPROC_DIR set (prometheus_client's multiprocess mode: several worker
processes writing their values to files in that directory), the endpoint serves the aggregate
of every worker's files, whichever worker answers the scrape. Workers that exit should be
reported with `mark_process_dead(pid)` (e.g. from gunicorn's `child_exit` hook) so that live
gauges (in-flight requests, running agents) drop their share.

Content negotiation: OpenMetrics when the scraper asks for it, gzip when accepted.
"""
from __future__ import annotations

import gzip
import os

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.multiprocess import mark_process_dead as _mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def exposition_registry(source=None) -> CollectorRegistry:
    """What a scrape should read: `source` (a `Metrics` object or a registry; default the
    default REGISTRY), or in multiprocess mode a registry aggregating every worker's files."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        aggregate = CollectorRegistry()
        MultiProcessCollector(aggregate, path=path)
        return aggregate
    if source is None:
        return REGISTRY
    return getattr(source, "registry", source)


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (multiprocess mode)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        _mark_process_dead(pid, path)


def render(registry: CollectorRegistry, accept: str = "", accept_encoding: str = "") -> tuple[bytes, dict[str, str]]:
    """The exposition body and its headers for the given Accept / Accept-Encoding."""
    encode, content_type = choose_encoder(accept)
    body = encode(registry)
    headers = {"Content-Type": content_type}
    if "gzip" in accept_encoding:
        body = gzip.compress(body, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    return body, headers


def aiohttp_metrics_handler(registry=None):
    """An aiohttp handler serving `registry` (a `Metrics` object or a registry):
    `app.router.add_get("/metrics", aiohttp_metrics_handler(metrics))`."""
    from aiohttp import web

    source = exposition_registry(registry)

    async def metrics(request: web.Request) -> web.Response:
        body, headers = render(source, request.headers.get("Accept", ""),
                               request.headers.get("Accept-Encoding", ""))
        return web.Response(body=body, headers=headers)
    return metrics


class MetricsApp:
    """An ASGI app serving the exposition; a class, not a function, so that Starlette's Route
    treats it as an ASGI app rather than a request handler."""

    def __init__(self, registry=None):
        self.source = exposition_registry(registry)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        headers = {name.lower(): value.decode("latin-1") for name, value in scope.get("headers", ())}
        body, out = render(self.source, headers.get(b"accept", ""), headers.get(b"accept-encoding", ""))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in out.items()]})
        await send({"type": "http.response.body", "body": body})


def asgi_metrics_app(registry=None) -> MetricsApp:
    """`app.add_route("/metrics", asgi_metrics_app(metrics))` (FastAPI / Starlette); `registry`
    is a `Metrics` object or a registry."""
    return MetricsApp(registry)


def wsgi_metrics_app(registry=None):
    """A WSGI app serving the exposition of `registry` (a `Metrics` object or a registry); Flask:
    `instrument_flask(..., metrics_path=)`, Django: `vigil_instrument.django.metrics_view`."""
    source = exposition_registry(registry)

    def metrics_app(environ, start_response):
        body, headers = render(source, environ.get("HTTP_ACCEPT", ""), environ.get("HTTP_ACCEPT_ENCODING", ""))
        start_response("200 OK", [*headers.items(), ("Content-Length", str(len(body)))])
        return [body]
    return metrics_app
