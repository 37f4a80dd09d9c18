"""The exporter, assembled in one place: collectors, scheduler, registry, self metrics and the
exposition. `vigil serve`, `vigil metrics` and the docs generator all build it here, so the
three serve the same families."""
from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from vigil_exporter.alerting.receiver import notifications_counter
from vigil_exporter.collectors import COLLECTORS, Collector
from vigil_exporter.config import Config
from vigil_exporter.exposition import Exposition
from vigil_exporter.scheduler import Scheduler, SnapshotCollector
from vigil_exporter.selfmetrics import SelfCollector


@dataclass
class Wiring:
    config: Config
    collectors: list[Collector]
    disabled: list[str]  # names of the collectors the configuration turns off
    scheduler: Scheduler
    registry: CollectorRegistry
    exposition: Exposition
    alert_notifications: Counter

    async def collect_once(self) -> None:
        """One round of every job, then release the connections (`vigil metrics`, docs)."""
        await self.scheduler.run_once()
        await self.scheduler.stop()
        await self.exposition.flush()  # the runs asked for a render: do it before the loop ends


def build(config: Config, formats: tuple[str, ...] = ("text",)) -> Wiring:
    collectors, disabled = build_collectors(config)
    scheduler = Scheduler(collectors)
    disable_created_metrics()  # `_created` series double the counters and no rule reads them
    registry = CollectorRegistry(auto_describe=False)
    for standard in (ProcessCollector, PlatformCollector, GCCollector):
        standard(registry=registry)
    exposition = Exposition(registry, formats)
    registry.register(SelfCollector(scheduler, exposition))
    registry.register(SnapshotCollector(scheduler))
    alerts = notifications_counter(registry)
    scheduler.on_update = exposition.mark_dirty
    return Wiring(config, collectors, disabled, scheduler, registry, exposition, alerts)


def build_collectors(config: Config) -> tuple[list[Collector], list[str]]:
    """The enabled collectors, and the names of the disabled ones."""
    enabled, disabled = [], []
    for name, cls in sorted(COLLECTORS.items()):
        section = config.collector(name)
        if not section["enabled"]:
            disabled.append(name)
        elif name == "business":  # the one collector that reads another section's entry
            enabled.append(cls(section, database=config.business_database()))
        else:
            enabled.append(cls(section))
    return enabled, disabled
