"""The local stack: the docker-compose stack from locally installed binaries (`vigil stack up`).

    from vigil_exporter.tools.stack import Stack

    with Stack(free_ports=True, scrape_interval="1s", evaluation_interval="1s") as stack:
        stack.wait_for_query("vigil_build_info")

See `Stack` for every option; docs/deployment.md for how it relates to docker-compose.yml.
"""
from vigil_exporter.tools.stack.components import (
                                       Alertmanager,
                                       Component,
                                       Demo,
                                       Exporter,
                                       HttpComponent,
                                       Postgres,
                                       Prometheus,
                                       Redis,
                                       VictoriaMetrics,
                                       sample_value,
)
from vigil_exporter.tools.stack.configs import BundleError
from vigil_exporter.tools.stack.process import (
    MissingBinary,
    StackError,
    free_port,
    free_ports,
    wait_for,
    wait_until,
)
from vigil_exporter.tools.stack.stack import DEFAULT_PORTS, QueryError, Stack, values

__all__ = ["Stack", "StackError", "MissingBinary", "QueryError", "BundleError", "DEFAULT_PORTS",
           "Component", "HttpComponent", "Redis", "Postgres", "Exporter", "Demo", "Prometheus",
           "Alertmanager", "VictoriaMetrics", "free_port", "free_ports", "wait_until", "wait_for", "values",
           "sample_value"]
