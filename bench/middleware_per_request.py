"""Per-request CPU time of the labelled middlewares, each request timed on its own and
interleaved with the same request on every other variant.

    python bench/middleware_per_request.py [--rounds 20000] [--routes 6 56]

middleware_bench.py times blocks of requests. This development VM runs at two speeds that
switch within milliseconds (a bare app's median block is 1.7-1.9x its fastest), so a block of
a slower variant is less likely to run whole in the fast speed, and its min is biased upwards.
Here round k sends request k to each variant in turn (the order rotating from round to round)
and times each request alone with this thread's CPU clock: the variants of a round run within
a few hundred µs of one another, in the same speed. The table gives, per variant, the 5th
percentile and the median of its requests' CPU time, and the overhead over the bare app: the
difference of the 5th percentiles (the fast speed; the target line uses it) and of the mins,
and the median over rounds of (variant - bare) in the same round. A round's clock reads cost
the same for every variant and cancel in the differences.

Variants: the labels suite of middleware_bench.py (tenant and client from headers, 20 tenants
and 3 clients cycled): the bare app, the floor (time + status only, installed where ours is),
ours with the request id off, and ours as documented (labels and request id on); aiohttp also
with a minimal wrapper that does the target's core and nothing else (a yardstick); FastAPI also
with prometheus-fastapi-instrumentator and starlette-exporter configured with the same labels
(`--no-others` leaves them out: they make a round several times longer).
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import statistics
import sys
from bisect import bisect_left
from contextvars import ContextVar
from pathlib import Path
from time import perf_counter, thread_time_ns

from multidict import istr

sys.path.insert(0, str(Path(__file__).resolve().parent))

import middleware_bench as bench  # noqa: E402

OURS, NO_REQUEST_ID = "vigil_instrument", "vigil_instrument, no request id"
MINIMAL = "minimal: labels, id, one histogram"
OTHERS = ("prometheus-fastapi-instrumentator", "starlette-exporter")
CHUNK = 500  # rounds between two garbage collections (none runs inside a chunk)


def minimal_wrapper():
    """The least code that does the labelled target's core on aiohttp, as a yardstick: two
    label headers (cached), a request id in a context variable and the response's header, a
    counter and one histogram per (route, status, labels). Nothing else the issue asks for: no
    in-flight gauge, sizes, exemplars, caps, streamed responses or aiohttp's own 500s."""
    request_id, tenant, client = istr("X-Request-ID"), istr("X-Tenant-ID"), istr("X-Client-Name")
    request_id_var, tenant_var = ContextVar("bench_request_id"), ContextVar("bench_tenant")
    ids, bounds = itertools.count(1), (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))
    label_sets, series = {}, {}

    async def wrapper(handler, request):
        headers = request.headers
        rid = headers.get(request_id)
        if rid is None:
            rid = "bench-" + str(next(ids))
        request_id_var.set(rid)
        raw = (headers.get(tenant), headers.get(client))
        labels = label_sets.get(raw) or label_sets.setdefault(raw, raw)
        tenant_var.set(labels[0])
        start = perf_counter()
        response = await handler(request)
        elapsed = perf_counter() - start
        response.headers[request_id] = rid
        key = (request.match_info.route, response.status, labels)
        values = series.get(key) or series.setdefault(key, [0.0] * (2 + len(bounds)))
        values[0] += 1.0
        values[1] += elapsed
        values[2 + bisect_left(bounds, elapsed)] += 1.0
        return response
    return wrapper


def aiohttp_senders(count: int, loop) -> dict:
    """{variant: (prepare(k) -> the k-th request's input, send(input) -> awaitable)}."""
    apps = bench.aiohttp_label_variants(count)
    apps[MINIMAL] = bench.aiohttp_app(count, None, around_handler=minimal_wrapper())
    paths = [path for _, path in bench.route_paths(count)]

    def sender(app):
        def prepare(k):
            return bench.aiohttp_requests(app, [paths[k % len(paths)]], loop, labelled=True, first=k)[0]

        async def send(request):
            response = await app._handle(request)
            await response.prepare(request)  # what aiohttp's server does next (no-ops after ours)
            await response.write_eof()
        return prepare, send
    return {name: sender(apps[name]) for name in ("bare", bench.FLOOR, MINIMAL, NO_REQUEST_ID, OURS)}


