"""Benchmark the exporter beside the reference exporters, in one run.

    python bench/exporter_bench.py [--outdir /tmp/vigil-bench] [--tenants 20]

It starts a PostgreSQL and a Redis of its own (Debian binaries, free ports), fills the default
schema with a demo data set, and runs two exporters with every collector on:

- `vigil`: PostgreSQL + Redis + system + business, about 500 series;
- `vigil_slow_query`: the same plus a business query that sleeps 5 s on every run, so the
  scrape latency while a query is stuck on the server is measured too.

Then it calls ../shared/bench/run_baseline.sh with both as EXTRA_TARGETS (node_exporter,
redis_exporter, postgres_exporter and the two Python references run beside them) and prints
Vigil's figures as ratios to the references measured in the same run. It adds what the harness
leaves out, gzip under wrk, for Vigil and the same-bytes reference. Finally it measures the CPU
time of one full collection round (system + database + Redis) in-process.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vigil_exporter.tools.stack.components import Exporter, Postgres, Redis  # noqa: E402
from vigil_exporter.tools.stack.process import free_port, wait_until  # noqa: E402


def start_servers(workdir: Path) -> tuple[Postgres, Redis]:
    """PostgreSQL and Redis from Debian's binaries, on free ports under `workdir`."""
    postgres = Postgres("postgres", workdir, free_port(), driver="psycopg").start()
    return postgres, Redis("redis", workdir, free_port()).start()


def start_exporter(workdir: Path, name: str, config: dict) -> Exporter:
    return Exporter(name, workdir, free_port(), config=config, seed=False).start()

SHARED_BENCH = ROOT.parent / "shared" / "bench"
SLOW_QUERY = {"name": "vigil_bench_slow", "help": "Sleeps 5 s on the server.", "interval": "6s",
              "timeout": "20s", "sql": "SELECT 1 AS value FROM pg_sleep(5)"}


def exporter_config(pg_url: str, redis_url: str, slow: bool) -> dict:
    business = {"interval": "15s", "queries": [SLOW_QUERY] if slow else []}
    return {"collectors": {
        "system": {"interval": "15s"},
        "database": {"interval": "15s", "databases": {"main": {"url": pg_url}}},
        "redis": {"interval": "15s", "instances": {"cache": {
            "url": redis_url, "keys": [{"key": f"queue:{i}"} for i in range(10)]}}},
        "business": business,
    }}


def start_same_bytes_ref(exporter) -> tuple[subprocess.Popen, int]:
    """bare aiohttp serving a frozen copy of Vigil's own body: the fair CPU reference."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "same_bytes_ref.py"),
                             "--source", f"{exporter.url}/metrics", "--port", str(port)])
    wait_until(lambda: _answers(port), 30)
    return proc, port


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1):
            return True
    except OSError:
        return False


def add_tenants(url: str, count: int) -> None:
    """More tenants beside the demo set, so the exposition reaches about 500 series."""
    from datetime import datetime

    from sqlalchemy import create_engine

    from vigil_exporter import dbschema
    rows = [{"name": f"bench-{i:02d}", "plan": "starter", "max_agents": 10, "max_channels": 10,
             "max_messages_per_day": 1000, "max_api_calls_per_day": 5000,
             "max_storage_bytes": 2**30, "max_concurrent_connections": 20,
             "created_at": datetime.utcnow()} for i in range(count)]
    engine = create_engine(dbschema.sync_url(url))
    with engine.begin() as connection:
        connection.execute(dbschema.tenants.insert(), rows)
    engine.dispose()


def collection_round_cpu(pg_url: str, redis_url: str, rounds: int = 50) -> float:
    """Mean CPU seconds of one round of system + database + Redis collectors, in-process."""
    from vigil_exporter.config import load
    from vigil_exporter.scheduler import Scheduler
    from vigil_exporter.wiring import build_collectors

    config = load(None, environ={}, overrides={
        "collectors.business.enabled": False,
        "collectors.database.databases": {"main": {"url": pg_url}},
        "collectors.redis.instances": {"cache": {"url": redis_url}}})
    scheduler = Scheduler(build_collectors(config)[0])

    async def measure() -> float:
        await scheduler.run_once()  # connect once, as the long-running exporter does
        start = time.process_time()
        for _ in range(rounds):
            await scheduler.run_once()
        spent = time.process_time() - start
        await scheduler.stop()
        return spent / rounds

    return asyncio.run(measure())


def summarise(results: dict) -> list[str]:
    """Vigil's CPU per 1000 scrapes and p99 as ratios to the references of the same run."""
    seq = {t["name"]: t.get("seq", {}) for t in results["targets"]}
    wrk = {t["name"]: t.get("wrk", {}) for t in results["targets"]}

    def cpu(target, mode):
        return seq.get(target, {}).get(mode, {}).get("cpu_s_per_1k")

    lines = []
    for target in ("vigil", "vigil_slow_query"):
        for mode in ("plain", "gzip", "fresh"):
            ours, p99 = cpu(target, mode), seq.get(target, {}).get(mode, {}).get("p99")
            if ours is None:
                continue
            lines.append(
                f"{target} {mode}: CPU {ours:.3f} s/1k scrapes = "
                f"{ours / cpu('redis_exporter', mode):.2f}x redis_exporter, "
                f"{ours / cpu('aiohttp_cached', mode):.2f}x aiohttp_cached, "
                f"{ours / cpu('aiohttp_same_bytes', mode):.2f}x aiohttp_same_bytes; "
                f"p99 {p99:.2f} ms")
        summary = wrk.get(target, {}).get("summary", wrk.get(target, {}))
        if summary.get("rps") or summary.get("requests_per_s"):
            lines.append(f"{target} wrk: {summary.get('rps') or summary.get('requests_per_s'):.0f} req/s")
    return lines


