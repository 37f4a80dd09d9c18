"""`vigil slo status [PROMETHEUS_URL] [--format table|json]`."""
from __future__ import annotations

import json
import sys

from vigil_exporter.commandline import add_command, add_group

DEFAULT_PROMETHEUS = "http://127.0.0.1:9090"


def register(subparsers) -> None:
    commands = add_group(subparsers, "slo", help="service level objectives")
    status = add_command(
        commands, "status", cmd_status, help="every SLO's objective, SLI, error budget, burn rates and alerts, from "
                       "a Prometheus that runs the bundle's rules")
    from vigil_exporter.tools.stack import state

    status.add_argument("url", nargs="?", metavar="PROMETHEUS_URL",
                        default=state.default("VIGIL_PROMETHEUS_URL", "prometheus",
                                              DEFAULT_PROMETHEUS),
                        help="Prometheus base URL (env VIGIL_PROMETHEUS_URL, else the running "
                             f"`vigil stack up`'s, else {DEFAULT_PROMETHEUS})")
    status.add_argument("--format", choices=("table", "json"), default="table")
    status.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="per query (default 5)")


def cmd_status(args) -> int:
    from vigil_exporter.prometheus_api import PrometheusAPI, PrometheusError
    from vigil_exporter.slo.status import NoSlos, collect, format_table

    try:
        slos = collect(PrometheusAPI(args.url, args.timeout))
    except (PrometheusError, NoSlos) as exc:
        print(f"vigil slo status: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps([slo.as_json() for slo in slos], indent=2))
    else:
        print(format_table(slos))
    return 0
