"""The JSON access-log line and regex exclusions, on real aiohttp, FastAPI and Flask apps."""
from __future__ import annotations

import io
import json
import logging
import re

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from tests.test_instrument_wsgi import serve, settled
from vigil_instrument import Metrics, PrometheusMiddleware, configure_logging, instrument_aiohttp, instrument_flask

# Excluded: /internal/* by regex (whole path), /ping exactly; /internal-docs is a route like any other.
EXCLUDE = ["/metrics", "/ping", re.compile(r"/internal/[a-z]+")]


@pytest.fixture
def access():
    """A logger of our own, writing each record's message (the JSON object) on a line."""
    stream = io.StringIO()
    logger = logging.getLogger(f"test.access.{id(stream)}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def requests_total(registry, path_route):
    return sum(s.value for f in registry.collect() for s in f.samples
               if s.name == "http_requests_total" and s.labels["route"] == path_route)


def check_lines(lines, route, status, request_id="acc-1"):
    """The access lines of the test's requests: one per recorded request, none for excluded ones,
    in any order (a threaded WSGI server writes a request's line when it closes the response,
    which may be after the client has sent its next request)."""
    assert sorted(line["path"] for line in lines) == sorted(["/items/7", "/internal-docs", "/nowhere"])
    item, docs, missing = (next(line for line in lines if line["path"] == path)
                           for path in ("/items/7", "/internal-docs", "/nowhere"))
    assert item["request_id"] == request_id and item["method"] == "POST"
    assert item["route"] == route and item["status"] == status
    assert item["request_bytes"] == 5 and item["response_bytes"] >= 2
    assert 0 <= item["duration_seconds"] < 5
    assert missing["route"] == "unmatched" and missing["status"] == 404
    assert docs["request_id"] and docs["request_id"] != request_id


async def test_aiohttp_access_log_and_regex_exclusions(access):
    logger, lines = access
    registry = CollectorRegistry()

    async def ok(request):
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    instrument_aiohttp(app, Metrics(registry), exclude_paths=EXCLUDE, access_log=logger)
    for path in ("/internal/{name}", "/internal-docs", "/ping"):
        app.router.add_get(path, ok)
    app.router.add_post("/items/{id}", ok)
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/items/7", data=b"hello", headers={"X-Request-ID": "acc-1"})).status == 200
        assert (await client.get("/internal/jobs")).status == 200
        assert (await client.get("/internal-docs")).status == 200
        assert (await client.get("/ping")).status == 200
        assert (await client.get("/nowhere")).status == 404
    check_lines(lines(), "/items/{id}", 200)
    assert requests_total(registry, "/internal/{name}") == 0
    assert requests_total(registry, "/internal-docs") == 1


async def test_access_log_is_off_by_default_and_joins_configured_json_logs():
    async def item(request):
        return web.Response(text="ok")

    stream = io.StringIO()
    handler = configure_logging("info", stream)
    try:
        for access_log in (False, True):
            app = web.Application()
            instrument_aiohttp(app, Metrics(CollectorRegistry()), access_log=access_log)
            app.router.add_get("/items/{id}", item)
            async with TestClient(TestServer(app)) as client:
                await client.get("/items/1", headers={"X-Request-ID": f"json-{access_log}"})
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "vigil_instrument.access"]
    assert len(access) == 1                                  # only with access_log=True
    assert access[0]["msg"] == "request" and access[0]["level"] == "info"
    assert access[0]["request_id"] == "json-True" and access[0]["route"] == "/items/{id}"
    assert access[0]["status"] == 200 and access[0]["ts"].endswith("Z")


async def test_asgi_access_log_and_regex_exclusions(access):
    logger, lines = access
    registry = CollectorRegistry()
    app = FastAPI()

    @app.post("/items/{item_id}")
    async def item(item_id: int, body: dict) -> dict:
        return {"ok": True}

    for path in ("/internal/{name}", "/internal-docs", "/ping"):
        app.add_api_route(path, lambda: {"ok": True})
    app.add_middleware(PrometheusMiddleware, metrics=Metrics(registry), exclude_paths=EXCLUDE, access_log=logger)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.post("/items/7", content=b'{"a":', headers={"X-Request-ID": "acc-1"})
        assert answer.status_code == 422
        assert (await client.get("/internal/jobs")).status_code == 200
        assert (await client.get("/internal-docs")).status_code == 200
        assert (await client.get("/ping")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
    check_lines(lines(), "/items/{item_id}", 422)
    assert requests_total(registry, "/internal/{name}") == 0
    assert requests_total(registry, "/internal-docs") == 1


def test_wsgi_access_log_and_regex_exclusions(access):
    from flask import Flask, request

    logger, lines = access
    registry = CollectorRegistry()
    app = Flask("access_log_test")

    @app.post("/items/<int:item_id>")
    def item(item_id):
        return {"bytes": len(request.get_data())}

    for path in ("/internal/<name>", "/internal-docs", "/ping"):
        app.add_url_rule(path, path, lambda **_: "ok")
    instrument_flask(app, Metrics(registry), exclude_paths=EXCLUDE, access_log=logger)
    for url in serve(app):
        with httpx.Client(base_url=url) as client:
            assert client.post("/items/7", content=b"hello", headers={"X-Request-ID": "acc-1"}).status_code == 200
            assert client.get("/internal/jobs").status_code == 200
            assert client.get("/internal-docs").status_code == 200
            assert client.get("/ping").status_code == 200
            assert client.get("/nowhere").status_code == 404
            settled(registry)
    check_lines(lines(), "/items/<int:item_id>", 200)
    assert requests_total(registry, "/internal/<name>") == 0
    assert requests_total(registry, "/internal-docs") == 1


def test_bad_exclusions_and_access_log_options_are_refused():
    with pytest.raises(ValueError, match="exclude_paths: expected paths"):
        PrometheusMiddleware(None, Metrics(CollectorRegistry()), exclude_paths=["/metrics", 42])
    with pytest.raises(ValueError, match="access_log: expected True, False or a logging.Logger"):
        PrometheusMiddleware(None, Metrics(CollectorRegistry()), access_log="stdout")
