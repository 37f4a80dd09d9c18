"""Logging: JSON lines when not on a terminal, readable lines on one; secrets redacted;
expected failures logged once per cause instead of once per retry."""
from __future__ import annotations

import json
import logging
import re
import sys
import time

# A password in URL-like text: "scheme://user:pw@", "scheme:/user:pw@" or a bare "user:pw@host".
# The password may hold any character but white space and quotes (generated passwords hold "/");
# it runs to the last "@" of the word, so what is left shown is a host. Words are cut with
# str.find/rpartition, never a backtracking pattern: a log line can carry text a client sent.
_WORD_BOUNDARY = re.compile(r"([\s'\"<>]+)")
_QUERY_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)=([^&\s]+)")
HIDDEN = "***"
# Redaction looks at no more than this much of a text; the rest is cut from the log line.
REDACT_MAX_CHARS = 32 * 1024
# Configured secrets (URLs and the passwords in them) that no output may show, whatever shape
# the text around them has: they are replaced wherever they appear, longest first (a URL before
# the password inside it).
_SECRETS: dict[str, str] = {}
_SECRETS_LONGEST_FIRST: list[str] = []


def register_url(url: str) -> None:
    """Remember a configured URL: from now on every redacted text shows it only as
    `redact_url(url)`, and its password nowhere."""
    if not isinstance(url, str) or not url.strip():
        return
    safe = redact_url(url)
    if safe != url:
        _SECRETS[url] = safe
    password = url_password(url)
    if password and len(password) >= 3:  # shorter ones would hide ordinary words
        _SECRETS[password] = HIDDEN
    _SECRETS_LONGEST_FIRST[:] = sorted(_SECRETS, key=len, reverse=True)


def url_password(url: str) -> str | None:
    """The password of a URL, parsed as the exporter's drivers parse it; for text that is not a
    URL, whatever sits between the first ":" after the user and the last "@"."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).password
    except Exception:  # noqa: BLE001 - any text that does not parse as a URL
        split = _split_credentials(url)
        return split[1] if split else None


def _split_credentials(word: str) -> tuple[str, str, str] | None:
    """(head, password, host) of a word holding "user:password@host", else None.

    The host follows the last "@"; the password starts after the first ":" past the scheme's
    ":/" (or, without one, after the word's first ":"). Linear in the word's length."""
    before, at, host = word.rpartition("@")
    if not at or "@" in host:
        return None
    scheme_end = before.find(":/")
    if scheme_end >= 0:
        user_start = len(before) - len(before[scheme_end + 1:].lstrip("/"))
        colon = before.find(":", user_start)
        if colon >= 0:
            return before[:colon], before[colon + 1:], host
    colon = before.find(":")
    return (before[:colon], before[colon + 1:], host) if colon >= 0 else None


def _redact_word(word: str) -> str:
    split = _split_credentials(word) if ":" in word else None
    return f"{split[0]}:{HIDDEN}@{split[2]}" if split else word


def redact(text: str) -> str:
    """Hide configured secrets, passwords in URL-like words and `password=` parameters.

    Linear in the text's length, and a text longer than REDACT_MAX_CHARS is cut first: a log
    line may quote what a client sent, and redacting it must never hold the event loop."""
    text = str(text)
    if len(text) > REDACT_MAX_CHARS:
        cut = len(text) - REDACT_MAX_CHARS
        text = f"{text[:REDACT_MAX_CHARS]}... ({cut} more characters cut)"
    for secret in _SECRETS_LONGEST_FIRST:
        if secret in text:
            text = text.replace(secret, _SECRETS[secret])
    if "@" in text and ":" in text:
        text = "".join(_redact_word(word) if "@" in word else word
                       for word in _WORD_BOUNDARY.split(text))
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group(1)}={HIDDEN}", text)


def redact_url(url: str) -> str:
    """A URL safe to show, made from the parsed URL: its password replaced by ***. Text that
    does not parse as a URL is not shown at all (it may be a password with a typo around it)."""
    try:
        from sqlalchemy.engine import make_url
        parsed = make_url(url)
        if parsed.host and "@" in parsed.host:  # an unencoded "@" in the password
            parsed = parsed.set(host="***")
        return parsed.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - any text that does not parse as a URL
        scheme = re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*(?=:/)", str(url))
        return f"<a {scheme[0] + ' ' if scheme else ''}URL that does not parse, not shown>"


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
    """A malformed or oversized request is the client's fault: one line, no traceback, and at
    most one such line a minute (a client can send them as fast as it likes)."""
    from aiohttp.http_exceptions import HttpProcessingError
    exc = record.exc_info[1] if record.exc_info else None
    if not isinstance(exc, HttpProcessingError):
        return True
    _bad_requests.info("bad request", "rejected a bad request: %s",
                       exc.message.splitlines()[0][:200] if exc.message else type(exc).__name__)
    return False


class FailureLog:
    """Log an expected failure once per outage, and once when it recovers.

    `failed(key, cause)` logs only when `key` starts failing: a cause whose text changes while
    the outage lasts (PostgreSQL alternating between two refusal messages) is kept for
    `cause(key)` but not logged again. `recovered(key)` logs only when `key` was failing. A dead
    Redis polled every 15 s therefore writes two lines, not one per poll.
    """

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self._causes: dict[str, str] = {}

    def failed(self, key: str, cause: str, **fields) -> bool:
        """Record the failure; True when this call logged it (the outage began)."""
        cause = redact(cause)
        first = key not in self._causes
        self._causes[key] = cause
        if first:
            self.logger.warning("%s failing: %s", key, cause, extra={"fields": fields})
        return first

    def failing(self, key: str) -> bool:
        return key in self._causes

    def recovered(self, key: str, **fields) -> None:
        if self._causes.pop(key, None) is not None:
            self.logger.info("%s recovered", key, extra={"fields": fields})


class Throttle:
    """At most one log line per key every `every` seconds; the next line says how many were
    left out meanwhile. For events a client can repeat at will (refused requests)."""

    def __init__(self, logger: logging.Logger, every: float = 60.0, clock=time.monotonic):
        self.logger, self.every, self.clock = logger, every, clock
        self._last: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def log(self, level: int, key: str, msg: str, *args) -> bool:
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False
        self._last[key] = now
        dropped = self._dropped.pop(key, 0)
        fields = {"similar_lines_left_out": dropped} if dropped else {}
        self.logger.log(level, msg, *args, extra={"fields": fields})
        return True

    def info(self, key: str, msg: str, *args) -> bool:
        return self.log(logging.INFO, key, msg, *args)

    def warning(self, key: str, msg: str, *args) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def error(self, key: str, msg: str, *args) -> bool:
        return self.log(logging.ERROR, key, msg, *args)


def describe_error(exc: BaseException) -> str:
    """A one-line, secret-free cause for an exception (no traceback)."""
    import asyncio
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else ""
    return redact(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)


BAD_REQUEST_LOG_EVERY = 60.0
_bad_requests = Throttle(logging.getLogger("aiohttp.server"), every=BAD_REQUEST_LOG_EVERY)
