"""The `/metrics` body, rendered once per refresh instead of once per scrape.

Every finished collector run marks the snapshot dirty; one render, RENDER_DELAY later, takes in
every run that finished meanwhile (the jobs of one round finish within moments of each other,
and a render blocks the event loop for a few milliseconds). It produces each format that
scrapers use, the classic text format always and OpenMetrics from the first scrape that asks for
it, each also gzip-compressed. A scrape only picks the right pre-rendered bytes, so its cost
does not depend on how slow the database is or how many Prometheus replicas scrape.

A render never runs on the event loop: it runs in the worker thread (worker.py), while scrapes
keep getting the previous bytes. Rendering 10,000 tenants (about 180,000 samples) takes several
hundred milliseconds of CPU; on the loop, every request arriving meanwhile waited for all of it.
In a thread it only competes for the GIL, which the interpreter hands over every switch interval
(`RENDER_SWITCH_INTERVAL` while the exporter serves), and zlib releases the GIL while it
compresses. Reading the snapshot from the thread is safe because a job replaces its list of
families in one assignment and never changes a family it has returned.

A render formats and compresses only the families that changed. A job's families are new
objects after each of its runs and the same objects until the next, so the text of a family
object and its compressed copy are kept and reused while that object is served. Families made at
each collection (the self metrics, the process metrics) are formatted every time; they are
small. The gzip body is a chain of deflate segments, one per family, each ended by a sync flush
(as pigz builds its blocks), so a round in which only the system collector ran compresses only
that collector's families; the member's CRC is combined from the families' own (crc32.py).
The text of a family is kept once, as a chunk of the body: a client that does not take gzip is
sent the chunks as they are (app.ChunksPayload).

Gauges and counters (nearly every sample: the per-tenant families) are formatted by
`_simple_samples`, which writes what prometheus_client's writers write, in a third of their time,
and once for both formats; any other family goes through prometheus_client itself.
"""
from __future__ import annotations

import asyncio
import re
import struct
import time
import zlib
from array import array

from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_format
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_format
from prometheus_client.utils import floatToGoString

from vigil_exporter.crc32 import crc32_combine
from vigil_exporter.worker import give_back_memory, off_loop

# The classic text format every Prometheus since 2.0 reads; names here are all legacy-safe.
TEXT = text_format.CONTENT_TYPE_PLAIN_0_0_4
OPENMETRICS = openmetrics_format.CONTENT_TYPE_LATEST
GZIP_LEVEL = 6
RENDER_DELAY = 1.0  # seconds; values are at most this much older than their collector run
# The GIL switch interval while serving: how long the event loop waits at most for a render
# thread to hand the GIL back after each system call (CPython's default is 5 ms, and a request
# makes several calls). docs/performance.md measures the difference.
RENDER_SWITCH_INTERVAL = 0.001
FORMATS = {"text": (text_format.generate_latest, TEXT),
           "openmetrics": (openmetrics_format.generate_latest, OPENMETRICS)}
TRAILER = {"text": b"", "openmetrics": b"# EOF\n"}  # once per body, after every family
# gzip member header (RFC 1952): deflate, no name, mtime 0, unknown OS; what gzip.compress writes
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


class Rendered:
    """One format's body, its gzip copy, and the response headers for each (made once).

    The body is kept as its chunks (one per family), which /metrics sends as they are; `body`
    joins them for whoever needs one bytes object (`vigil metrics`). Joining 10.8 MB (10,000
    tenants) at every render held the GIL for 60 to 130 ms of a loaded CPU, which every
    request waited out."""

    __slots__ = ("chunks", "size", "_body", "gzipped", "content_type", "headers",
                 "gzip_headers")

    def __init__(self, chunks: list[bytes], gzipped: bytes, content_type: str):
        self.chunks, self.gzipped, self.content_type = chunks, gzipped, content_type
        self.size = sum(map(len, chunks))
        self._body: bytes | None = None
        self.headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
        self.gzip_headers = {**self.headers, "Content-Encoding": "gzip"}

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = b"".join(self.chunks)
        return self._body