def fastapi_senders(count: int, others: bool) -> dict:
    apps = bench.fastapi_label_variants(count)
    paths = [path for _, path in bench.route_paths(count)]
    scopes = [bench.asgi_scope(paths[k % len(paths)], bench.label_headers(k)) for k in range(600)]

    def sender(app):
        def prepare(k):
            return dict(scopes[k % len(scopes)])

        def send(scope):
            return app(scope, bench._receive, bench._send)
        return prepare, send
    names = ("bare", bench.FLOOR, NO_REQUEST_ID, OURS, *(OTHERS if others else ()))
    return {name: sender(apps[name]) for name in names}


async def interleave(senders: dict, rounds: int) -> dict[str, list[int]]:
    """CPU ns of each variant's request, per round."""
    names = list(senders)
    for prepare, send in senders.values():  # warm up: label children created, code specialised
        for k in range(100):
            await send(prepare(k))
    samples = {name: [] for name in names}
    for first in range(0, rounds, CHUNK):
        chunk = range(first, min(first + CHUNK, rounds))
        # the inputs are built ahead, as middleware_bench.py builds a block's: building a
        # mocked aiohttp request just before its clock starts evicts the framework's code and
        # data from the CPU caches, and the bare request then takes about 1.6x as long
        inputs = {name: [prepare(k) for k in chunk] for name, (prepare, _) in senders.items()}
        gc.collect()
        gc.disable()
        try:
            for index, k in enumerate(chunk):
                shift = k % len(names)
                for name in names[shift:] + names[:shift]:
                    send, request = senders[name][1], inputs[name][index]
                    start = thread_time_ns()
                    await send(request)
                    samples[name].append(thread_time_ns() - start)
        finally:
            gc.enable()
    return samples


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[round(fraction * (len(ordered) - 1))]


def rows(app: str, count: int, samples: dict[str, list[int]]) -> list[tuple]:
    """(app, routes, variant, p5, median, overhead p5, overhead min, paired median) in µs."""
    bare = samples["bare"]
    result = []
    for name, values in samples.items():
        p5, median = percentile(values, 0.05) / 1e3, statistics.median(values) / 1e3
        overhead = (None, None, None) if name == "bare" else (
            p5 - percentile(bare, 0.05) / 1e3, (min(values) - min(bare)) / 1e3,
            statistics.median(v - b for v, b in zip(values, bare)) / 1e3)
        result.append((app, count, name, p5, median, *overhead))
    return result


def target(table: list[tuple]) -> str:
    ours = {(app, count): p5 for app, count, name, _, _, p5, _, _ in table if name == OURS}
    within = all(p5 <= bench.LABELS_MAX_US for p5 in ours.values())
    counts = sorted({count for _, count in ours})
    flat = all(ours[(app, counts[-1])] - ours[(app, counts[0])] <= bench.FLAT_MAX_GROWTH_US
               for app, count in ours if count == counts[0])
    figures = "; ".join(f"{app} {count} routes {p5:.1f} µs" for (app, count), p5 in ours.items())
    return (f"{'PASS' if within and flat else 'FAIL'}: per-request labels <= {bench.LABELS_MAX_US:g} µs per "
            f"request on aiohttp and ASGI (5th percentiles), flat across routes "
            f"(+<= {bench.FLAT_MAX_GROWTH_US:g} µs): {figures}")


async def measure(rounds: int, route_counts, others: bool) -> list[tuple]:
    loop = asyncio.get_running_loop()
    table = []
    for count in route_counts:
        table += rows("aiohttp, labels", count, await interleave(aiohttp_senders(count, loop), rounds))
        table += rows("FastAPI, labels", count, await interleave(fastapi_senders(count, others), rounds))
    return table


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=positive, default=20000, help="requests per variant")
    parser.add_argument("--routes", type=positive, nargs="+", default=bench.ROUTE_COUNTS, help="route counts")
    parser.add_argument("--no-others", dest="others", action="store_false",
                        help="FastAPI without prometheus-fastapi-instrumentator and starlette-exporter")
    args = parser.parse_args()
    table = asyncio.run(measure(args.rounds, args.routes, args.others))
    print(f"{args.rounds} requests per variant, each timed alone (CPU time), interleaved; {bench.machine()}\n")
    print("| app | routes | variant | p5 µs/req | median µs/req | overhead p5 µs | overhead min µs "
          "| overhead paired median µs |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for row in table:
        cells = [f"{cell:.1f}" if isinstance(cell, float) else "-" if cell is None else str(cell) for cell in row]
        print("| " + " | ".join(cells) + " |")
    print("\n" + target(table))


if __name__ == "__main__":
    main()
