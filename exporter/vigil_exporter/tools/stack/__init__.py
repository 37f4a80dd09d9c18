"""The local stack: the docker-compose stack from locally installed binaries (`vigil stack up`).

    from vigil_exporter.tools.stack import Stack

    with Stack(free_ports=True, scrape_interval="1s", evaluation_interval="1s") as stack:
        stack.wait_for_query("vigil_build_info")

See `Stack` for every option; docs/deployment.md for how it relates to docker-compose.yml. The
servers themselves are in `components`, child processes and ports in `process`, the configs they
run with in `configs`.
"""
from vigil_exporter.tools.stack.process import StackError
from vigil_exporter.tools.stack.stack import DEFAULT_PORTS, Stack, values

__all__ = ["DEFAULT_PORTS", "Stack", "StackError", "values"]
