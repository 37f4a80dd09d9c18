"""`vigil usage --prometheus URL [--tenant T] --from DATE --to DATE [--format table|json|csv]`."""
from __future__ import annotations

import csv
import io
import json
import sys

from vigil_exporter.commandline import add_command

DEFAULT_PROMETHEUS = "http://127.0.0.1:9090"


def register(subparsers) -> None:
    parser = add_command(subparsers, "usage", cmd_usage,
                         help="tenant usage per UTC day, totals and limits, from Prometheus")
    from vigil_exporter.tools.stack import state

    parser.add_argument("--prometheus", metavar="URL",
                        default=state.default("VIGIL_PROMETHEUS_URL", "prometheus",
                                              DEFAULT_PROMETHEUS),
                        help="env VIGIL_PROMETHEUS_URL, else the running `vigil stack up`'s, "
                             f"else {DEFAULT_PROMETHEUS}")
    parser.add_argument("--tenant", metavar="T", help="one tenant (default: every tenant)")
    parser.add_argument("--from", dest="start", required=True, metavar="DATE",
                        help="first UTC day, YYYY-MM-DD")
    parser.add_argument("--to", dest="end", required=True, metavar="DATE",
                        help="last UTC day, YYYY-MM-DD (today at most)")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="per query (default 10)")


def cmd_usage(args) -> int:
    """Per tenant and UTC day: agents, channels, messages, API calls, storage and LLM cost; totals
    over the range and the tenant's limits. Read from a Prometheus that runs the bundle's rules."""
    from vigil_exporter.prometheus_api import PrometheusAPI, PrometheusError
    from vigil_exporter.usage.report import BadRequest, Request, build

    try:
        request = Request.parse(args.start, args.end, args.tenant)
        report = build(PrometheusAPI(args.prometheus, args.timeout), request)
    except BadRequest as exc:
        print(f"vigil usage: {exc}", file=sys.stderr)
        return 2
    except PrometheusError as exc:
        print(f"vigil usage: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(report, indent=2))
    elif args.format == "csv":
        sys.stdout.write(format_csv(report))
    else:
        print(format_table(report))
    return 0


def format_csv(report: dict) -> str:
    """One row per tenant and day, with the tenant's limits on every row."""
    from vigil_exporter.usage.report import FIELDS, LIMITS

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["tenant_id", "date", *FIELDS, *LIMITS])
    for tenant in report["tenants"]:
        for row in tenant["days"]:
            writer.writerow([tenant["tenant_id"], row["date"],
                             *(_cell(row[f]) for f in FIELDS),
                             *(_cell(tenant["limits"][f]) for f in LIMITS)])
    return out.getvalue()


def format_table(report: dict) -> str:
    from vigil_exporter.alerting.cli import table
    from vigil_exporter.usage.report import FIELDS, LIMITS

    if not report["tenants"]:
        return f"no tenant usage between {report['start_date']} and {report['end_date']}"
    header = ("DATE", "AGENTS", "ACTIVE", "CHANNELS", "ACTIVE", "STORAGE", "MSG IN", "MSG OUT",
              "API CALLS", "LLM USD")
    blocks = []
    for tenant in report["tenants"]:
        rows = [(row["date"], *(_cell(row[f]) for f in FIELDS)) for row in tenant["days"]]
        rows.append(("total", *(_cell(tenant["peaks"].get(f, tenant["totals"].get(f)))
                                for f in FIELDS)))
        limits = ", ".join(f"{f}={_cell(tenant['limits'][f]) or '-'}" for f in LIMITS)
        blocks.append(f"tenant {tenant['tenant_id']}\n{table(header, rows)}\nlimits: {limits}")
    return "\n\n".join(blocks) + "\n(total: sums of the daily counts and cost, peaks of the " \
                                 "agents, channels and storage)"


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)
