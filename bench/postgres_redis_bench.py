"""Cost of the PostgreSQL and Redis features (issue 13), in one run.

    python bench/postgres_redis_bench.py [--rounds 30] [--scrapes 300]

It starts a PostgreSQL 15 primary (pg_stat_statements preloaded) with a streaming replica and a
Redis primary with a replica (the local stack's components, free ports, a temporary directory),
loads them (200 tables, 500 distinct statements, 100,000 keys), then measures:

1. in process, the CPU time (time.process_time) of one round of the database collector's
   `postgres` job (every feature, primary and replica) and of the Redis collector with every
   feature on (primary and replica, two key patterns) and with every feature off;
2. out of process, CPU seconds per 1000 sequential keep-alive scrapes of `vigil serve` with every
   feature on, with every feature off, and of prometheus-redis-exporter and
   prometheus-postgres-exporter (Debian packages, when installed) on the same servers.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis

from vigil_exporter.collectors.database import DatabaseCollector
from vigil_exporter.collectors.redis import RedisCollector
from vigil_exporter.tools.stack.components import (
    Exporter,
    Postgres,
    PostgresReplica,
    Redis,
    RedisReplica,
)
from vigil_exporter.tools.stack.process import free_port, wait_until
from vigil_exporter.validation import Errors

PG_OFF = {key: {"enabled": False} for key in ("statements", "replication", "activity", "tables",
                                              "io")}
REDIS_OFF = {key: {"enabled": False} for key in ("replication", "slowlog", "commandstats",
                                                 "latencystats", "key_patterns")}
PATTERNS = {"key_patterns": {"patterns": ["session:*", "cart:*"]}}


def load(primary: Postgres, cache: Redis) -> None:
    primary.sql("".join(f"CREATE TABLE t{i} (n int, s text); INSERT INTO t{i} "
                        f"SELECT g, 'x' FROM generate_series(1, {50 * (i % 20 + 1)}) g; "
                        for i in range(200)))
    primary.sql("ANALYZE")
    for i in range(500):
        primary.sql(f"SELECT count(*) AS c{i} FROM t{i % 200} WHERE n > {i}")
    client = redis.Redis(host=cache.host, port=cache.port)
    with client.pipeline(transaction=False) as pipe:
        for i in range(100_000):
            pipe.set(f"{('session', 'cart', 'other')[i % 3]}:{i}", 1)
        pipe.execute()


def validated(cls, section: dict) -> dict:
    errors = Errors()
    config = cls.config_schema.validate(section, "", errors)
    assert not errors.faults, errors.faults
    return config


def round_cpu(collect, rounds: int) -> float:
    """Mean CPU ms of one round (after a first, warming round)."""
    async def measure() -> float:
        await collect()
        start = time.process_time()
        for _ in range(rounds):
            await collect()
        return (time.process_time() - start) / rounds * 1000
    return asyncio.run(measure())


def in_process(pg: tuple[str, str], rd: tuple[str, str], rounds: int) -> dict[str, float]:
    results = {}
    databases = {"main": {"url": pg[0]}, "replica": {"url": pg[1]}}
    db = DatabaseCollector(validated(DatabaseCollector, {"databases": databases}))
    results["postgres job (5 features, primary + replica)"] = round_cpu(db.collect_postgres, rounds)
    results["database job (probe only, primary + replica)"] = round_cpu(db.collect, rounds)
    for label, extra in (("every feature on", PATTERNS), ("every feature off", REDIS_OFF)):
        instances = {"cache": {"url": rd[0], **extra}, "replica": {"url": rd[1], **extra}}
        collector = RedisCollector(validated(RedisCollector, {"instances": instances}))
        results[f"redis job, {label} (primary + replica)"] = round_cpu(collector.collect, rounds)
        asyncio.run(collector.close())
    return results


def scrape_cpu(port: int, pid: int, scrapes: int) -> float:
    """CPU seconds of process `pid` (and its children) per 1000 keep-alive scrapes."""
    process = psutil.Process(pid)

    def cpu() -> float:
        total = 0.0
        for p in [process, *process.children(recursive=True)]:
            times = p.cpu_times()
            total += times.user + times.system
        return total
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(5):
        conn.request("GET", "/metrics")
        conn.getresponse().read()
    start = cpu()
    for _ in range(scrapes):
        conn.request("GET", "/metrics")
        body = conn.getresponse().read()
    spent = cpu() - start
    conn.close()
    return spent / scrapes * 1000, body.count(b"\n")


def start_binary(command: list[str], port: int, env: dict | None = None) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, **(env or {})})
    ok = wait_until(lambda: _answers(port), 15)
    if not ok:
        process.kill()
        raise RuntimeError(f"{command[0]} did not answer on {port}")
    return process


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/metrics")
        return conn.getresponse().status == 200
    except OSError:
        return False


def out_of_process(workdir: Path, pg: tuple[Postgres, Postgres], rd: tuple[Redis, Redis],
                   scrapes: int) -> dict[str, tuple[float, int]]:
    results = {}
    for label, pg_extra, redis_extra in (("vigil, every feature on", {}, PATTERNS),
                                         ("vigil, every feature off", {"postgres": PG_OFF},
                                          REDIS_OFF)):
        config = {"collectors": {
            "business": {"enabled": False},
            "database": {"databases": {"main": {"url": pg[0].url, **pg_extra},
                                       "replica": {"url": pg[1].url, **pg_extra}}},
            "redis": {"instances": {"cache": {"url": rd[0].url, **redis_extra},
                                    "replica": {"url": rd[1].url, **redis_extra}}}}}
        exporter = Exporter(label.split(",")[0] + str(len(results)), workdir, free_port(),
                            config=config, seed=False)
        exporter.start()
        try:
            results[label] = scrape_cpu(exporter.port, exporter.pid, scrapes)
        finally:
            exporter.stop()
    references = []
    if shutil.which("prometheus-redis-exporter"):
        port = free_port()
        references.append(("redis_exporter", port, [
            "prometheus-redis-exporter", f"--redis.addr=redis://{rd[0].address}",
            f"--web.listen-address=127.0.0.1:{port}"], None))
    if shutil.which("prometheus-postgres-exporter"):
        port = free_port()
        references.append(("postgres_exporter", port, [
            "prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{port}"],
            {"DATA_SOURCE_NAME": f"postgresql://vigil@{pg[0].address}/vigil?sslmode=disable"}))
    for label, port, command, env in references:
        process = start_binary(command, port, env)
        try:
            results[label] = scrape_cpu(port, process.pid, scrapes)
        finally:
            process.terminate()
            process.wait(10)
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--scrapes", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        workdir = Path(tmp)
        primary = Postgres("primary", workdir, free_port(), driver="psycopg", statements=True)
        replica = PostgresReplica("replica", workdir, free_port(), driver="psycopg",
                                  statements=True, primary=primary)
        cache = Redis("cache", workdir, free_port(), extra_args=["--repl-diskless-sync-delay", "0"])
        cache_replica = RedisReplica("cache-replica", workdir, free_port(), primary=cache)
        started = []
        try:
            for component in (primary, replica, cache, cache_replica):
                component.start()
                started.append(component)
            load(primary, cache)
            wait_until(lambda: redis.Redis(port=cache_replica.port).dbsize() >= 100_000, 30)
            print(f"load: {os.getloadavg()[0]:.1f} (1-minute average) on {os.cpu_count()} cores")
            print("\n| in-process round | CPU ms per round |\n|---|---:|")
            for label, ms in in_process((primary.url, replica.url), (cache.url, cache_replica.url),
                                        args.rounds).items():
                print(f"| {label} | {ms:.2f} |")
            print(f"\n| target | sample lines | CPU s per 1000 scrapes ({args.scrapes} scrapes) |"
                  "\n|---|---:|---:|")
            for label, (seconds, lines) in out_of_process(
                    workdir, (primary, replica), (cache, cache_replica), args.scrapes).items():
                print(f"| {label} | {lines} | {seconds:.3f} |")
        finally:
            for component in reversed(started):
                component.stop()
            primary.cleanup()
            replica.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
