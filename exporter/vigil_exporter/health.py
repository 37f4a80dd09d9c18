"""Health and info: what `/health`, `/health/ready` and `/info` report."""
from __future__ import annotations

import os
import time

import psutil

from vigil_exporter import __version__
from vigil_exporter.collectors.base import DEGRADED, DISABLED, FAILING, OK, Check
from vigil_exporter.scheduler import Scheduler

HEALTHY, UNHEALTHY = "healthy", "unhealthy"


def checks(scheduler: Scheduler, disabled: list[str]) -> list[Check]:
    """Every dependency check the collectors report, plus one per job."""
    result = [Check(name, DISABLED, "disabled in the configuration") for name in disabled]
    for collector in scheduler.collectors:
        result.extend(collector.checks())
    for job in scheduler.jobs:
        if job.success is None:
            result.append(Check(f"{job.kind}:{job.name}", DEGRADED, "first run not finished"))
        elif job.success and job.series_dropped:
            result.append(Check(f"{job.kind}:{job.name}", DEGRADED, (
                f"{job.series_dropped} rows beyond max_series ({job.series_limit}) dropped: "
                "raise max_series or bound the tenants (docs/tenants.md)"), job.duration))
        elif job.success:
            result.append(Check(f"{job.kind}:{job.name}", OK, "", job.duration))
        else:
            result.append(Check(f"{job.kind}:{job.name}", FAILING, job.error, job.duration))
    return result


def overall(entries: list[Check]) -> str:
    if any(c.status == FAILING and c.critical for c in entries):
        return UNHEALTHY
    if any(c.status in (FAILING, DEGRADED) for c in entries):
        return DEGRADED
    return HEALTHY


def health_document(scheduler: Scheduler, disabled: list[str]) -> dict:
    entries = checks(scheduler, disabled)
    return {
        "status": overall(entries),
        "version": __version__,
        "checks": [
            {"name": c.name, "status": c.status, "message": c.message,
             "latency_seconds": None if c.latency_seconds is None else round(c.latency_seconds, 6)}
            for c in entries
        ],
    }


def info_document(started_at: float) -> dict:
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage("/")
    return {
        "version": __version__,
        "uptime_seconds": round(time.time() - started_at, 3),
        "pid": os.getpid(),
        "cpu": {"count": psutil.cpu_count(), "usage_ratio": psutil.cpu_percent(None) / 100},
        "memory": {"total_bytes": memory.total, "available_bytes": memory.available,
                   "usage_ratio": round((memory.total - memory.available) / memory.total, 4)},
        "disk": {"path": "/", "total_bytes": disk.total, "free_bytes": disk.free,
                 "usage_ratio": round(disk.used / disk.total, 4) if disk.total else 0.0},
    }
