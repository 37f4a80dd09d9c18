"""The Alertmanager log receiver: `POST /alerts/webhook` on the exporter.

Every alert of a valid webhook notification becomes one structured log line (logger
`vigil.alerts`) and one line appended to a durable JSON-lines file, and is counted in
`vigil_alert_notifications_total{status,severity}`. A malformed body gets 400, an oversized one
413, and neither writes nor counts anything.

Whoever can reach the endpoint can write to the alert log, so everything is bounded
(`WebhookLimits`, the `alerts.*` configuration): authorised requests per second (429 beyond, which
Alertmanager retries), body size, alerts per notification, the alert log's size (rotated to
`<file>.1`), and the log lines it writes, valid or not. It can have credentials of its own
(`alerts.bearer_token_file`, `alerts.basic_auth_users`), separate from /metrics.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

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


@dataclass(frozen=True)
class WebhookLimits:
    """What one client can make the receiver do (the `alerts.*` configuration keys)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_alerts: int = 1000
    requests_per_second: float = 5.0
    burst: int = 20
    max_log_bytes: int = 64 << 20
    log_lines_per_second: float = 20.0

    @classmethod
    def from_config(cls, alerts: dict) -> WebhookLimits:
        return cls(alerts["max_body_bytes"], alerts["max_alerts"], alerts["rate_limit"],
                   alerts["rate_burst"], alerts["max_log_bytes"], alerts["log_lines_per_second"])


def setup_alert_receiver(app: web.Application, log_path: str, counter: Counter,
                         max_body_bytes: int | None = None,
                         on_update: Callable[[], None] | None = None,
                         limits: WebhookLimits | None = None,
                         authorize: Callable[[web.Request], Awaitable[bool | None]] | None = None
                         ) -> None:
    """Add `POST /alerts/webhook` to `app`, counting into `counter` (`notifications_counter`).

    `on_update` is called after each counted notification (e.g. to re-render a cached
    exposition); `authorize(request)` (when given) answers True, False (401) or None (429)."""
    limits = limits or WebhookLimits()
    if max_body_bytes is not None:
        limits = replace(limits, max_body_bytes=max_body_bytes)
    app.router.add_post(WEBHOOK_PATH, webhook_handler(
        AlertLog(log_path, limits.max_log_bytes), counter, limits, on_update, authorize))


def webhook_handler(alert_log: AlertLog, counter: Counter, limits: WebhookLimits,
                    on_update: Callable[[], None] | None = None,
                    authorize: Callable[[web.Request], Awaitable[bool | None]] | None = None
                    ) -> Handler:
    from vigil_exporter.logs import Throttle
    from vigil_exporter.webconfig import TokenBucket

    requests = TokenBucket(1 / limits.requests_per_second, limits.burst)
    # A burst of 5 s worth, and at least one line (0.1 lines/s would otherwise log nothing).
    lines = TokenBucket(1 / limits.log_lines_per_second,
                        max(1, int(limits.log_lines_per_second * 5)))
    rejected = Throttle(log, every=60.0)

    def refuse(status: int, message: str, headers: dict | None = None) -> web.Response:
        rejected.info(f"webhook {status}", "refused alert webhook requests (%s): %s", status,
                      message)
        return web.json_response({"error": message}, status=status, headers=headers)

    async def receive(request: web.Request) -> web.Response:
        # Credentials first: a flood without them must not spend the tokens Alertmanager's
        # notifications need (bcrypt checks have their own bound, BasicAuth.QUEUE).
        if authorize is not None:
            allowed = await authorize(request)
            if not allowed:
                return refuse(429 if allowed is None else 401, "unauthorized",
                              {"WWW-Authenticate": 'Bearer realm="vigil alerts"'})
        if not requests.take():
            return refuse(429, "too many requests (alerts.rate_limit)", {"Retry-After": "1"})
        body = await read_limited(request, limits.max_body_bytes)
        if body is None:
            return refuse(413, f"body larger than {limits.max_body_bytes} bytes")
        try:
            records = parse_notification(body, received_at=format_time(utc_now()))
        except PayloadError as exc:
            return refuse(400, str(exc))
        if len(records) > limits.max_alerts:
            return refuse(413, f"more than {limits.max_alerts} alerts in one notification "
                               "(alerts.max_alerts; Alertmanager's max_alerts sets it there)")
        try:
            await alert_log.append(records)
        except OSError as exc:
            rejected.error("alert log", "cannot append to the alert log %s: %s",
                           alert_log.path, exc.strerror or exc)
            return web.json_response({"error": "alert log not writable"}, status=500)
        unlogged = 0
        for record in records:
            counter.labels(record["status"], severity_label(record["severity"])).inc()
            if lines.take():
                log_alert(record)
            else:
                unlogged += 1
        if unlogged:
            rejected.warning("alert lines", "alert lines over alerts.log_lines_per_second were "
                             "not logged (the alert log file has every alert)")
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
    records = [alert_record(alert, i, received_at, receiver) for i, alert in enumerate(alerts)]
    try:  # JSON may escape what is not Unicode text: a lone surrogate ("\\ud800")
        json.dumps(records, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError("a string is not valid Unicode (lone surrogate escape)") from None
    return records


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
    """Appends records to a JSON-lines file: one write per notification, then fsync.

    A write that fails (a full disk) truncates the file back to where it was, so the retry
    lands as a whole record; a partial last line left by a crash is cut off before the next
    write. Beyond `max_bytes` the file is renamed to `<file>.1` (replacing the older one)."""

    def __init__(self, path: str, max_bytes: int = 64 << 20):
        self.path = path
        self.max_bytes = max_bytes
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
        if os.path.exists(self.path) and os.path.getsize(self.path) + len(data) > self.max_bytes:
            os.replace(self.path, self.path + ".1")
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            size = _whole_records(fd)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)


def _whole_records(fd: int) -> int:
    """The file's size after cutting off a partial last record (one without its newline)."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    start = max(0, size - 65536)
    while True:
        chunk = os.pread(fd, size - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0 or start == 0:
            end = start + cut + 1
            break
        start = max(0, start - 65536)
    os.ftruncate(fd, end)
    return end
