"""The scheduler's rules: own interval per job, skip (never queue) overlapping runs, time out."""
from __future__ import annotations

import asyncio
import gc
import gzip

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from vigil_exporter.collectors.base import Collector, Job
from vigil_exporter.exposition import Exposition
from vigil_exporter.scheduler import Scheduler
from vigil_exporter.selfmetrics import SelfCollector


class Sleeper(Collector):
    """Takes `seconds` per run and counts its runs."""

    name = "sleeper"

    def __init__(self, seconds: float, interval: float, timeout: float, fail: bool = False):
        super().__init__({"interval": interval, "timeout": timeout})
        self.seconds, self.fail, self.runs = seconds, fail, 0

    async def collect(self):
        self.runs += 1
        await asyncio.sleep(self.seconds)
        if self.fail:
            raise ConnectionRefusedError("refused")
        family = GaugeMetricFamily("vigil_test_runs", "Runs.")
        family.add_metric([], self.runs)
        return [family]


async def _run_for(scheduler: Scheduler, seconds: float) -> None:
    scheduler.start()
    await asyncio.sleep(seconds)
    await scheduler.stop()


async def test_overlapping_runs_are_skipped_and_counted():
    slow = Sleeper(seconds=0.35, interval=0.1, timeout=5)
    scheduler = Scheduler([slow])
    await _run_for(scheduler, 1.0)
    job = scheduler.jobs[0]
    assert slow.runs <= 4  # never more than one at a time
    assert job.skipped >= 5


async def test_timeout_fails_the_job_and_drops_old_values():
    slow = Sleeper(seconds=0.0, interval=0.05, timeout=0.2)
    scheduler = Scheduler([slow])
    await scheduler.run_once()
    assert scheduler.jobs[0].success and scheduler.jobs[0].families
    slow.seconds = 1.0
    await scheduler.run_once()
    job = scheduler.jobs[0]
    assert job.success is False
    assert job.families == []
    assert "timed out" in job.error


async def test_failure_is_reported_without_traceback(caplog):
    scheduler = Scheduler([Sleeper(0, 0.05, 1, fail=True)])
    await _run_for(scheduler, 0.5)
    failures = [r for r in caplog.records if "failing" in r.getMessage()]
    assert len(failures) == 1  # once per cause, not per retry
    assert failures[0].exc_info is None
    assert "ConnectionRefusedError: refused" in failures[0].getMessage()


async def test_each_job_runs_on_its_own_interval():
    fast, slow = Sleeper(0, 0.1, 1), Sleeper(0.6, 10, 1)
    fast.name, slow.name = "fast", "slow"
    scheduler = Scheduler([fast, slow])
    await _run_for(scheduler, 1.05)
    assert fast.runs >= 9  # not held up by the slow one


async def test_self_metrics_and_first_round():
    scheduler = Scheduler([Sleeper(0, 1, 1)])
    assert not scheduler.first_round_done.is_set()
    await scheduler.run_once()
    assert scheduler.first_round_done.is_set()
    exposition = Exposition(CollectorRegistry())
    names = {s.name for f in SelfCollector(scheduler, exposition).collect() for s in f.samples}
    assert {"vigil_build_info", "vigil_collector_success", "vigil_collector_duration_seconds",
            "vigil_collector_last_success_timestamp_seconds",
            "vigil_collector_skipped_runs_total"} <= names


def test_job_dataclass_defaults():
    job = Job("x", "query", 1.0, 1.0, run=lambda: None)
    assert job.success is None and job.skipped == 0


async def test_exposition_renders_once_per_refresh():
    from prometheus_client import CollectorRegistry
    registry = CollectorRegistry()
    exposition = Exposition(registry)
    assert exposition.renders == 0  # the first render waits for the first scrape or refresh
    await exposition.get("text")
    before = exposition.renders
    assert (await exposition.choose("text/plain")).body == (await exposition.choose("")).body
    assert exposition.renders == before  # serving never renders
    # OpenMetrics is rendered when first asked for, then with every refresh, never per scrape
    assert (await exposition.choose("application/openmetrics-text")).body.endswith(b"# EOF\n")
    assert exposition.renders == before + 1
    await exposition.choose("application/openmetrics-text;version=1.0.0")
    assert exposition.renders == before + 1
    exposition.render()
    assert set(exposition.rendered) == {"text", "openmetrics"}


async def test_runs_finishing_together_share_one_render(monkeypatch):
    from prometheus_client import CollectorRegistry

    from vigil_exporter import exposition as module
    monkeypatch.setattr(module, "RENDER_DELAY", 0.2)
    registry = CollectorRegistry()
    exposition = Exposition(registry)
    await exposition.get("text")  # a first scrape: the first render
    value = GaugeMetricFamily("vigil_test_value", "A test value.", value=1)
    registry.register(type("C", (), {"collect": lambda self: [value]})())
    before = exposition.renders
    for _ in range(20):  # twenty runs of one round, finishing moments apart
        exposition.mark_dirty()
        await asyncio.sleep(0.001)
    assert exposition.renders == before
    assert b"vigil_test_value" not in (await exposition.get("text")).body
    await asyncio.sleep(0.3)
    await exposition.flush()  # the render started by the timer runs in a thread: wait for it
    assert exposition.renders == before + 1
    assert b"vigil_test_value 1.0" in (await exposition.get("text")).body
    exposition.mark_dirty()
    await exposition.flush()  # what /health/ready does: render now what is due
    assert exposition.renders == before + 2
    await asyncio.sleep(0.3)
    assert exposition.renders == before + 2  # the cancelled timer did not render again


