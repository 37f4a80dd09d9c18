"""Collector registry: each collector module registers its class by name."""
from __future__ import annotations

import importlib

from vigil_exporter.collectors.base import Check, Collector, Job

COLLECTORS: dict[str, type[Collector]] = {}

# Every built-in collector module; importing one registers it.
BUILTIN = ("system", "database", "redis", "business")


def register(name: str):
    def decorate(cls: type[Collector]) -> type[Collector]:
        cls.name = name
        COLLECTORS[name] = cls
        return cls
    return decorate


def load_builtin() -> dict[str, type[Collector]]:
    for module in BUILTIN:
        importlib.import_module(f"vigil_exporter.collectors.{module}")
    return COLLECTORS


__all__ = ["COLLECTORS", "BUILTIN", "Check", "Collector", "Job", "register", "load_builtin"]
