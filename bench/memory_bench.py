"""Where the exporter's resident memory goes, measured in one run.

    python bench/memory_bench.py [--scrapes 2000]

1. Import floor. Fresh interpreters import the libraries the exporter is built on, one after
   another, and report their RSS after each import. The first steps are bare aiohttp, the floor
   of the shared `aiohttp_cached` reference. The lightest set is what any exporter built on the
   required libraries (aiohttp, prometheus-client, psutil, PyYAML, SQLAlchemy Core, redis-py and
   the lightest PostgreSQL driver) weighs before its first line of code. The same imports are
   then measured without bytecode (what a container image without `__pycache__` pays on every
   start).
2. The exporter after load. Three configurations run next to bare aiohttp serving the same
   bytes, and each reports its RSS after the scrapes and a wrk run (when wrk is installed):
   the embedded SQLite default, PostgreSQL through psycopg plus Redis (the scrape benchmark's
   configuration), and the same through asyncpg.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from exporter_bench import (  # noqa: E402
    add_tenants,
    exporter_config,
    rss_mib,
    start_exporter,
    start_same_bytes_ref,
    start_servers,
)

AIOHTTP = ["asyncio", "aiohttp.web"]
REQUIRED = [*AIOHTTP, "prometheus_client", "psutil", "yaml", "sqlalchemy", "redis.asyncio"]
IMPORT_SETS = {
    "bare aiohttp (the aiohttp reference)": AIOHTTP,
    "required libraries + asyncpg (the floor)": [*REQUIRED, "asyncpg"],
    "Vigil with asyncpg (+ SQLAlchemy asyncio, aiosqlite)":
        [*REQUIRED, "asyncpg", "sqlalchemy.ext.asyncio", "aiosqlite"],
    "Vigil with psycopg (+ SQLAlchemy asyncio, aiosqlite)":
        [*REQUIRED, "psycopg", "sqlalchemy.ext.asyncio", "aiosqlite"],
}

IMPORT_PROBE = """
import importlib, json, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
steps = [("python", rss())]
for module in sys.argv[1:]:
    importlib.import_module(module)
    steps.append((module, rss()))
print(json.dumps(steps))
"""


def import_steps(modules: list[str], bytecode: bool = True) -> list[tuple[str, float]]:
    """[(module, RSS MiB after importing it)] in a fresh interpreter (site-packages as usual)."""
    env = dict(os.environ)
    prefix = None
    if not bytecode:  # an empty bytecode cache that is never written: every import compiles
        prefix = tempfile.mkdtemp(prefix="vigil-nopyc-")
        env.update(PYTHONPYCACHEPREFIX=prefix, PYTHONDONTWRITEBYTECODE="1")
    try:
        out = subprocess.run([sys.executable, "-c", IMPORT_PROBE, *modules], env=env,
                             capture_output=True, text=True, check=True).stdout
    finally:
        if prefix:
            shutil.rmtree(prefix, ignore_errors=True)
    return [tuple(step) for step in json.loads(out)]


def import_floor() -> list[str]:
    lines = ["| import set | RSS MiB | without bytecode MiB |", "|---|---:|---:|"]
    for name, modules in IMPORT_SETS.items():
        with_pyc = min(import_steps(modules)[-1][1] for _ in range(3))
        without = import_steps(modules, bytecode=False)[-1][1]
        lines.append(f"| {name} | {with_pyc:.1f} | {without:.1f} |")
    steps = import_steps(IMPORT_SETS["Vigil with psycopg (+ SQLAlchemy asyncio, aiosqlite)"])
    lines += ["", "| step (Vigil with psycopg) | + MiB | RSS MiB |", "|---|---:|---:|"]
    for (_, before), (module, after) in zip(steps, steps[1:]):
        lines.append(f"| {module} | {after - before:+.1f} | {after:.1f} |")
    return lines


def load(url: str, scrapes: int) -> None:
    """Sequential scrapes, then wrk if it is there (the shared harness's 'after load')."""
    for _ in range(scrapes):
        with urllib.request.urlopen(url) as response:
            response.read()
    if shutil.which("wrk"):
        subprocess.run(["wrk", "-t2", "-c16", "-d5s", url], capture_output=True, check=True)


def exporters_after_load(scrapes: int) -> list[str]:
    workdir = Path(tempfile.mkdtemp(prefix="vigil-membench-"))
    postgres, redis_server = start_servers(workdir)
    started = []
    try:
        from vigil_exporter import dbschema
        dbschema.create_schema(postgres.url)
        dbschema.load_demo_data(postgres.url)
        add_tenants(postgres.url, 15)
        asyncpg_url = postgres.url.replace("postgresql+psycopg://", "postgresql+asyncpg://")
        configs = {
            "embedded SQLite default": {},
            "PostgreSQL (psycopg) + Redis": exporter_config(postgres.url, redis_server.url, False),
            "PostgreSQL (asyncpg) + Redis": exporter_config(asyncpg_url, redis_server.url, False),
        }
        lines = ["| exporter | samples | RSS after load MiB | vs same-bytes aiohttp |",
                 "|---|---:|---:|---:|"]
        for name, config in configs.items():
            exporter = start_exporter(workdir, f"exporter-{len(started)}", config)
            started.append(exporter)
            reference, port = start_same_bytes_ref(exporter)
            try:
                samples = sum(1 for line in exporter.text().splitlines()
                              if line and not line.startswith("#"))
                load(f"{exporter.url}/metrics", scrapes)
                load(f"http://127.0.0.1:{port}/metrics", scrapes)
                vigil, bare = rss_mib(exporter.pid), rss_mib(reference.pid)
            finally:
                reference.terminate()
                reference.wait()
                exporter.stop()
            lines.append(f"| {name} | {samples} | {vigil:.1f} | {vigil / bare:.2f}x "
                         f"({bare:.1f}) |")
        return lines
    finally:
        for exporter in started:
            exporter.stop()
        redis_server.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrapes", type=int, default=2000)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}\n\n## Import floor\n")
    print("\n".join(import_floor()))
    print("\n## The exporter after load\n")
    print("\n".join(exporters_after_load(args.scrapes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
