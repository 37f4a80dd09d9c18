"""`GET /api/v1/usage-metrics?tenant_id=&start_date=&end_date=`: the report of `vigil usage`
(the same JSON), served by the exporter when `usage.prometheus_url` is set. The web config's
TLS and basic auth cover it like every other path.

400 with a message for input the report cannot answer (a report of every tenant beyond
`usage.max_report_tenant_days` too), 503 when Prometheus does not answer, 502 when it answers
with an error.

The queries block (urllib) and a report of many tenants takes seconds of CPU, so the whole
report, JSON included, is made on a thread of its own: at most `CONCURRENT_REPORTS` at a time,
a slot freed when its thread ends (a client that hangs up does not free it early). The threads
are daemon threads: a SIGTERM does not wait for a report that waits on Prometheus (asyncio.run
waits for the default executor's threads without a time limit).
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from vigil_exporter.prometheus_api import PrometheusAPI, PrometheusError, Unreachable
from vigil_exporter.usage.report import BadRequest, Request, build

PATH = "/api/v1/usage-metrics"
CONCURRENT_REPORTS = 2
PROMETHEUS = web.AppKey("usage_prometheus", PrometheusAPI)
SLOTS = web.AppKey("usage_slots", asyncio.Semaphore)
MAX_TENANT_DAYS = web.AppKey("usage_max_tenant_days", int)
T = TypeVar("T")


def setup_usage_endpoint(app: web.Application, section: dict) -> None:
    """Add the route when a Prometheus URL is configured; without one the path is a 404."""
    if not section["prometheus_url"]:
        return
    app[PROMETHEUS] = PrometheusAPI(section["prometheus_url"], section["timeout"])
    app[SLOTS] = asyncio.Semaphore(CONCURRENT_REPORTS)
    app[MAX_TENANT_DAYS] = section["max_report_tenant_days"]
    app.router.add_get(PATH, usage_metrics)


async def usage_metrics(request: web.Request) -> web.Response:
    query = request.query
    try:
        wanted = Request.parse(query.get("start_date"), query.get("end_date"),
                               query.get("tenant_id") or None)
        body = await in_daemon_thread(request.app[SLOTS], report_json, request.app[PROMETHEUS],
                                      wanted, request.app[MAX_TENANT_DAYS])
    except BadRequest as exc:
        return _error(400, str(exc))
    except Unreachable as exc:
        return _error(503, str(exc))
    except PrometheusError as exc:
        return _error(502, f"Prometheus answered with an error: {exc}")
    return web.Response(body=body, content_type="application/json")


def report_json(prometheus: PrometheusAPI, wanted: Request, max_tenant_days: int) -> bytes:
    """The report as JSON bytes, one encoder call per tenant: the C encoder holds the GIL for
    the whole of a call, so calls of a few milliseconds let the event loop run between them."""
    report = build(prometheus, wanted, max_cells=max_tenant_days)
    tenants = ",\n".join(json.dumps(tenant) for tenant in report["tenants"])
    head = json.dumps({**{k: v for k, v in report.items() if k != "tenants"}, "tenants": []})
    return f"{head[:-len('[]}')]}[{tenants}]}}".encode()


async def in_daemon_thread(slots: asyncio.Semaphore, func: Callable[..., T], *args) -> T:
    """`func(*args)` on a daemon thread, once one of `slots` is free; the slot is held until
    the thread ends, even when the caller is cancelled."""
    loop = asyncio.get_running_loop()
    await slots.acquire()
    done: asyncio.Future = loop.create_future()

    def settle(result, error) -> None:
        slots.release()
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def run() -> None:
        try:
            outcome = (func(*args), None)
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting request
            outcome = (None, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop closed while the report ran: nobody waits for it
            pass

    try:
        threading.Thread(target=run, name="vigil-usage-report", daemon=True).start()
    except BaseException:
        slots.release()
        raise
    return await done


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"status": "error", "error": message}, status=status)
