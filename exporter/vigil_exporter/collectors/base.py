"""The one small interface every collector implements, and what the scheduler runs."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import ClassVar

from prometheus_client.metrics_core import Metric

from vigil_exporter.validation import Bool, Duration, Field, Object, format_duration

# The shortest refresh interval: a collector or query polled more often only loads its backend.
MIN_INTERVAL = 0.1

# Health states of one check, worst last.
OK, DISABLED, DEGRADED, FAILING = "ok", "disabled", "degraded", "failing"


@dataclass
class Check:
    """One entry of /health: a dependency or a collector, as last seen."""

    name: str
    status: str = OK
    message: str = ""
    latency_seconds: float | None = None
    critical: bool = False  # a failing critical check makes the exporter "unhealthy"


@dataclass
class Job:
    """A unit of background work: one collector round, or one business query."""

    name: str
    kind: str  # "collector" or "query"
    interval: float
    timeout: float
    run: Callable[[], Awaitable[list[Metric]]]
    # A slot the run waits for before its timeout starts (the business queries share a few),
    # so that waiting behind other jobs never makes a run time out.
    slot: Callable[[], AbstractAsyncContextManager] | None = None
    # Filled in by the scheduler:
    families: list[Metric] = field(default_factory=list)
    success: bool | None = None
    duration: float = 0.0
    last_success: float = 0.0
    skipped: int = 0
    error: str = ""
    # Filled in by the run itself (business queries), last run: series kept, the cap, and the
    # rows beyond the cap.
    series: int = 0
    series_limit: int = 0
    series_dropped: int = 0


def collector_schema(interval: str, timeout: str, fields: dict[str, Field],
                     enabled: bool = True, check=None) -> Object:
    """The config section of a collector: the common keys plus its own."""
    common = {
        "enabled": Bool(enabled, "Run this collector."),
        "interval": Duration(interval, "How often the collector refreshes in the background.",
                             minimum=MIN_INTERVAL),
        "timeout": Duration(timeout, "How long one refresh may take before it counts as failed."),
    }
    return Object({**common, **fields}, check=check)


def refreshed_every(seconds: float) -> str:
    """The sentence every HELP string of a background-refreshed family ends with."""
    return f" Refreshed in the background every {format_duration(seconds)}."


class Collector:
    """Base class: refresh one area of the stack and return its metric families.

    Subclasses set `name` (their configuration section) and `config_schema`, take their
    validated section in `__init__`, and implement `collect()`. Raise on failure: the scheduler
    records the failure and stops serving this collector's old values. A collector never reads
    other sections of the configuration: what it needs from them is passed in by the wiring.
    """

    name: ClassVar[str] = ""
    config_schema: ClassVar[Object] = Object({})

    def __init__(self, config: dict):
        self.config = config  # this collector's validated section

    async def collect(self) -> list[Metric]:
        raise NotImplementedError

    def jobs(self) -> list[Job]:
        return [Job(self.name, "collector", self.config["interval"], self.config["timeout"],
                    self.collect)]

    def checks(self) -> list[Check]:
        return []

    def serve(self, jobs: list[Job]) -> Iterable[Metric]:
        """What /metrics shows of this collector's jobs' latest families (default: all of
        them). Runs where the exposition is rendered, in a worker thread: read, never await."""
        for job in jobs:
            yield from job.families

    async def close(self) -> None:
        return None
