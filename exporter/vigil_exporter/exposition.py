"""The `/metrics` body, rendered once per refresh instead of once per scrape.

Every finished collector run marks the snapshot dirty; one render, RENDER_DELAY later, takes in
every run that finished meanwhile (the jobs of one round finish within moments of each other,
and a render blocks the event loop for a few milliseconds). It produces each format that
scrapers use, the classic text format always and OpenMetrics from the first scrape that asks for
it, each also gzip-compressed. A scrape only picks the right pre-rendered bytes, so its cost
does not depend on how slow the database is or how many Prometheus replicas scrape.

A render formats only the families that changed. A job's families are new objects after each of
its runs and the same objects until the next, so the text of a family object is kept and reused
while that object is served. Families made at each collection (the self metrics, the process
metrics) are formatted every time; they are small.
"""
from __future__ import annotations

import asyncio
import gzip
import re
import time

from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_format
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_format

# The classic text format every Prometheus since 2.0 reads; names here are all legacy-safe.
TEXT = text_format.CONTENT_TYPE_PLAIN_0_0_4
OPENMETRICS = openmetrics_format.CONTENT_TYPE_LATEST
GZIP_LEVEL = 6
RENDER_DELAY = 1.0  # seconds; values are at most this much older than their collector run
FORMATS = {"text": (text_format.generate_latest, TEXT),
           "openmetrics": (openmetrics_format.generate_latest, OPENMETRICS)}
TRAILER = {"text": b"", "openmetrics": b"# EOF\n"}  # once per body, after every family


class Rendered:
    """One format's body, its gzip copy, and the response headers for each (made once)."""

    __slots__ = ("body", "gzipped", "content_type", "headers", "gzip_headers")

    def __init__(self, body: bytes, gzipped: bytes, content_type: str):
        self.body, self.gzipped, self.content_type = body, gzipped, content_type
        self.headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
        self.gzip_headers = {**self.headers, "Content-Encoding": "gzip"}


class Exposition:
    def __init__(self, registry: CollectorRegistry, formats: tuple[str, ...] = ("text",)):
        self.registry = registry
        self.render_seconds = 0.0
        self.renders = 0
        self.rendered: dict[str, Rendered] = dict.fromkeys(formats)
        self._pending: asyncio.TimerHandle | None = None
        # id(family) -> (family, {format: bytes}); the family is kept so its id stays its own
        self._formatted: dict[int, tuple[Metric, dict[str, bytes]]] = {}

    def mark_dirty(self) -> None:
        """Ask for a render RENDER_DELAY from now, unless one is already due."""
        if self._pending is not None:
            return
        try:
            self._pending = asyncio.get_running_loop().call_later(RENDER_DELAY, self.flush)
        except RuntimeError:  # no running loop (CLI one-shot use)
            self.render()

    def flush(self) -> None:
        """Render now if a render is due (readiness: the first round is in the body)."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
            self.render()

    def render(self) -> None:
        start = time.perf_counter()
        formatted = {}
        parts: dict[str, list[bytes]] = {name: [] for name in self.rendered}
        for family in self.registry.collect():
            kept = self._formatted.get(id(family))
            texts = kept[1] if kept is not None and kept[0] is family else {}
            for name, chunks in parts.items():
                if name not in texts:
                    texts[name] = _format(name, family)
                chunks.append(texts[name])
            formatted[id(family)] = (family, texts)
        self._formatted = formatted
        for name, chunks in parts.items():
            body = b"".join(chunks) + TRAILER[name]
            self.rendered[name] = Rendered(body, gzip.compress(body, GZIP_LEVEL, mtime=0),
                                           FORMATS[name][1])
        self.render_seconds = time.perf_counter() - start
        self.renders += 1

    def get(self, name: str) -> Rendered:
        """One format's bytes; a format nobody asked for before is rendered now, then on each
        refresh."""
        if self.rendered.get(name) is None:
            self.rendered[name] = None
            self.render()
        return self.rendered[name]

    def choose(self, accept: str) -> Rendered:
        """Content negotiation the way prometheus_client does it: OpenMetrics when asked for."""
        for part in accept.split(","):
            if part.split(";")[0].strip() == "application/openmetrics-text":
                return self.get("openmetrics")
        return self.get("text")


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (RFC 9110, section 12.5.3): listed, or
    covered by `*`, with a weight above zero. An explicit gzip entry wins over `*`; a weight that
    is not a valid qvalue (`q=abc`, `q=2`) counts as zero."""
    weights: dict[str, float] = {}
    for element in accept_encoding.split(","):
        coding, *parameters = (part.strip() for part in element.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                weight = float(value.strip()) if _QVALUE.fullmatch(value.strip()) else 0.0
        weights[coding.lower()] = weight
    weight = weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0)))
    return weight > 0


_QVALUE = re.compile(r"0(?:\.\d{0,3})?|1(?:\.0{0,3})?")


def _format(name: str, family: Metric) -> bytes:
    """One family in one format, without the body's trailer."""
    body = FORMATS[name][0](_Frozen([family]))
    return body[:len(body) - len(TRAILER[name])]


class _Frozen:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families
