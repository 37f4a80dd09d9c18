"""How long two jobs a client can trigger hold the event loop, the way they ran before the
hardening and the way they run now, in one run.

    python bench/loop_stall_bench.py [--tenants 100] [--days 366]

1. Redacting a log line that quotes hostile text ("a:a:a:..." in an alert annotation): the
   former URL-password pattern (kept here as the reference) on growing inputs, against
   `logs.redact` on the same inputs and on 1 MB.
2. The usage report's JSON for `--tenants` x `--days`: `json.dumps(indent=2)` on the loop (the
   former endpoint) against `usage.endpoint.report_json`'s encoding (one encoder call per
   tenant) on a thread of its own, with the exporter's switch interval.

Figures: the longest gap between two ticks of a 1 ms timer on the loop while the job runs (what
a scrape arriving then waits), and the job's own time.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import threading
import time

from vigil_exporter import logs
from vigil_exporter.exposition import RENDER_SWITCH_INTERVAL
from vigil_exporter.usage.report import FIELDS, LEVELS, LIMITS

FORMER_URL_PASSWORD = re.compile(
    r"(?P<head>(?:\b[a-zA-Z][a-zA-Z0-9+.-]*:/*)?[\w.~%+-]*)"
    r":(?P<pw>[^\s'\"<>]*)@(?=[^\s@'\"<>]*(?:[\s'\"<>]|$))")


async def longest_stall(job, in_thread: bool) -> tuple[float, float]:
    """(the longest loop gap, the job's seconds) while `job()` runs on the loop or a thread."""
    loop = asyncio.get_running_loop()
    gaps, done = [0.0], asyncio.Event()

    async def ticker():
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = loop.time()
            gaps.append(now - last)
            last = now
    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    if in_thread:
        finished = loop.create_future()
        threading.Thread(target=lambda: (job(), loop.call_soon_threadsafe(
            finished.set_result, None)), daemon=True).start()
        await finished
    else:
        job()
    seconds = time.perf_counter() - started
    await asyncio.sleep(0.005)
    done.set()
    await ticking
    return max(gaps), seconds


def synthetic_report(tenants: int, days: int) -> dict:
    day = {"date": "2026-01-01", **{field: 123456 for field in FIELDS}}
    return {"start_date": "2026-01-01", "end_date": "2026-12-31", "tenants": [
        {"tenant_id": f"tenant-{i:05d}", "days": [dict(day) for _ in range(days)],
         "totals": {f: 1 for f in FIELDS if f not in LEVELS}, "peaks": {f: 1 for f in LEVELS},
         "limits": {f: 1 for f in LIMITS}} for i in range(tenants)]}


def per_tenant_json(report: dict) -> bytes:
    """usage.endpoint.report_json's encoding, without the Prometheus queries before it."""
    tenants = ",\n".join(json.dumps(tenant) for tenant in report["tenants"])
    head = json.dumps({**{k: v for k, v in report.items() if k != "tenants"}, "tenants": []})
    return f"{head[:-len('[]}')]}[{tenants}]}}".encode()


async def main(args) -> None:
    sys.setswitchinterval(RENDER_SWITCH_INTERVAL)
    print("1. redacting hostile text ('a:' repeated), on the loop")
    print(f"{'input':>10} {'former pattern':>16} {'redact() now':>14}")
    for size in (1_000, 2_000, 4_000):
        text = "a:" * (size // 2)
        former, _ = await longest_stall(lambda t=text: FORMER_URL_PASSWORD.sub("***", t), False)
        now, _ = await longest_stall(lambda t=text: logs.redact(t), False)
        print(f"{size:>8} B {former * 1000:>13.0f} ms {now * 1000:>11.1f} ms")
    for text in ("a:" * 500_000, "a:@" * 350_000):
        now, _ = await longest_stall(lambda t=text: logs.redact(t), False)
        print(f"{len(text) / 1e6:>8.1f} MB {'(hours)':>16} {now * 1000:>11.1f} ms")

    report = synthetic_report(args.tenants, args.days)
    cells = args.tenants * args.days
    print(f"\n2. usage report JSON, {args.tenants} tenants x {args.days} days = {cells} cells")
    sizes = {}
    former, former_s = await longest_stall(
        lambda: sizes.setdefault("former", len(json.dumps(report, indent=2))), False)
    now, now_s = await longest_stall(
        lambda: sizes.setdefault("now", len(per_tenant_json(report))), True)
    print(f"former: indent=2 on the loop    loop held {former * 1000:8.0f} ms, "
          f"job {former_s:.2f} s, {sizes['former'] / 1e6:.1f} MB")
    print(f"now:    per tenant, own thread  loop held {now * 1000:8.1f} ms, "
          f"job {now_s:.2f} s, {sizes['now'] / 1e6:.1f} MB")
    print(f"longest stall, former / now: {former / now:.0f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--days", type=int, default=366)
    asyncio.run(main(parser.parse_args()))