def gzip_under_wrk(targets: dict[str, tuple[str, int]], rounds: int = 2) -> list[str]:
    """CPU seconds per 1000 gzip requests under wrk (the shared harness's wrk sends no
    Accept-Encoding); targets alternate, `rounds` times, and the lower figure counts."""
    import re

    import psutil
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, (url, pid) in targets.items():
            process = psutil.Process(pid)
            before = sum(process.cpu_times()[:2])
            out = subprocess.run(["wrk", "-t2", "-c16", "-d10s", "-H", "Accept-Encoding: gzip",
                                  url], capture_output=True, text=True, check=True).stdout
            spent = sum(process.cpu_times()[:2]) - before
            requests = int(re.search(r"(\d+) requests in", out).group(1))
            best[name] = min(best.get(name, float("inf")), 1000 * spent / requests)
    reference = best.pop("aiohttp_same_bytes")
    return [f"{name} gzip under wrk: CPU {cpu:.4f} s/1k req = {cpu / reference:.2f}x "
            f"aiohttp_same_bytes ({reference:.4f})" for name, cpu in best.items()]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outdir", default="/tmp/vigil-bench")
    parser.add_argument("--tenants", type=int, default=15, help="tenants added to the demo set")
    parser.add_argument("--label", default="vigil")
    args = parser.parse_args()
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)

    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    postgres, redis_server = start_servers(workdir)
    exporters, same_bytes = [], None
    try:
        from vigil_exporter import dbschema
        dbschema.create_schema(postgres.url)
        dbschema.load_demo_data(postgres.url)
        add_tenants(postgres.url, args.tenants)
        import redis
        client = redis.Redis.from_url(redis_server.url)
        for i in range(10):
            client.rpush(f"queue:{i}", *range(i + 1))
        exporters = [start_exporter(workdir, name, exporter_config(postgres.url, redis_server.url, slow))
                     for name, slow in (("vigil", False), ("vigil-slow-query", True))]
        time.sleep(6)  # let the slow query start sleeping
        same_bytes = start_same_bytes_ref(exporters[0])
        extra = " ".join(f"{name}=http://127.0.0.1:{e.port}/metrics@{e.pid}"
                         for name, e in zip(("vigil", "vigil_slow_query"), exporters))
        extra += f" aiohttp_same_bytes=http://127.0.0.1:{same_bytes[1]}/metrics@{same_bytes[0].pid}"
        series = sum(1 for line in exporters[0].text().splitlines()
                     if line and not line.startswith("#"))
        print(f"vigil serves {series} samples")
        subprocess.run(["bash", str(SHARED_BENCH / "run_baseline.sh"), args.label, str(outdir)],
                       env={**os.environ, "EXTRA_TARGETS": extra}, check=True)
        rss = [rss_mib(e.pid) for e in exporters]
        results = json.loads((outdir / f"{args.label}.json").read_text())
        print("\n## Vigil against the references (same run)\n")
        gzip_targets = {name: (f"http://127.0.0.1:{e.port}/metrics", e.pid)
                        for name, e in zip(("vigil", "vigil_slow_query"), exporters)}
        gzip_targets["aiohttp_same_bytes"] = (f"http://127.0.0.1:{same_bytes[1]}/metrics",
                                              same_bytes[0].pid)
        for line in summarise(results) + gzip_under_wrk(gzip_targets):
            print("- " + line)
        print(f"- RSS after load: vigil {rss[0]:.1f} MiB, vigil_slow_query {rss[1]:.1f} MiB")
        cpu_round = collection_round_cpu(postgres.url, redis_server.url)
        print(f"- one collection round (system + database + Redis): {cpu_round * 1000:.2f} ms CPU")
    finally:
        if same_bytes:
            same_bytes[0].terminate()
        for exporter in exporters:
            exporter.stop()
        redis_server.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def rss_mib(pid: int) -> float:
    import psutil
    return psutil.Process(pid).memory_info().rss / 2**20


if __name__ == "__main__":
    sys.exit(main())
