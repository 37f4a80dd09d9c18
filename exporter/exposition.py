"""The `/metrics` body, rendered once per refresh instead of once per scrape.

Every finished collector run marks the snapshot dirty; one render per event-loop turn then
produces the classic text format and OpenMetrics, each also gzip-compressed. A scrape only picks
the right pre-rendered bytes, so its cost does not depend on how slow the database is or how
many Prometheus replicas scrape.
"""
from __future__ import annotations

import asyncio
import gzip
import time

from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_format
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.openmetrics import exposition as openmetrics_format

# The classic text format every Prometheus since 2.0 reads; names here are all legacy-safe.
TEXT = text_format.CONTENT_TYPE_PLAIN_0_0_4
OPENMETRICS = openmetrics_format.CONTENT_TYPE_LATEST
GZIP_LEVEL = 6


class Rendered:
    """One format's body, its gzip copy, and the response headers for each (made once)."""

    __slots__ = ("body", "gzipped", "content_type", "headers", "gzip_headers")

    def __init__(self, body: bytes, gzipped: bytes, content_type: str):
        self.body, self.gzipped, self.content_type = body, gzipped, content_type
        self.headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
        self.gzip_headers = {**self.headers, "Content-Encoding": "gzip"}


class Exposition:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.render_seconds = 0.0
        self.renders = 0
        self._pending = False
        self.text = self.openmetrics = Rendered(b"", b"", TEXT)
        registry.register(_RenderCollector(self))
        self.render()

    def mark_dirty(self) -> None:
        """Ask for a render on the next turn of the event loop (coalesces bursts)."""
        if self._pending:
            return
        self._pending = True
        try:
            asyncio.get_running_loop().call_soon(self._render_pending)
        except RuntimeError:  # no running loop (CLI one-shot use)
            self._render_pending()

    def _render_pending(self) -> None:
        self._pending = False
        self.render()

    def render(self) -> None:
        start = time.perf_counter()
        snapshot = _Frozen(list(self.registry.collect()))  # collect once, render twice
        text = text_format.generate_latest(snapshot)
        om = openmetrics_format.generate_latest(snapshot)
        self.text = Rendered(text, gzip.compress(text, GZIP_LEVEL, mtime=0), TEXT)
        self.openmetrics = Rendered(om, gzip.compress(om, GZIP_LEVEL, mtime=0), OPENMETRICS)
        self.render_seconds = time.perf_counter() - start
        self.renders += 1

    def choose(self, accept: str) -> Rendered:
        """Content negotiation the way prometheus_client does it: OpenMetrics when asked for."""
        for part in accept.split(","):
            if part.split(";")[0].strip() == "application/openmetrics-text":
                return self.openmetrics
        return self.text


def accepts_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


class _Frozen:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


class _RenderCollector:
    """Reports the cost of the previous render (the current one is still being made)."""

    def __init__(self, exposition: Exposition):
        self.exposition = exposition

    def collect(self):
        duration = GaugeMetricFamily("vigil_exposition_render_duration_seconds",
                                     "Time the previous render of /metrics took "
                                     "(text and OpenMetrics, with gzip).")
        duration.add_metric([], self.exposition.render_seconds)
        yield duration
        size = GaugeMetricFamily("vigil_exposition_size_bytes",
                                 "Size of the previous /metrics body by format and encoding.",
                                 labels=["format", "encoding"])
        for fmt, rendered in (("text", self.exposition.text),
                              ("openmetrics", self.exposition.openmetrics)):
            size.add_metric([fmt, "identity"], len(rendered.body))
            size.add_metric([fmt, "gzip"], len(rendered.gzipped))
        yield size
