"""The gzip body kept per family: its CRC combined from the families' own, one member, and a
render after a system-only round reads only the families that changed."""
from __future__ import annotations

import asyncio
import gc
import gzip
import random
import shutil
import subprocess
import zlib

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from vigil_exporter import crc32
from vigil_exporter import exposition as exposition_module
from vigil_exporter.app import WIRING, make_app
from vigil_exporter.collectors.business import LabelSets, Query, to_family
from vigil_exporter.config import load
from vigil_exporter.exposition import Exposition

COMBINERS = [pytest.param(crc32.crc32_combine, id="libz"),
             pytest.param(crc32.crc32_combine_python, id="python")]


def test_the_system_zlib_is_used_where_it_exists():
    assert crc32._LIBZ_COMBINE is not None  # Debian's libz.so.1; the fallback is for elsewhere


@pytest.mark.parametrize("combine", COMBINERS)
def test_a_combined_crc_is_zlibs_crc_of_the_concatenation(combine):
    rng = random.Random(12)
    sizes = (0, 0, 1, 2, 7, 64, 4096, 65_537, 300_001)
    for _ in range(100):
        chunks = [rng.randbytes(rng.choice(sizes)) for _ in range(rng.randrange(9))]
        crc = rng.choice([0, zlib.crc32(b"prefix")])
        start = crc
        for chunk in chunks:
            crc = combine(crc, zlib.crc32(chunk), len(chunk))
        assert crc == zlib.crc32(b"".join(chunks), start)


@pytest.mark.parametrize("combine", COMBINERS)
def test_a_combined_crc_over_lengths_past_32_bits(combine):
    """Lengths no test could allocate: combining is associative (A+B then C equals A then B+C,
    whose length is the sum), and both implementations agree; a 32-bit length would wrap."""
    a, b, c = (zlib.crc32(text) for text in (b"first", b"second", b"third"))
    for n, m in ((2**31 - 1, 3), (2**32 + 5, 2**32 - 5), (10**12, 7 * 10**11)):
        assert combine(combine(a, b, n), c, m) == combine(a, combine(b, c, m), n + m)
        assert combine(a, b, n) == crc32.crc32_combine_python(a, b, n)
        if n >= 2**32:
            assert combine(a, b, n) != combine(a, b, n & 0xFFFFFFFF)


class Changing:
    """A small collector whose families are new objects after each run (as the system
    collector's)."""

    def __init__(self):
        self.runs = 0
        self.families = []

    def run(self):
        self.runs += 1
        counter = CounterMetricFamily("vigil_test_reads", "Reads.", labels=["disk"])
        counter.add_metric(["sda"], self.runs * 512)
        self.families = [GaugeMetricFamily("vigil_test_load", "Load.", value=self.runs / 3),
                         counter, GaugeMetricFamily("vigil_test_empty", "No sample.")]

    def collect(self):
        return self.families


def tenants_registry(tenants: int) -> tuple[CollectorRegistry, Changing]:
    """A business family of `tenants` rows (unchanged from one render to the next) and a
    collector that changes at every collection."""
    query = Query("vigil_test_tenant_messages", "Messages.", "", "value", ("tenant",), "counter",
                  60, 10, 50_000, "q")
    family = to_family(query, ["tenant", "value"],
                       [(f"tenant-{i}", float(i)) for i in range(tenants)], LabelSets())[0]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(type("Rows", (), {"collect": lambda self: [family]})())
    changing = Changing()
    changing.run()
    registry.register(changing)
    return registry, changing


