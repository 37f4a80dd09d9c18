"""Logging: JSON lines when not on a terminal, readable lines on one; secrets redacted;
expected failures logged once per cause instead of once per retry."""
from __future__ import annotations

import json
import logging
import re
import sys
import time
from urllib.parse import urlsplit, urlunsplit

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]*)@")
_QUERY_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)=([^&\s]+)")


def redact(text: str) -> str:
    """Hide passwords in URLs and `password=` parameters inside any text."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group(1)}=***", text)


def redact_url(url: str) -> str:
    """A URL safe to show: the password replaced by ***."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return redact(url)
        host = parts.netloc.rpartition("@")[2]
        return redact(urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}")))
    except ValueError:
        return redact(url)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in getattr(record, "fields", {}).items())
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: " \
               f"{record.getMessage()}" + (f"  {fields}" if fields else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def setup(level: str = "info", stream=None, json_lines: bool | None = None) -> None:
    stream = stream or sys.stderr
    if json_lines is None:
        json_lines = not stream.isatty()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_lines else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(_bad_request_filter)


def _bad_request_filter(record: logging.LogRecord) -> bool:
    """A malformed or oversized request is the client's fault: one line, no traceback."""
    from aiohttp.http_exceptions import HttpProcessingError
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, HttpProcessingError):
        record.msg, record.args = "rejected a bad request: %s", (exc.message.splitlines()[0][:200],)
        record.exc_info, record.exc_text, record.levelno, record.levelname = None, None, 20, "INFO"
    return True


class FailureLog:
    """Log an expected failure once per cause, and once when it recovers.

    `failed(key, cause)` logs only when the cause of `key` changes; `recovered(key)` logs only
    when `key` was failing. A dead Redis polled every 15 s therefore writes two lines, not
    one per poll.
    """

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self._causes: dict[str, str] = {}

    def failed(self, key: str, cause: str, **fields) -> None:
        cause = redact(cause)
        if self._causes.get(key) != cause:
            self._causes[key] = cause
            self.logger.warning("%s failing: %s", key, cause, extra={"fields": fields})

    def recovered(self, key: str, **fields) -> None:
        if self._causes.pop(key, None) is not None:
            self.logger.info("%s recovered", key, extra={"fields": fields})


def describe_error(exc: BaseException) -> str:
    """A one-line, secret-free cause for an exception (no traceback)."""
    import asyncio
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else ""
    return redact(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)
