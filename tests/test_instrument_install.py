"""The instrumentation library installs and works on its own: a fresh virtualenv (no system site
packages) gets `pip install './packages/vigil-instrument[aiohttp,asgi]'` and nothing else; there
it instruments an aiohttp app and a Starlette (ASGI) app, counts their requests, and nothing of
the exporter's dependencies is installed or importable.

pip reaches the package index for the library's dependencies (prometheus-client, aiohttp,
starlette) and for the build backend, as a user's install does.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "packages" / "vigil-instrument"
# What a service that installs only the library must not get: the exporter, the demo service,
# and what they pull in (import name -> distribution name).
ABSENT = {"vigil_exporter": "vigil-exporter", "vigil_demo": "vigil-demo",
          "sqlalchemy": "sqlalchemy", "psycopg": "psycopg", "_jsonnet": "jsonnet",
          "psutil": "psutil", "bcrypt": "bcrypt", "aiosqlite": "aiosqlite", "redis": "redis"}

# Runs inside the fresh virtualenv; prints what it found as JSON.
PROBE = """
import asyncio, importlib.metadata, importlib.util, json, sys

from prometheus_client import CollectorRegistry

import vigil_instrument as instrument


async def aiohttp_requests(registry):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    async def item(request):
        return web.Response(text=request.match_info["id"])

    app = web.Application()
    instrument.instrument_aiohttp(app, instrument.Metrics(registry))
    app.router.add_get("/items/{id}", item)
    app.router.add_get("/metrics", instrument.aiohttp_metrics_handler(registry))
    async with TestClient(TestServer(app)) as client:
        answers = [(await client.get(f"/items/{n}")).status for n in (1, 2)]
        exposition = await (await client.get("/metrics")).text()
    return answers, exposition


async def asgi_request(app, path):
    # one HTTP request straight through the ASGI interface (no HTTP client installed here)
    sent = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"testserver")],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


async def starlette_requests(registry):
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def item(request):
        return PlainTextResponse(request.path_params["id"])

    app = Starlette(routes=[Route("/items/{id}", item)],
                    middleware=[Middleware(instrument.PrometheusMiddleware,
                                           metrics=instrument.Metrics(registry))])
    return [await asgi_request(app, f"/items/{n}") for n in (1, 2, 3)]


def count(registry, route):
    return registry.get_sample_value(
        "http_requests_total", {"method": "GET", "route": route, "status": "200"})


aiohttp_registry, asgi_registry = CollectorRegistry(), CollectorRegistry()
aiohttp_answers, exposition = asyncio.run(aiohttp_requests(aiohttp_registry))
asgi_answers = asyncio.run(starlette_requests(asgi_registry))
print(json.dumps({
    "prefix": sys.prefix, "base_prefix": sys.base_prefix,
    "library": instrument.__file__,
    "requires": importlib.metadata.requires("vigil-instrument"),
    "distributions": sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions()),
    "importable": sorted(n for n in sys.argv[1:] if importlib.util.find_spec(n) is not None),
    "aiohttp": {"answers": aiohttp_answers, "counted": count(aiohttp_registry, "/items/{id}"),
                "exposition": exposition},
    "asgi": {"answers": asgi_answers, "counted": count(asgi_registry, "/items/{id}")},
}))
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtualenv with the library and its aiohttp and asgi extras, nothing else."""
    work = tmp_path_factory.mktemp("library-venv")
    # a copy of the distribution's directory (its link into exporter/ resolved), so that the
    # build writes nothing into the checkout
    source = work / "vigil-instrument"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("*.egg-info", "build",
                                                                    "__pycache__"))
    env = _clean_env()
    # without pip inside: this interpreter's pip installs into it (--python), which saves
    # bootstrapping a second pip
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(work / "venv")],
                   check=True, env=env, timeout=120)
    python = work / "venv" / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "--quiet", "--disable-pip-version-check", "--no-input",
                           f"{source}[aiohttp,asgi]"],
                          capture_output=True, text=True, env=env, cwd=work, timeout=540)
    assert done.returncode == 0, done.stdout + done.stderr
    return python


def _clean_env() -> dict:
    """This environment without anything that would put the checkout or another environment
    on the new interpreter's path."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}


@pytest.fixture(scope="module")
def probe(venv, tmp_path_factory) -> dict:
    done = subprocess.run([str(venv), "-c", PROBE, *ABSENT], capture_output=True, text=True,
                          env=_clean_env(), cwd=tmp_path_factory.mktemp("probe"), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_the_library_runs_from_the_fresh_virtualenv(probe, venv):
    prefix = venv.parent.parent
    assert Path(probe["prefix"]) == prefix != Path(probe["base_prefix"])
    assert Path(probe["library"]).is_relative_to(prefix / "lib")  # installed, not the checkout
    assert [r for r in probe["requires"] if "extra ==" not in r] == ["prometheus-client>=0.20"]


def test_aiohttp_requests_are_counted(probe):
    assert probe["aiohttp"]["answers"] == [200, 200]
    assert probe["aiohttp"]["counted"] == 2
    assert ('http_requests_total{method="GET",route="/items/{id}",status="200"} 2.0'
            in probe["aiohttp"]["exposition"])


def test_asgi_requests_are_counted(probe):
    assert probe["asgi"]["answers"] == [200, 200, 200]
    assert probe["asgi"]["counted"] == 3


def test_nothing_of_the_exporter_is_installed(probe):
    assert probe["importable"] == []
    assert not set(ABSENT.values()) & set(probe["distributions"]), probe["distributions"]
    assert "vigil-instrument" in probe["distributions"]