def test_after_a_system_only_round_the_gzip_body_is_the_plain_body(monkeypatch):
    registry, changing = tenants_registry(5_000)
    exposition = Exposition(registry, formats=("text", "openmetrics"))
    exposition.render()
    read = []
    real_crc32 = zlib.crc32

    class CountingZlib:  # what a render hands zlib to checksum
        def __getattr__(self, name):
            return getattr(zlib, name)

        @staticmethod
        def crc32(data, value=0):
            read.append(len(data))
            return real_crc32(data, value)

    monkeypatch.setattr(exposition_module, "zlib", CountingZlib())
    for _ in range(3):
        changing.run()  # a round in which only the small collector ran
        exposition.render()
        for name, expected in (("text", generate_latest(registry)), ("openmetrics", None)):
            rendered = exposition.rendered[name]
            body = rendered.body
            if expected is not None:
                assert body == expected
            assert gzip.decompress(rendered.gzipped) == body
            assert rendered.size == len(body)
        assert sum(read) < 2_000  # the changed families and the trailers, not the 5,000 rows
        read.clear()
    assert b'vigil_test_reads_total{disk="sda"} 2048.0\n' in exposition.rendered["text"].body


def test_the_gzip_body_is_one_member_that_strict_readers_accept(tmp_path):
    """Prometheus reads the body with Go's gzip reader, which checks the CRC and length of each
    member and reads on past its end: the body is one member, its trailer right, nothing after."""
    registry, changing = tenants_registry(300)
    exposition = Exposition(registry)
    exposition.render()
    changing.run()
    exposition.render()
    rendered = exposition.rendered["text"]
    reader = zlib.decompressobj(wbits=31)  # gzip framing: header, CRC and size are checked
    assert reader.decompress(rendered.gzipped) == rendered.body
    assert reader.eof and reader.unused_data == b""
    assert rendered.gzipped[-8:] == (zlib.crc32(rendered.body).to_bytes(4, "little")
                                     + len(rendered.body).to_bytes(4, "little"))
    if shutil.which("gzip"):
        path = tmp_path / "body.gz"
        path.write_bytes(rendered.gzipped)
        subprocess.run(["gzip", "--test", str(path)], check=True)


async def test_a_client_without_gzip_gets_the_chunks_never_joined():
    """The plain body goes out family by family: serving it joins nothing on the event loop."""
    app = make_app(load(None, environ={}, overrides={
        "collectors.business": {"enabled": False}, "collectors.database": {"enabled": False},
        "collectors.redis": {"enabled": False}}))
    wiring = app[WIRING]
    try:
        async with TestClient(TestServer(app)) as client:
            await asyncio.wait_for(wiring.scheduler.first_round_done.wait(), 10)
            await wiring.exposition.flush()
            rendered = await wiring.exposition.get("text")
            plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
            body = await plain.read()
            assert rendered._body is None  # nothing joined to serve it
            assert body == b"".join(rendered.chunks) and b"vigil_build_info" in body
            assert plain.headers["Content-Length"] == str(len(body)) == str(rendered.size)
            assert plain.headers["Content-Type"] == rendered.content_type
            assert "Content-Encoding" not in plain.headers
            head = await client.head("/metrics", headers={"Accept-Encoding": "identity"})
            assert head.status == 200 and await head.read() == b""
            zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"},
                                      auto_decompress=False)
            assert gzip.decompress(await zipped.read()) == body
    finally:
        gc.unfreeze()  # the app froze what existed after its first round


class RecordingWriter:
    def __init__(self):
        self.writes: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))


@pytest.mark.parametrize("sizes", [[100] * 300, [70_000, 10, 10, 70_000], [10], []],
                         ids=["many small families", "large and small", "one", "none"])
async def test_the_plain_body_goes_out_in_few_writes(sizes):
    """Small family chunks are joined into writes of about 64 KiB (a write per family was a
    system call per family), and no write is more than one chunk past that size."""
    from vigil_exporter.app import ChunksPayload

    chunks = [bytes([65 + i % 26]) * size for i, size in enumerate(sizes)]
    writer = RecordingWriter()
    await ChunksPayload(chunks, sum(sizes)).write(writer)
    assert b"".join(writer.writes) == b"".join(chunks)
    limit = ChunksPayload.WRITE_SIZE
    assert len(writer.writes) <= sum(sizes) // limit + 1
    assert all(len(w) < limit + max(sizes) for w in writer.writes)
