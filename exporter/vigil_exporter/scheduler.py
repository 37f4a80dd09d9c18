"""Runs every job in the background on its own interval and timeout.

A job's run that is still going when the next one is due is skipped and counted, never queued;
a run that exceeds its timeout is cancelled and counts as failed; a job that shares a few slots
with others (the business queries) waits for one before its timeout starts. After every finished run the
`on_update` callback is told, so the exposition can be rendered again.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from prometheus_client.metrics_core import Metric

from vigil_exporter.collectors.base import Collector, Job
from vigil_exporter.logs import FailureLog, describe_error

log = logging.getLogger("vigil.scheduler")


class Scheduler:
    def __init__(self, collectors: list[Collector], on_update: Callable[[], None] = lambda: None):
        self.collectors = collectors
        self.jobs_by_collector = [(c, c.jobs()) for c in collectors]
        self.jobs: list[Job] = [job for _, jobs in self.jobs_by_collector for job in jobs]
        self.on_update = on_update
        self.first_round_done = asyncio.Event()
        self.started_at = time.time()
        self._tasks: list[asyncio.Task] = []
        self._pending = {job.name for job in self.jobs}
        self._failures = FailureLog(log)
        if not self.jobs:
            self.first_round_done.set()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(job), name=f"job:{job.name}")
                       for job in self.jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in self.collectors), return_exceptions=True)

    async def run_once(self) -> None:
        """One round of every job, concurrently (for `vigil metrics` and tests)."""
        await asyncio.gather(*(self._run(job) for job in self.jobs))

    async def _loop(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        current: asyncio.Task | None = None
        overran = False  # the current run made the scheduler skip one
        try:
            while True:
                if current is not None and not current.done():
                    job.skipped += 1  # logged once, until a run ends within its interval
                    overran = True
                    self._failures.failed(f"{job.name} schedule", "a run takes longer than "
                                          f"the {job.interval:g}s interval: skipping runs")
                else:
                    if not overran:
                        self._failures.recovered(f"{job.name} schedule",
                                                 skipped_total=job.skipped)
                    overran = False
                    current = asyncio.create_task(self._run(job))
                due = max(due + job.interval, loop.time())  # after a stall: no burst
                await asyncio.sleep(due - loop.time())
        finally:
            if current is not None:
                current.cancel()
                await asyncio.gather(current, return_exceptions=True)

    async def _run(self, job: Job) -> None:
        start = time.perf_counter()
        try:
            async with job.slot() if job.slot else contextlib.nullcontext():
                start = time.perf_counter()  # the timeout and the duration start with the slot
                job.families = await asyncio.wait_for(job.run(), job.timeout)
            job.success, job.error = True, ""
            job.last_success = time.time()
            self._failures.recovered(job.name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of a job is reported, not raised
            cause = f"timed out after {job.timeout:g}s" if isinstance(
                exc, asyncio.TimeoutError) else describe_error(exc)
            job.families, job.success, job.error = [], False, cause
            self._failures.failed(job.name, cause, kind=job.kind)
        job.duration = time.perf_counter() - start
        self._pending.discard(job.name)
        if not self._pending:
            self.first_round_done.set()
        self.on_update()


class SnapshotCollector:
    """prometheus_client collector that yields what every collector serves of its jobs' latest
    successful families."""

    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler

    def collect(self) -> Iterable[Metric]:
        for collector, jobs in self.scheduler.jobs_by_collector:
            yield from collector.serve(jobs)
