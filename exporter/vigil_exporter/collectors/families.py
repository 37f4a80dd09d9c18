"""Metric families built from a table of specs, one family object per name and round.

A collector (or a feature of one) declares its metrics once, as
`{name: Spec(kind, help, labels)}`, and adds samples with `out.add(name, target, value, *labels)`:
the family is made on first use with its HELP text and the target's label in front of the
others (`database`, `redis`). Declaring the specs in one table keeps every name, type and label
in one place, which the docs generator and the tests read.
"""
from __future__ import annotations

from typing import NamedTuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from vigil_exporter.collectors.base import refreshed_every


class Spec(NamedTuple):
    kind: str  # "gauge" or "counter" (the name of a counter is given without `_total`)
    help: str
    labels: tuple[str, ...] = ()  # besides the target's label


class Sample(NamedTuple):
    """One value a feature read, before it becomes part of a family."""

    name: str
    value: float
    labels: tuple[str, ...] = ()


class Families:
    """The families of one collection round."""

    def __init__(self, specs: dict[str, Spec], target_label: str, interval: float):
        self.specs = specs
        self.target_label = target_label
        self.suffix = refreshed_every(interval)
        self.families: dict[str, Metric] = {}

    def add(self, name: str, target: str, value: float | None, *labels: str) -> None:
        if value is None:
            return
        family = self.families.get(name)
        if family is None:
            spec = self.specs[name]
            cls = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
            family = self.families[name] = cls(name, spec.help + self.suffix,
                                               labels=(self.target_label, *spec.labels))
        family.add_metric([target, *labels], float(value))

    def add_samples(self, target: str, samples: list[Sample]) -> None:
        for sample in samples:
            self.add(sample.name, target, sample.value, *sample.labels)

    def result(self) -> list[Metric]:
        return list(self.families.values())
