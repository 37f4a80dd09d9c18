"""`/metrics` for aiohttp and ASGI services, single-process or multiprocess.

With PROMETHEUS_MULTIPROC_DIR set (prometheus_client's multiprocess mode: several worker
processes writing their values to files in that directory), the endpoint serves the aggregate
of every worker's files, whichever worker answers the scrape. Workers that exit should be
reported with `mark_process_dead(pid)` (e.g. from gunicorn's `child_exit` hook) so that live
gauges (in-flight requests, running agents) drop their share.

Content negotiation: OpenMetrics when the scraper asks for it, gzip when accepted.
"""
from __future__ import annotations

import glob
import gzip
import logging
import os

from prometheus_client import REGISTRY, CollectorRegistry, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.multiprocess import mark_process_dead as _mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger("vigil_instrument")


class WorkerFiles:
    """The aggregate of the workers' files. A missing or empty directory serves an empty body,
    as prometheus_client would, but is logged (once per problem) instead of failing silently or
    with a bare traceback."""

    def __init__(self, path: str):
        self.path = path
        self._reported: str | None = None
        if isinstance(values.ValueClass, type) and issubclass(values.ValueClass, values.MutexValue):
            log.warning("%s is set but prometheus_client was imported before it was: this process's "
                        "metrics are kept in memory, not written to %s. Set the variable in the "
                        "environment the server starts with (not in its config file).", MULTIPROC_ENV, path)

    def collect(self):
        if not os.path.isdir(self.path):
            self._report(f"{MULTIPROC_ENV}={self.path} does not exist or is not a directory: "
                         "create it, empty, before the workers start; /metrics is empty")
            return []
        files = glob.glob(os.path.join(self.path, "*.db"))
        if not files:
            self._report(f"{MULTIPROC_ENV}={self.path} holds no worker files: no worker writes its "
                         "metrics there (was prometheus_client imported before the variable was "
                         "set?); /metrics is empty")
            return []
        self._reported = None
        return MultiProcessCollector.merge(files, accumulate=True)

    def _report(self, problem: str) -> None:
        if problem != self._reported:
            self._reported = problem
            log.warning("%s", problem)


def exposition_registry(source=None) -> CollectorRegistry:
    """What a scrape should read: `source` (a `Metrics` object or a registry; default the
    default REGISTRY), or in multiprocess mode a registry aggregating every worker's files."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        aggregate = CollectorRegistry()
        aggregate.register(WorkerFiles(path))
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
