"""`/metrics` for aiohttp and ASGI services, single-process or multiprocess.

With PROMETHEUS_MULTIPROC_DIR set (prometheus_client's multiprocess mode: several worker
processes writing their values to files in that directory), the endpoint serves the aggregate
of every worker's files, whichever worker answers the scrape. The live gauges (in-flight
requests, running agents) of a worker that is gone must drop its share: each scrape removes the
live-gauge files of process ids that no longer run (a killed `uvicorn --workers` child, a
gunicorn worker restarted after a timeout), and `mark_process_dead(pid)` does it at once from a
hook (gunicorn's `child_exit`). Counters and histograms of dead workers stay in the totals.
Turn the scrape-time clean-up off (`remove_dead_workers=False`) when the directory is shared
by processes of another PID namespace (another container), whose ids this one cannot see.

Content negotiation: OpenMetrics when the scraper asks for it, gzip when accepted.
"""
from __future__ import annotations

import glob
import gzip
import logging
import os
import re

from prometheus_client import REGISTRY, CollectorRegistry, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.multiprocess import mark_process_dead as _mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client's per-process files of live gauges: gauge_livesum_<pid>.db, gauge_liveall_...
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")
log = logging.getLogger("vigil_instrument")


class WorkerFiles:
    """The aggregate of the workers' files. A missing or empty directory serves an empty body,
    as prometheus_client would, but is logged (once per problem) instead of failing silently or
    with a bare traceback."""

    def __init__(self, path: str, remove_dead_workers: bool = True):
        self.path = path
        self.remove_dead_workers = remove_dead_workers
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
        if self.remove_dead_workers:
            files = self._drop_dead_workers(files)
        return MultiProcessCollector.merge(files, accumulate=True)

    def _drop_dead_workers(self, files: list[str]) -> list[str]:
        dead = {int(match.group(1)) for match in map(_LIVE_GAUGE_FILE.fullmatch, map(os.path.basename, files))
                if match and not _running(int(match.group(1)))}
        for pid in dead:
            log.info("worker %d is gone: removing its live gauges from %s", pid, self.path)
            _mark_process_dead(pid, self.path)
        return [f for f in files if os.path.exists(f)] if dead else files

    def _report(self, problem: str) -> None:
        if problem != self._reported:
            self._reported = problem
            log.warning("%s", problem)


def _running(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): os.kill said it exists


def exposition_registry(source=None, *, remove_dead_workers: bool = True) -> CollectorRegistry:
    """What a scrape should read: `source` (a `Metrics` object or a registry; default the
    default REGISTRY), or in multiprocess mode a registry aggregating every worker's files
    (removing dead workers' live gauges first, unless `remove_dead_workers=False`)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        aggregate = CollectorRegistry()
        aggregate.register(WorkerFiles(path, remove_dead_workers))
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
    if accepts_gzip(accept_encoding):
        body = gzip.compress(body, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    return body, headers


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (RFC 9110, section 12.5.3): listed, or
    covered by `*`, with a weight above zero; an explicit gzip entry wins over `*`, and a weight
    that is not a valid qvalue (`q=abc`, `q=2`) counts as zero. The exporter has the same rule
    (vigil_exporter.exposition.accepts_gzip): the two packages share no module."""
    weights: dict[str, float] = {}
    for element in accept_encoding.split(","):
        coding, *parameters = (part.strip() for part in element.split(";"))
        weight = 1.0
        for name, _, value in (p.partition("=") for p in parameters):
            if name.strip().lower() == "q":
                weight = float(value.strip()) if _QVALUE.fullmatch(value.strip()) else 0.0
        weights[coding.lower()] = weight
    return weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0))) > 0


_QVALUE = re.compile(r"0(?:\.\d{0,3})?|1(?:\.0{0,3})?")


def aiohttp_metrics_handler(registry=None, *, remove_dead_workers: bool = True):
    """An aiohttp handler serving `registry` (a `Metrics` object or a registry):
    `app.router.add_get("/metrics", aiohttp_metrics_handler(metrics))`."""
    from aiohttp import web

    source = exposition_registry(registry, remove_dead_workers=remove_dead_workers)

    async def metrics(request: web.Request) -> web.Response:
        body, headers = render(source, request.headers.get("Accept", ""),
                               request.headers.get("Accept-Encoding", ""))
        return web.Response(body=body, headers=headers)
    return metrics


class MetricsApp:
    """An ASGI app serving the exposition; a class, not a function, so that Starlette's Route
    treats it as an ASGI app rather than a request handler."""

    def __init__(self, registry=None, remove_dead_workers: bool = True):
        self.source = exposition_registry(registry, remove_dead_workers=remove_dead_workers)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        headers = {name.lower(): value.decode("latin-1") for name, value in scope.get("headers", ())}
        body, out = render(self.source, headers.get(b"accept", ""), headers.get(b"accept-encoding", ""))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in out.items()]})
        await send({"type": "http.response.body", "body": body})


def asgi_metrics_app(registry=None, *, remove_dead_workers: bool = True) -> MetricsApp:
    """`app.add_route("/metrics", asgi_metrics_app(metrics))` (FastAPI / Starlette); `registry`
    is a `Metrics` object or a registry."""
    return MetricsApp(registry, remove_dead_workers)


def wsgi_metrics_app(registry=None, *, remove_dead_workers: bool = True):
    """A WSGI app serving the exposition of `registry` (a `Metrics` object or a registry); Flask:
    `instrument_flask(..., metrics_path=)`, Django: `vigil_instrument.django.metrics_view`."""
    source = exposition_registry(registry, remove_dead_workers=remove_dead_workers)

    def metrics_app(environ, start_response):
        body, headers = render(source, environ.get("HTTP_ACCEPT", ""), environ.get("HTTP_ACCEPT_ENCODING", ""))
        start_response("200 OK", [*headers.items(), ("Content-Length", str(len(body)))])
        return [body]
    return metrics_app
