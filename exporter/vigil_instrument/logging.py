"""Request ids and JSON logs that carry them.

The HTTP middlewares put each request's id in `request_id_var`; `configure_logging()` installs a
JSON handler whose lines include it, so every log line written while serving a request can be
joined to that request.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import sys
from contextvars import ContextVar
from datetime import datetime, timezone

REQUEST_ID_HEADER = "X-Request-ID"
ACCESS_LOGGER = "vigil_instrument.access"
MAX_LOGGED_PATH = 1024
request_id_var: ContextVar[str | None] = ContextVar("vigil_request_id", default=None)

# An incoming id is trusted only if short and made of token characters (it ends up in log lines
# and response headers).
_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def _new_process_ids() -> None:
    """A fresh random prefix and counter for this process. Also run in every forked child:
    gunicorn's workers are forks of a master that has imported this module when its
    gunicorn.conf.py does (for `mark_process_dead`), and must not repeat each other's ids."""
    global _PREFIX, _counter
    _PREFIX = secrets.token_hex(6) + "-"
    _counter = itertools.count(1)


_new_process_ids()
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_new_process_ids)


def current_request_id() -> str | None:
    return request_id_var.get()


def new_request_id() -> str:
    """`<random per process>-<counter>`: unique, and a fraction of uuid4's cost on the request path."""
    return _PREFIX + str(next(_counter))


def accept_request_id(value: str | None) -> str:
    """The client's id when it is a sane token, else a new one."""
    if value and _VALID_ID.fullmatch(value):
        return value
    return new_request_id()


class RequestIdFilter(logging.Filter):
    """Adds the current request id to a record's structured fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id is not None:
            record.fields = {**getattr(record, "fields", {}), "request_id": request_id}
        return True


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ms), level, logger, message, then the record's
    `fields` (the request id among them), then the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, timezone.utc)
        line = dict(ts=when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    level=record.levelname.lower(), logger=record.name, msg=record.getMessage())
        access = getattr(record, "access_entry", None)
        if access is not None:  # an access-log line: its fields, not its (JSON) message
            line["msg"] = "request"
            line.update(access)
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def access_logger(access_log: bool | logging.Logger) -> logging.Logger | None:
    """The logger of a middleware's `access_log` option: False (off), True (`vigil_instrument.access`)
    or a logger of yours."""
    if access_log is True:
        return logging.getLogger(ACCESS_LOGGER)
    if access_log is False or access_log is None:
        return None
    if not isinstance(access_log, logging.Logger):
        raise ValueError(f"access_log: expected True, False or a logging.Logger, got {access_log!r}")
    return access_log


class _JsonText:
    """A log message rendered as JSON only if a handler formats it."""

    __slots__ = ("entry",)

    def __init__(self, entry: dict):
        self.entry = entry

    def __str__(self) -> str:
        return json.dumps(self.entry)


def log_access(logger: logging.Logger, request_id: str | None, method: str, path: str, route: str,
               status: int, seconds: float, received: int, sent: int) -> None:
    """One access-log line for a finished request, at INFO: the message is a JSON object (with
    `configure_logging`, its fields join the line itself); `response_bytes` is -1 when no
    response was sent."""
    if not logger.isEnabledFor(logging.INFO):
        return
    entry = {"request_id": request_id, "method": method, "path": path[:MAX_LOGGED_PATH], "route": route,
             "status": status, "duration_seconds": round(seconds, 6), "request_bytes": received,
             "response_bytes": sent}
    logger.info("%s", _JsonText(entry), extra={"access_entry": entry})


def configure_logging(level: str = "info", stream=None) -> logging.Handler:
    """JSON lines on `stream` (stderr) for the root logger, each with the request id when there
    is one. Extra structured fields go in `extra={"fields": {...}}`. Returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return handler
