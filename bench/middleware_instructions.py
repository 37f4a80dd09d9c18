"""Per-request cost of the HTTP middlewares in CPU instructions, which other processes on the
machine do not change: the variants of middleware_bench.py, each run under valgrind's callgrind.

    python bench/middleware_instructions.py [--requests 60] [--routes 6 56]
                                            [--suites labels exemplars wsgi]

On a shared machine the CPU time of a request varies with the load by more than the targets
(the bare aiohttp request takes 20 to 45 µs of CPU on the 2-core development VM); the number
of instructions it executes does not. The script runs itself under
`valgrind --tool=callgrind` (Debian package `valgrind`) with instrumentation off while the apps
are built and warmed up, turns it on, and runs each variant's block of requests inside its own
`itertools.takewhile` call, whose entry zeroes callgrind's counters and whose exit dumps them:
one count per block. The table gives instructions per request and the overhead over the bare
app; the µs column converts that overhead at the bare app's own rate (its instructions over
its CPU time, measured natively in the same run, min of 5 blocks). That column is a lower
bound: on the development VM middleware code runs at 2.7-3.2 instructions per ns against the
bare frameworks' 5 (docs/performance.md, eighth pass), and middleware_per_request.py measures
the time itself. The PASS / FAIL lines use middleware_bench.py's targets on those µs.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import glob
import json
import os
import subprocess
import sys
import tempfile
import types
from itertools import takewhile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import middleware_bench as bench  # noqa: E402
from opentelemetry import context  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from vigil_instrument import Metrics  # noqa: E402


def variants(count: int, requests: int, suites, loop) -> dict:
    """{(app, variant): () -> one block's awaitable or result}; the inputs are built here."""
    paths = [path for _, path in bench.route_paths(count)]
    cycle = [paths[n % len(paths)] for n in range(requests)]
    labelled_scopes = [bench.asgi_scope(cycle[n], bench.label_headers(n)) for n in range(requests)]
    plain_scopes = [bench.asgi_scope(path) for path in cycle]
    apps = {}
    if "labels" in suites:
        for name, app in bench.fastapi_label_variants(count).items():
            apps[("FastAPI, labels", name)] = ("asgi", app, labelled_scopes)
        for name, app in bench.aiohttp_label_variants(count).items():
            apps[("aiohttp, labels", name)] = ("aiohttp", app, True)
    if "exemplars" in suites:
        for name, app in bench.fastapi_exemplar_variants(count).items():
            apps[("FastAPI, sampled span", name)] = ("asgi", app, plain_scopes)
        for name, metrics in (("bare", None), ("exemplars off", Metrics(CollectorRegistry(), exemplars=False)),
                              ("exemplars on", Metrics(CollectorRegistry(), exemplars=True))):
            apps[("aiohttp, sampled span", name)] = ("aiohttp", bench.aiohttp_app(count, metrics), False)
    if "wsgi" in suites:
        for framework, made in (("Flask", bench.flask_variants(count)), ("Django", bench.django_variants(count))):
            for name, app in made.items():
                apps[(framework, name)] = ("wsgi", app, None)

    def block(kind, app, inputs):
        if kind == "asgi":
            return lambda: bench.asgi_block(app, inputs)
        if kind == "aiohttp":
            requests_ = bench.aiohttp_requests(app, cycle, loop, inputs)
            return lambda: bench.aiohttp_block(app, requests_)
        environs = bench.wsgi_environs(cycle)
        return lambda: bench.wsgi_block(app, environs)
    return {key: (lambda spec=spec: block(*spec)) for key, spec in apps.items()}


def run(loop, block) -> float:
    result = block()
    return loop.run_until_complete(result) if asyncio.iscoroutine(result) else result


def child(args) -> None:
    """Under callgrind: warm up, turn instrumentation on, one counted block per variant."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    bench.gc = types.SimpleNamespace(collect=lambda: None)  # collections are not the middleware's
    order = []
    prepared = {count: variants(count, args.requests, args.suites, loop) for count in args.routes}
    for made in prepared.values():
        for prepare in made.values():
            run(loop, prepare())
            run(loop, prepare())
    subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], capture_output=True, timeout=300, check=True)
    gc.disable()
    for count, made in prepared.items():
        for key, prepare in made.items():
            block = prepare()
            gc.collect()
            order.append((count, *key))
            traced = key[0].endswith("sampled span")  # as in middleware_bench: a span only there
            token = bench.sampled_span() if traced else None
            list(takewhile(lambda _, block=block: run(loop, block) and False, [0]))
            if traced:
                context.detach(token)
    Path(args.order_file).write_text(json.dumps(order))


def native_rates(args) -> dict:
    """CPU µs per request of each bare app, natively (min of 5 blocks)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    rates = {}
    for count in args.routes:
        for (app, name), prepare in variants(count, args.requests, args.suites, loop).items():
            if name == "bare":
                rates[(count, app)] = min(run(loop, prepare()) for _ in range(6))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=60, help="requests per block (60 cycles tenants and clients)")
    parser.add_argument("--routes", type=int, nargs="+", default=bench.ROUTE_COUNTS)
    parser.add_argument("--suites", nargs="+", choices=("labels", "exemplars", "wsgi"),
                        default=("labels", "exemplars", "wsgi"))
    parser.add_argument("--order-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.order_file:
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out, order_file = os.path.join(tmp, "callgrind.out"), os.path.join(tmp, "order")
        subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
                        "--toggle-collect=takewhile_next", "--zero-before=takewhile_next",
                        "--dump-after=takewhile_next", f"--callgrind-out-file={out}",
                        sys.executable, __file__, *sys.argv[1:], "--order-file", order_file],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dumps = sorted(glob.glob(out + ".*"), key=lambda name: int(name.rsplit(".", 1)[1]))
        order = [tuple(key) for key in json.loads(Path(order_file).read_text())]
        counts = {key: _total(dump) / args.requests for key, dump in zip(order, dumps, strict=True)}
    report(counts, native_rates(args), args)


def _total(dump: str) -> int:
    with open(dump) as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith("totals:"))


def report(counts: dict, rates: dict, args) -> None:
    print(f"{args.requests} requests per variant, instructions per request (callgrind); {bench.machine()}\n")
    print("| app | routes | variant | kIr/req | overhead kIr | overhead µs (at the bare app's rate) |")
    print("|---|---:|---|---:|---:|---:|")
    rows = []
    for (count, app, name), instructions in counts.items():
        bare = counts[(count, app, "bare")]
        per_us = bare / rates[(count, app)]
        overhead = None if name == "bare" else instructions - bare
        us = None if overhead is None else overhead / per_us
        rows.append((app, count, name, instructions, instructions, us, us))
        cells = "- | -" if overhead is None else f"{overhead / 1000:.1f} | {us:.1f}"
        print(f"| {app} | {count} | {name} | {instructions / 1000:.1f} | {cells} |")
    print("\nBare apps natively: " + "; ".join(f"{app} {count} routes {us:.1f} µs CPU"
                                                for (count, app), us in rates.items()))
    lines = bench.makeup(rows)
    if lines:
        print("\nThe labelled figures, made of (µs at the bare app's rate):")
        print("\n".join(lines))
    print("\nTargets (on the µs above, min and paired median alike):")
    print("\n".join(bench.targets(rows)))


if __name__ == "__main__":
    main()
