"""The local stack: the docker-compose stack from locally installed binaries (`vigil stack up`).

    from vigil_exporter.tools.stack import Stack

    with Stack(free_ports=True, scrape_interval="1s", evaluation_interval="1s") as stack:
        stack.wait_for_query("vigil_build_info")

See `Stack` for every option; docs/deployment.md for how it relates to docker-compose.yml.
"""
from vigil_exporter.prometheus_api import PrometheusError
from vigil_exporter.tools.stack.components import (
                                       Alertmanager,
                                       Component,
                                       Demo,
                                       Exporter,
                                       Postgres,
                                       Prometheus,
                                       Redis,
                                       VictoriaMetrics,
)
from vigil_exporter.tools.stack.configs import BundleError
from vigil_exporter.tools.stack.process import MissingBinary, StackError, free_ports, wait_until
from vigil_exporter.tools.stack.stack import DEFAULT_PORTS, Stack, values

__all__ = ["Stack", "StackError", "MissingBinary", "PrometheusError", "BundleError", "DEFAULT_PORTS",
           "Component", "Redis", "Postgres", "Exporter", "Demo", "Prometheus", "Alertmanager",
           "VictoriaMetrics", "free_ports", "wait_until", "values"]
