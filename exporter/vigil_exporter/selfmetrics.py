"""The exporter's own metrics, all made here: build info and start time, every job's last run
(duration, success, last success, interval, skipped runs, rows over a query's series cap) and
the cost of rendering /metrics. node_exporter keeps its `node_scrape_collector_*` meta-metrics in
one place the same way; collectors never report on themselves."""
from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric

from vigil_exporter import __version__
from vigil_exporter.collectors.base import Job
from vigil_exporter.exposition import Exposition
from vigil_exporter.scheduler import Scheduler

# Per kind of job: metric name prefix, the noun in HELP texts, and the label naming the job.
JOB_KINDS = {
    "collector": ("vigil_collector", "collector", "collector"),
    "query": ("vigil_business_query", "business query", "query"),
}


class SelfCollector:
    """prometheus_client collector of the self metrics, read from the scheduler and exposition."""

    def __init__(self, scheduler: Scheduler, exposition: Exposition):
        self.scheduler = scheduler
        self.exposition = exposition

    def collect(self) -> Iterable[Metric]:
        info = InfoMetricFamily("vigil_build", "Vigil version and Python runtime.")
        info.add_metric([], {"version": __version__, "python_version": platform.python_version()})
        yield info
        start = GaugeMetricFamily("vigil_start_time_seconds", "Unix time when the exporter started.")
        start.add_metric([], self.scheduler.started_at)
        yield start
        for kind in JOB_KINDS:
            jobs = [job for job in self.scheduler.jobs if job.kind == kind]
            if jobs:
                yield from job_families(kind, jobs)
        yield from exposition_families(self.exposition)


def job_families(kind: str, jobs: list[Job]) -> Iterable[Metric]:
    prefix, noun, label = JOB_KINDS[kind]

    def gauge(suffix: str, help_text: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{prefix}_{suffix}", help_text, labels=[label])

    duration = gauge("duration_seconds", f"Duration of the last run of the {noun}.")
    success = gauge("success", f"1 if the last run of the {noun} succeeded, else 0.")
    last = gauge("last_success_timestamp_seconds",
                 f"Unix time of the last successful run of the {noun}.")
    interval = gauge("interval_seconds", f"Configured refresh interval of the {noun}.")
    skipped = CounterMetricFamily(f"{prefix}_skipped_runs", f"Runs of the {noun} skipped because "
                                  "the previous run was still going.", labels=[label])
    for job in jobs:
        if job.success is not None:
            duration.add_metric([job.name], job.duration)
            success.add_metric([job.name], 1.0 if job.success else 0.0)
        last.add_metric([job.name], job.last_success)
        interval.add_metric([job.name], job.interval)
        skipped.add_metric([job.name], job.skipped)
    yield from (duration, success, last, interval, skipped)
    if kind == "query":
        series = gauge("series", "Series the last run of the business query exported.")
        limit = gauge("series_limit", "Series cap of the business query (max_series).")
        dropped = gauge("series_dropped", "Rows beyond the series cap in the last run.")
        for job in jobs:
            series.add_metric([job.name], job.series)
            limit.add_metric([job.name], job.series_limit)
            dropped.add_metric([job.name], job.series_dropped)
        yield from (series, limit, dropped)


def exposition_families(exposition: Exposition) -> Iterable[Metric]:
    """The cost of the previous render (the current one is still being made)."""
    duration = GaugeMetricFamily("vigil_exposition_render_duration_seconds",
                                 "Time the previous render of /metrics took "
                                 "(every format in use, with gzip).")
    duration.add_metric([], exposition.render_seconds)
    yield duration
    renders = CounterMetricFamily("vigil_exposition_renders",
                                  "Renders of /metrics (one per refresh, not per scrape).")
    renders.add_metric([], exposition.renders)
    yield renders
    size = GaugeMetricFamily("vigil_exposition_size_bytes",
                             "Size of the previous /metrics body by format and encoding "
                             "(OpenMetrics once a scraper asked for it; 0 before the first body).",
                             labels=["format", "encoding"])
    for fmt, rendered in exposition.rendered.items():
        size.add_metric([fmt, "identity"], rendered.size if rendered else 0)
        size.add_metric([fmt, "gzip"], len(rendered.gzipped) if rendered else 0)
    yield size
