"""`GET /api/v1/usage-metrics?tenant_id=&start_date=&end_date=`: the report of `vigil usage`
(the same JSON), served by the exporter when `usage.prometheus_url` is set. The web config's
TLS and basic auth cover it like every other path.

400 with a message for input the report cannot answer, 503 when Prometheus does not answer,
502 when it answers with an error. The queries block (urllib), so they run in a thread; at most
`CONCURRENT_REPORTS` at a time, so that a burst of reports never takes every thread.
"""
from __future__ import annotations

import asyncio
import json

from aiohttp import web

from vigil_exporter.prometheus_api import PrometheusAPI, PrometheusError, Unreachable
from vigil_exporter.usage.report import BadRequest, Request, build

PATH = "/api/v1/usage-metrics"
CONCURRENT_REPORTS = 2
PROMETHEUS = web.AppKey("usage_prometheus", PrometheusAPI)
SLOTS = web.AppKey("usage_slots", asyncio.Semaphore)


def setup_usage_endpoint(app: web.Application, section: dict) -> None:
    """Add the route when a Prometheus URL is configured; without one the path is a 404."""
    if not section["prometheus_url"]:
        return
    app[PROMETHEUS] = PrometheusAPI(section["prometheus_url"], section["timeout"])
    app[SLOTS] = asyncio.Semaphore(CONCURRENT_REPORTS)
    app.router.add_get(PATH, usage_metrics)


async def usage_metrics(request: web.Request) -> web.Response:
    query = request.query
    try:
        wanted = Request.parse(query.get("start_date"), query.get("end_date"),
                               query.get("tenant_id") or None)
        async with request.app[SLOTS]:
            report = await asyncio.to_thread(build, request.app[PROMETHEUS], wanted)
    except BadRequest as exc:
        return _error(400, str(exc))
    except Unreachable as exc:
        return _error(503, str(exc))
    except PrometheusError as exc:
        return _error(502, f"Prometheus answered with an error: {exc}")
    return web.json_response(report, dumps=_dumps)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"status": "error", "error": message}, status=status)


def _dumps(document) -> str:
    return json.dumps(document, indent=2)
