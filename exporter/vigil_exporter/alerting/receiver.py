"""The Alertmanager log receiver: `POST /alerts/webhook` on the exporter.

Every alert of a valid webhook notification becomes one structured log line (logger
`vigil.alerts`) and one line appended to a durable JSON-lines file, and is counted in
`vigil_alert_notifications_total{status,severity}`. A malformed body gets 400, an oversized one
413, and neither writes nor counts anything.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from vigil_exporter.alerting.timeutil import format_time, parse_time, utc_now

WEBHOOK_PATH = "/alerts/webhook"
DEFAULT_MAX_BODY_BYTES = 1 << 20
SEVERITIES = ("critical", "warning", "info", "none")  # anything else is counted as "other"
STATUSES = ("firing", "resolved")

log = logging.getLogger("vigil.alerts")

Handler = Callable[[web.Request], Awaitable[web.Response]]


class PayloadError(ValueError):
    """The body is not an Alertmanager webhook notification (version 4)."""


def notifications_counter(registry: CollectorRegistry) -> Counter:
    """`vigil_alert_notifications_total`, on `registry`, with the usual label values at zero."""
    counter = Counter("vigil_alert_notifications", "Alerts received by the Alertmanager log "
                      "receiver, by alert status and severity label.", ["status", "severity"],
                      registry=registry)
    for status in STATUSES:
        for severity in ("critical", "warning", "info"):
            counter.labels(status, severity)
    return counter


def setup_alert_receiver(app: web.Application, log_path: str, counter: Counter,
                         max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                         on_update: Callable[[], None] | None = None) -> None:
    """Add `POST /alerts/webhook` to `app`, counting into `counter` (`notifications_counter`).

    `on_update` is called after each counted notification (e.g. to re-render a cached
    exposition)."""
    app.router.add_post(WEBHOOK_PATH, webhook_handler(AlertLog(log_path), counter, max_body_bytes,
                                                      on_update))


def webhook_handler(alert_log: AlertLog, counter: Counter, max_body_bytes: int,
                    on_update: Callable[[], None] | None = None) -> Handler:
    async def receive(request: web.Request) -> web.Response:
        body = await read_limited(request, max_body_bytes)
        if body is None:
            return web.json_response({"error": f"body larger than {max_body_bytes} bytes"},
                                     status=413)
        try:
            records = parse_notification(body, received_at=format_time(utc_now()))
        except PayloadError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        try:
            await alert_log.append(records)
        except OSError as exc:
            log.error("cannot append to the alert log %s: %s", alert_log.path, exc)
            return web.json_response({"error": "alert log not writable"}, status=500)
        for record in records:
            counter.labels(record["status"], severity_label(record["severity"])).inc()
            log_alert(record)
        if records and on_update:
            on_update()
        return web.json_response({"received": len(records)})

    return receive


async def read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than `limit` (read no further than that)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def parse_notification(body: bytes, received_at: str) -> list[dict]:
    """Validate an Alertmanager webhook body; return one log record per alert."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PayloadError("body is not a JSON object")
    if document.get("version") != "4":
        raise PayloadError('"version" must be "4"')
    alerts = document.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError('"alerts" must be a list')
    receiver = document.get("receiver") if isinstance(document.get("receiver"), str) else None
    return [alert_record(alert, i, received_at, receiver) for i, alert in enumerate(alerts)]


def alert_record(alert, index: int, received_at: str, receiver: str | None) -> dict:
    where = f"alerts[{index}]"
    if not isinstance(alert, dict):
        raise PayloadError(f"{where} is not an object")
    if alert.get("status") not in STATUSES:
        raise PayloadError(f'{where}.status must be "firing" or "resolved"')
    for key in ("labels", "annotations"):
        value = alert.get(key)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise PayloadError(f"{where}.{key} must be an object of strings")
    starts_at = alert.get("startsAt")
    if not isinstance(starts_at, str) or parse_time(starts_at) is None:
        raise PayloadError(f"{where}.startsAt must be an RFC 3339 time")
    ends_at = alert.get("endsAt")
    if ends_at is not None and not isinstance(ends_at, str):
        raise PayloadError(f"{where}.endsAt must be a string")
    fingerprint = alert.get("fingerprint")
    labels = alert["labels"]
    return {
        "received_at": received_at,
        "status": alert["status"],
        "alertname": labels.get("alertname", ""),
        "severity": labels.get("severity", "none"),
        "labels": labels,
        "annotations": alert["annotations"],
        "startsAt": starts_at,
        "endsAt": ends_at,
        "fingerprint": fingerprint if isinstance(fingerprint, str) else None,
        "receiver": receiver,
    }


def severity_label(severity: str) -> str:
    return severity if severity in SEVERITIES else "other"


LEVELS = {"critical": logging.ERROR, "warning": logging.WARNING}


def log_alert(record: dict) -> None:
    level = LEVELS.get(record["severity"], logging.INFO) if record["status"] == "firing" \
        else logging.INFO
    labels = record["labels"]
    log.log(level, "alert %s %s: %s", record["status"], record["alertname"],
            record["annotations"].get("summary", ""),
            extra={"fields": {"alert_status": record["status"], "alertname": record["alertname"],
                              "severity": record["severity"], "instance": labels.get("instance"),
                              "fingerprint": record["fingerprint"],
                              "startsAt": record["startsAt"], "labels": labels}})


class AlertLog:
    """Appends records to a JSON-lines file: one write per notification, then fsync."""

    def __init__(self, path: str):
        self.path = path
        self._lock = asyncio.Lock()

    async def append(self, records: list[dict]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n"
                       for r in records).encode()
        async with self._lock:
            await asyncio.to_thread(self._write, data)

    def _write(self, data: bytes) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
