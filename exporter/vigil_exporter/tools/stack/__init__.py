"""The local stack: the docker-compose stack from locally installed binaries (`vigil stack up`).

    from vigil_exporter.tools.stack import Stack

    with Stack(free_ports=True, scrape_interval="1s", evaluation_interval="1s") as stack:
        stack.wait_for_query("vigil_build_info")

See `Stack` for every option; docs/deployment.md for how it relates to docker-compose.yml. The
servers themselves are in `components`, child processes and ports in `process`, the configs they
run with in `configs`.
"""
from __future__ import annotations

import importlib

__all__ = ["DEFAULT_PORTS", "Stack", "StackError", "values"]
# Where each name of __all__ lives; imported on first use (PEP 562), so that the commands that
# only read the running stack's state file (`vigil alerts`, `vigil slo`, `vigil usage`) do not
# import the servers' code.
_HOMES = {"DEFAULT_PORTS": "ports", "Stack": "stack", "StackError": "process", "values": "stack"}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