class Exposition:
    def __init__(self, registry: CollectorRegistry, formats: tuple[str, ...] = ("text",)):
        self.registry = registry
        self.render_seconds = 0.0
        self.renders = 0
        # Keys change only on the loop while no render runs (under _lock): a render iterates them.
        self.rendered: dict[str, Rendered | None] = dict.fromkeys(formats)
        self._pending: asyncio.TimerHandle | None = None
        self._lock: asyncio.Lock | None = None  # made on the loop, on first use
        self._background: set[asyncio.Task] = set()
        self._flushed: asyncio.Future | None = None  # flush_once's
        # id(family) -> (family, {format: bytes}); the family is kept so its id stays its own
        self._formatted: dict[int, tuple[Metric, dict[str, bytes]]] = {}
        self._label_texts = LabelTexts()

    def mark_dirty(self) -> None:
        """Ask for a render RENDER_DELAY from now, unless one is already due."""
        if self._pending is not None:
            return
        try:
            self._pending = asyncio.get_running_loop().call_later(RENDER_DELAY, self._due)
        except RuntimeError:  # no running loop (CLI one-shot use)
            self.render()

    def _due(self) -> None:
        self._pending = None
        task = asyncio.ensure_future(self.refresh())
        self._background.add(task)  # a reference, so the task is not collected mid-render
        task.add_done_callback(self._background.discard)

    async def refresh(self) -> None:
        """Render in the worker thread, after any render in progress."""
        async with self._render_lock():
            await off_loop(self.render)
        await off_loop(give_back_memory)  # what the render and the runs before it freed

    async def flush(self) -> None:
        """Render now if a render is due, and wait for one in progress (readiness: the first
        round is in the body)."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
            await self.refresh()
        else:
            async with self._render_lock():
                pass

    async def flush_once(self) -> None:
        """`flush()` on the first call; every later call waits for that one flush and, once it
        is done, returns at once. A readiness probe gives up after a second and asks again:
        with 50,000 tenants each try used to start a full render of its own, they queued up,
        and the exporter never became ready."""
        if self._flushed is None:
            self._flushed = asyncio.ensure_future(self.flush())
        await asyncio.shield(self._flushed)

    def _render_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def render(self) -> None:
        """Render every format in use now, in the calling thread (a worker thread when
        serving; the caller makes sure that only one render runs at a time)."""
        start = time.perf_counter()
        formatted = {}
        names = tuple(self.rendered)
        parts: dict[str, list] = {name: [] for name in names}
        label_texts, used = self._label_texts, []
        for family in self.registry.collect():
            if isinstance(getattr(family, "values", None), array):
                used.append(family.labelsets)
            kept = self._formatted.get(id(family))
            pieces = kept[1] if kept is not None and kept[0] is family else {}
            missing = [name for name in names if name not in pieces]
            if missing:
                pieces.update(_format(missing, family, label_texts))
            for name, chunks in parts.items():
                chunks.append(pieces[name])
            formatted[id(family)] = (family, pieces)
        self._formatted = formatted
        label_texts.prune(used)
        for name, chunks in parts.items():
            self.rendered[name] = _assemble(name, chunks)
        self.render_seconds = time.perf_counter() - start
        self.renders += 1

    async def get(self, name: str) -> Rendered:
        """One format's bytes; a format nobody asked for before is rendered now (off the
        loop), then on each refresh."""
        if self.rendered.get(name) is None:
            async with self._render_lock():
                if self.rendered.get(name) is None:
                    self.rendered[name] = None
                    await off_loop(self.render)
        return self.rendered[name]

    def get_now(self, name: str) -> Rendered:
        """`get` without an event loop (`vigil metrics`)."""
        if self.rendered.get(name) is None:
            self.rendered[name] = None
            self.render()
        return self.rendered[name]

    async def choose(self, accept: str) -> Rendered:
        """Content negotiation the way prometheus_client does it: OpenMetrics when asked for."""
        for part in accept.split(","):
            if part.split(";")[0].strip() == "application/openmetrics-text":
                return await self.get("openmetrics")
        return await self.get("text")


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


class _Piece:
    """One family in one format: its text, the text's CRC-32, and its deflate segment."""

    __slots__ = ("text", "crc", "deflated")

    def __init__(self, text: bytes):
        self.text = text
        self.crc = zlib.crc32(text)
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.deflated = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)


def _assemble(name: str, pieces: list[_Piece]) -> Rendered:
    """The body's chunks and its gzip member from the pieces. The member's CRC is combined from
    the pieces' own (crc32.py), so a render reads only the bytes of the families it formatted;
    only the small gzip body is joined."""
    chunks = [piece.text for piece in pieces]
    trailer = TRAILER[name]
    if trailer:
        chunks.append(trailer)
    crc = 0
    for piece in pieces:
        crc = crc32_combine(crc, piece.crc, len(piece.text))
    crc = zlib.crc32(trailer, crc)
    finish = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = [piece.deflated for piece in pieces]
    deflated.append(finish.compress(trailer) + finish.flush(zlib.Z_FINISH))
    size = sum(map(len, chunks))
    gzipped = b"".join([GZIP_HEADER, *deflated, struct.pack("<II", crc, size & 0xFFFFFFFF)])
    return Rendered(chunks, gzipped, FORMATS[name][1])


def _format(names: list[str], family: Metric,
            label_texts: LabelTexts) -> dict[str, _Piece]:
    """One family in the given formats, without the body's trailer."""
    samples = _simple_samples(family, label_texts)
    if samples is None:
        return {name: _Piece(_general(name, family)) for name in names}
    return {name: _Piece((_HEADERS[name](family) + samples).encode()) for name in names}


def _general(name: str, family: Metric) -> bytes:
    body = FORMATS[name][0](_Frozen([family]))
    return body[:len(body) - len(TRAILER[name])]


class _Frozen:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


_LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LEGACY_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SAMPLE_SUFFIX = {"gauge": "", "counter": "_total"}


