"""Features: the off-switchable groups of families of a server (PostgreSQL's top statements,
Redis's slowlog, ...), and the one way they degrade.

A feature reads its samples from a source (a database connection, a Redis client) and returns
them all at once, so a feature that fails half-way adds nothing. When the server lacks what it
needs (an extension, a privilege, a version) the feature raises `NotAvailable`, or its
`not_available()` recognises the driver's error: that is not a failure of the round. The
feature then reports nothing, its /health entry says "not available: <why and what to do>"
(status degraded, logged once), and a feature that had to send a query to find out is not asked
again for `RETRY_AFTER` seconds, so a missing extension never turns into an error every round
in the server's log. Any other error is a failing check, logged once per cause.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from vigil_exporter.collectors.base import DEGRADED, FAILING, OK, Check
from vigil_exporter.collectors.families import Sample, Spec
from vigil_exporter.logs import FailureLog, describe_error
from vigil_exporter.validation import Bool, Field, Object

RETRY_AFTER = 300.0


class NotAvailable(Exception):
    """The server lacks what a feature needs; the message says what and how to fix it."""


class Feature:
    """One group of families. Subclasses set `key` (the config key, also the end of the health
    check's name), `metrics` and `fields` (config keys besides `enabled`), and implement
    `read()`."""

    key: ClassVar[str] = ""
    help: ClassVar[str] = ""
    metrics: ClassVar[dict[str, Spec]] = {}
    fields: ClassVar[dict[str, Field]] = {}

    def __init__(self, config: dict):
        self.config = config

    @classmethod
    def schema(cls, enabled: bool = True) -> Object:
        return Object({"enabled": Bool(enabled, f"Export {cls.help}."), **cls.fields},
                      help=cls.help[:1].upper() + cls.help[1:] + ".")

    @classmethod
    def wanted(cls, config: dict) -> bool:
        """Whether this feature's validated section asks for it."""
        return config["enabled"]

    async def read(self, source: Any) -> list[Sample]:
        raise NotImplementedError

    def not_available(self, exc: Exception) -> str | None:
        """Why `exc` means the server lacks what this feature needs; None for a real failure."""
        return None


def all_metrics(features: list[type[Feature]]) -> dict[str, Spec]:
    return {name: spec for feature in features for name, spec in feature.metrics.items()}


def build(classes: list[type[Feature]], config: dict) -> list[Feature]:
    """The enabled features of one target, from its validated section."""
    return [cls(config[cls.key]) for cls in classes if cls.wanted(config[cls.key])]


@dataclass
class _State:
    check: Check
    retry_at: float = 0.0


class FeatureSet:
    """The enabled features of one target (e.g. database "main"), each with its health entry
    `<prefix>:<key>`."""

    def __init__(self, prefix: str, features: list[Feature], failures: FailureLog,
                 clock=time.monotonic):
        self.features = features
        self.failures = failures
        self.clock = clock
        self.states = {f.key: _State(Check(f"{prefix}:{f.key}", DEGRADED, "not read yet"))
                       for f in features}

    async def read(self, source: Any) -> list[Sample]:
        samples: list[Sample] = []
        for feature in self.features:
            samples += await self._read(feature, source)
        return samples

    async def _read(self, feature: Feature, source: Any) -> list[Sample]:
        state = self.states[feature.key]
        name = state.check.name
        if state.retry_at > self.clock():
            return []
        started = time.perf_counter()
        try:
            samples = await feature.read(source)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one feature's failure never fails the round
            if unreachable(exc):
                raise  # the server's failure, not the feature's: its probe logs it once
            reason = str(exc) if isinstance(exc, NotAvailable) else feature.not_available(exc)
            if reason is None:
                cause = describe_error(exc)
                state.check = Check(name, FAILING, cause)
            else:
                cause = f"not available: {reason}"
                state.check = Check(name, DEGRADED, cause)
                if not isinstance(exc, NotAvailable):  # a query found out: not every round
                    state.retry_at = self.clock() + RETRY_AFTER
            self.failures.failed(name, cause)
            return []
        self.failures.recovered(name)
        state.check = Check(name, OK, "", time.perf_counter() - started)
        return samples

    def mark_unreachable(self, cause: str) -> None:
        """The server did not answer: every feature's entry says so (the probe reports it)."""
        for state in self.states.values():
            state.check = Check(state.check.name, DEGRADED, f"not read: {cause}")

    def checks(self) -> list[Check]:
        return [state.check for state in self.states.values()]


def unreachable(exc: BaseException) -> bool:
    """Whether an error says the server cannot be reached (connection refused, reset or lost, a
    timeout) rather than that one feature failed: redis-py's ConnectionError and TimeoutError,
    a DBAPI error that invalidated the connection, any OSError."""
    if isinstance(exc, (OSError, asyncio.TimeoutError, TimeoutError)):
        return True
    if getattr(exc, "connection_invalidated", False):
        return True
    return type(exc).__module__.startswith("redis") and type(exc).__name__ in (
        "ConnectionError", "TimeoutError")
