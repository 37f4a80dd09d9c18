"""The built-in collectors, by the name of their configuration section (`collectors.<name>`).

This mapping is the one place that lists them: the configuration schema, the wiring and the
docs generator all read it. Adding a collector means one module and one entry here.
"""
from __future__ import annotations

from vigil_exporter.collectors.base import Check, Collector, Job
from vigil_exporter.collectors.business import BusinessCollector
from vigil_exporter.collectors.database import DatabaseCollector
from vigil_exporter.collectors.redis import RedisCollector
from vigil_exporter.collectors.system import SystemCollector

COLLECTORS: dict[str, type[Collector]] = {
    "system": SystemCollector,
    "database": DatabaseCollector,
    "redis": RedisCollector,
    "business": BusinessCollector,
}

__all__ = ["COLLECTORS", "Check", "Collector", "Job"]