def _text_header(family: Metric) -> str:
    name = family.name + _SAMPLE_SUFFIX[family.type]
    help_text = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {help_text}\n# TYPE {name} {family.type}\n"


def _openmetrics_header(family: Metric) -> str:
    help_text = _escape(family.documentation)
    unit = f"# UNIT {family.name} {family.unit}\n" if family.unit else ""
    return f"# HELP {family.name} {help_text}\n# TYPE {family.name} {family.type}\n{unit}"


_HEADERS = {"text": _text_header, "openmetrics": _openmetrics_header}


def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
    return value


def _simple_samples(family: Metric, label_texts: LabelTexts) -> str | None:
    """The sample lines of a gauge or counter whose samples are plain (legacy names, no
    timestamp, exemplar or native histogram), the same in both formats; None for any other
    family. A business family (RowFamily) is plain by construction and is written from its
    rows by `_row_samples`."""
    if family.type not in _SAMPLE_SUFFIX:
        return None
    name = family.name + _SAMPLE_SUFFIX[family.type]
    if not _LEGACY_NAME.fullmatch(name):
        return None
    if isinstance(getattr(family, "values", None), array):
        return _row_samples(name, family.labelsets, family.values, label_texts)
    pairs = _plain_pairs(family, name)
    if pairs is None:
        return None
    lines: list[str] = []
    orders: dict[tuple, list[str]] = {}
    for labels, value in pairs:
        text = _label_text(labels, orders)
        if text is None:
            return None
        lines.append(f"{name}{text} {floatToGoString(value)}\n")
    return "".join(lines)


class LabelTexts:
    """The text of each business label set, made once: a tenant's labels dict is the same
    object in every business family and every round (LabelSets), so 16 families of 10,000
    tenants need 10,000 texts, not 160,000, made when the set first appears and looked up (in C)
    by every render after it. Keyed by id(); the dict is kept beside its text, so its id is not
    reused while cached. The sets that no family uses any more are dropped when the cache has
    grown to twice its size after the last prune (`prune`, after a render)."""

    PRUNE_FLOOR = 1024  # texts; below this the cache is never pruned

    def __init__(self):
        self.texts: dict[int, str | None] = {}  # None: a label name that is not legacy-safe
        self.kept: dict[int, dict] = {}
        self.orders: dict[tuple, list[str]] = {}
        self.pruned_size = 0

    def of(self, labelsets: list[dict]) -> list[str | None]:
        try:
            return list(map(self.texts.__getitem__, map(id, labelsets)))
        except KeyError:  # sets new to the cache
            for labels in labelsets:
                if id(labels) not in self.texts:
                    self.texts[id(labels)] = _label_text(labels, self.orders)
                    self.kept[id(labels)] = labels
            return list(map(self.texts.__getitem__, map(id, labelsets)))

    def prune(self, used: list[list[dict]]) -> None:
        """Forget the sets not in `used` (every label set list the last render served), once
        the cache has doubled since the last prune."""
        if len(self.texts) <= max(self.PRUNE_FLOOR, 2 * self.pruned_size):
            return
        alive = set()
        for labelsets in used:
            alive.update(map(id, labelsets))
        self.texts = {key: text for key, text in self.texts.items() if key in alive}
        self.kept = {key: self.kept[key] for key in self.texts}
        self.pruned_size = len(self.texts)


def _row_samples(name: str, labelsets: list[dict], values: array,
                 label_texts: LabelTexts) -> str | None:
    """A RowFamily's lines, each step one pass in C: label texts by identity, and each distinct
    value (by its bits: 0.0 and -0.0 differ, every NaN is one) formatted once."""
    labels = label_texts.of(labelsets)
    if None in labels:
        return None
    bits = array("q")
    bits.frombytes(values.tobytes())
    numbers = {pattern: floatToGoString(_FLOAT.unpack(_BITS.pack(pattern))[0])
               for pattern in set(bits)}
    return "".join([f"{name}{text} {number}\n" for text, number in
                    zip(labels, map(numbers.__getitem__, bits))])


_FLOAT, _BITS = struct.Struct("d"), struct.Struct("q")


def _label_text(labels: dict[str, str], orders: dict[tuple, list[str]]) -> str | None:
    """`{name="value",...}` in the order prometheus_client writes, empty without labels; None
    for a label name that is not legacy-safe."""
    if not labels:
        return ""
    keys = tuple(labels)
    order = orders.get(keys)
    if order is None:
        if not all(_LEGACY_LABEL.fullmatch(key) for key in keys):
            return None
        order = orders[keys] = sorted(keys)
    return "{" + ",".join([f'{key}="{_escape(labels[key])}"' for key in order]) + "}"


def _plain_pairs(family: Metric, name: str) -> list[tuple[dict, float]] | None:
    pairs = []
    for sample in family.samples:
        if (sample.name != name or sample.timestamp is not None or sample.exemplar is not None
                or sample.native_histogram is not None):
            return None
        pairs.append((sample.labels, sample.value))
    return pairs