def test_render_formats_only_new_families_and_matches_a_full_render(monkeypatch):
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily
    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

    from vigil_exporter import exposition as module

    class Job:  # serves the same family objects until its next run, as SnapshotCollector does
        def __init__(self, name: str):
            self.name = name
            self.run(1)

        def run(self, n: int):
            # help and label values that need escaping, labels out of order, a unit, big and
            # special values: what the fast writer must write as prometheus_client does
            gauge = GaugeMetricFamily(f"vigil_test_{self.name}_tenants",
                                      'Tenants "by plan"\nper \\ region.', labels=["plan", "az"])
            gauge.add_metric(["free", 'a"b\\c\nd'], n)
            gauge.add_metric(["pro", "eu"], 2 * n)
            gauge.add_metric(["big", "x"], 123456789.5 * n)
            gauge.add_metric(["inf", "x"], float("inf"))
            size = GaugeMetricFamily(f"vigil_test_{self.name}_size_bytes", "Size.", unit="bytes",
                                     value=-0.25 * n)
            self.families = [gauge, size, CounterMetricFamily(
                f"vigil_test_{self.name}_runs", "Runs.", value=n)]

        def collect(self):
            return self.families

    stable, changing = Job("stable"), Job("changing")
    registry, reference = CollectorRegistry(), CollectorRegistry()
    for job in (stable, changing):
        registry.register(job)
        reference.register(job)
    exposition = Exposition(registry, formats=("text", "openmetrics"))
    exposition.render()  # the first render formats every family once
    original, formatted = module._format, []

    def counting(names, family, label_texts):
        formatted.append(family.name)
        return original(names, family, label_texts)
    monkeypatch.setattr(module, "_format", counting)

    def own(body: bytes) -> bytes:  # without the exposition's own metrics
        return b"".join(line for line in body.splitlines(keepends=True)
                        if b"vigil_exposition_" not in line)

    for n in (2, 3):
        changing.run(n)
        formatted.clear()
        exposition.render()
        jobs_formatted = sorted(f for f in formatted if not f.startswith("vigil_exposition_"))
        assert jobs_formatted == sorted(["vigil_test_changing_tenants", "vigil_test_changing_size_bytes",
                                         "vigil_test_changing_runs"])  # once for both formats
        text, om = exposition.rendered["text"].body, exposition.rendered["openmetrics"].body
        assert own(text) == generate_latest(reference)
        assert own(om) == generate_openmetrics(reference) and om.endswith(b"# EOF\n")
        assert b'vigil_test_changing_tenants{az="eu",plan="pro"} %d.0' % (2 * n) in text
        assert gzip.decompress(exposition.rendered["text"].gzipped) == text
        assert gzip.decompress(exposition.rendered["openmetrics"].gzipped) == om


async def test_what_exists_after_the_first_round_is_frozen_out_of_the_gc():
    from vigil_exporter.app import freeze_after_first_round

    gc.unfreeze()  # an app started in-process by an earlier test of this worker froze it
    scheduler = Scheduler([Sleeper(seconds=0, interval=60, timeout=1)])
    freezing = asyncio.create_task(freeze_after_first_round(scheduler))
    try:
        await asyncio.sleep(0.05)
        assert not freezing.done() and gc.get_freeze_count() == 0  # waits for the round
        await scheduler.run_once()
        await asyncio.wait_for(freezing, 10)
        assert gc.get_freeze_count() > 1000  # this test process's modules, at least
    finally:
        freezing.cancel()
        gc.unfreeze()


async def test_waiting_for_a_slot_does_not_count_toward_the_timeout():
    """Business queries share a few slots: a query queued behind a slow one must not time out
    for the time it waited."""
    slot, release = asyncio.Semaphore(1), asyncio.Event()

    async def slow():
        await release.wait()
        return []

    async def quick():
        return [GaugeMetricFamily("vigil_test_quick", "Quick.", value=1)]

    first = Job("first", "query", 60, 30, slow, slot=lambda: slot)
    second = Job("second", "query", 60, 0.1, quick, slot=lambda: slot)
    scheduler = Scheduler([])
    scheduler.jobs = [first, second]
    round_ = asyncio.create_task(scheduler.run_once())
    await asyncio.sleep(0.3)  # three times the second job's timeout, spent waiting for the slot
    assert first.success is None and second.success is None
    release.set()
    await round_
    assert first.success and second.success, second.error
    assert second.duration < 0.1  # its own run, not the wait
