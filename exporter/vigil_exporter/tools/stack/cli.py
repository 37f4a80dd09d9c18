"""`vigil stack up`: the docker-compose stack from locally installed binaries, until Ctrl-C."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from vigil_exporter.commandline import add_command, add_group
from vigil_exporter.tools.stack import state
from vigil_exporter.tools.stack.ports import DEFAULT_PORTS
from vigil_exporter.tools.stack.process import StackError

UI_NOTES = {
    "exporter": "/metrics, /health",
    "demo": "the demo service (traffic generator running)",
    "prometheus": "Prometheus UI",
    "prometheus-2": "Prometheus UI (HA replica)",
    "alertmanager": "Alertmanager UI",
    "alertmanager-2": "Alertmanager UI (clustered replica)",
    "victoriametrics": "VictoriaMetrics (/vmui, PromQL at /api/v1/query)",
    "redis": "",
    "postgres": "",
}


def register(subparsers) -> None:
    commands = add_group(subparsers, "stack", help="the compose stack from local binaries",
                         description="Run the stack of docker-compose.yml from locally installed "
                                     "Debian binaries (redis-server, postgresql, prometheus, "
                                     "prometheus-alertmanager, victoria-metrics) with the same "
                                     "config files.")
    up = add_command(commands, "up", cmd_up,
                     help="start the stack, print where each UI is, stop it all on Ctrl-C")
    up.add_argument("--workdir", metavar="DIR",
                    help="data, configs and logs (kept); default a temporary directory, removed "
                         "on exit")
    up.add_argument("--demo", action=argparse.BooleanOptionalAction, default=True,
                    help="run the demo service with its traffic generator (default: yes)")
    up.add_argument("--traffic", type=float, default=5.0, metavar="RATE",
                    help="demo requests per second (default 5)")
    up.add_argument("--ha", action="store_true",
                    help="two Prometheus servers and two clustered Alertmanagers (profile ha)")
    up.add_argument("--scale-out", action="store_true",
                    help="VictoriaMetrics with remote_write from Prometheus (profile scale-out)")
    up.add_argument("--port", action="append", default=[], metavar="NAME=PORT",
                    help=f"override a port; names: {', '.join(DEFAULT_PORTS)}")
    up.add_argument("--free-ports", action="store_true",
                    help="pick free ports instead of the defaults")
    up.add_argument("--site", metavar="DIR", default=os.environ.get("VIGIL_SITE") or None,
                    help="a site folder built by `vigil bundle build --override FILE --site DIR`:"
                         " its rules and Alertmanager routing (env VIGIL_SITE)")


def _ports(values: list[str]) -> dict[str, int]:
    ports = {}
    for value in values:
        name, _, port = value.partition("=")
        if name not in DEFAULT_PORTS or not port.isdigit():
            raise ValueError(f"--port {value}: expected NAME=PORT with NAME one of "
                             f"{', '.join(DEFAULT_PORTS)}")
        ports[name] = int(port)
    return ports


class _Stop(Exception):
    pass


def _raise_stop(signum, frame):
    raise _Stop()


def cmd_up(args) -> int:
    """Start Redis, PostgreSQL, the exporter, the demo service, Prometheus and Alertmanager on
    127.0.0.1; stop everything on Ctrl-C or SIGTERM. Grafana does not run here (no Debian
    package): use `docker compose up` for it."""
    from vigil_exporter.tools.stack.configs import BundleError
    from vigil_exporter.tools.stack.stack import Stack

    try:
        stack = Stack(args.workdir, demo=args.demo, traffic=args.traffic,
                      victoriametrics=args.scale_out, prometheus_replicas=2 if args.ha else 1,
                      alertmanager_replicas=2 if args.ha else 1, ports=_ports(args.port),
                      free_ports=args.free_ports, keep_workdir=bool(args.workdir),
                      site_dir=args.site)
    except (BundleError, StackError, ValueError) as exc:
        print(f"vigil stack up: {exc}", file=sys.stderr)
        return 2
    missing = stack.missing_binaries()
    if missing:
        for message in missing:
            print(f"vigil stack up: {message}", file=sys.stderr)
        stack.stop()
        return 2
    busy = stack.busy_ports()
    if busy:
        listed = ", ".join(f"{name} {port}" for name, port in busy.items())
        print(f"vigil stack up: ports already in use: {listed}. Stop what listens there, or use "
              "--port NAME=PORT or --free-ports.", file=sys.stderr)
        stack.stop()
        return 2

    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"vigil stack up: starting in {stack.workdir} ...", flush=True)
        try:
            stack.start()
        except StackError as exc:
            print(f"vigil stack up: {exc}", file=sys.stderr)
            return 1
        state.write(stack_state(stack))
        print(summary(stack, kept=bool(args.workdir)), flush=True)
        reported: set[str] = set()
        while True:
            for component in stack.failed():
                if component.name not in reported:
                    reported.add(component.name)
                    print(f"vigil stack up: {component.name} exited with code "
                          f"{component.process.returncode}; see {component.log_path}",
                          file=sys.stderr, flush=True)
            time.sleep(1)
    except (_Stop, KeyboardInterrupt):
        print("\nvigil stack up: stopping ...", flush=True)
        return 0
    finally:
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the cleanup
        state.clear()
        stack.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)


def stack_state(stack) -> dict:
    """What other `vigil` commands need to find this stack (vigil_exporter.tools.stack.state)."""
    return {"alertmanager": stack.alertmanager.url, "prometheus": stack.prometheus.url,
            "alert_log": str(stack.exporter.alert_log), "workdir": str(stack.workdir)}


def summary(stack, kept: bool = True) -> str:
    rows = [(name, component.url, UI_NOTES.get(name, ""))
            for name, component in stack.components.items()]
    width = max(len(r[0]) for r in rows)
    url_width = max(len(r[1]) for r in rows)
    lines = [f"  {n:<{width}}  {u:<{url_width}}  {note}".rstrip() for n, u, note in rows]
    where = stack_state(stack)
    return "\n".join([
        "Vigil stack is up:", *lines,
        "  (Grafana is not started: it has no Debian package. `docker compose up` runs it on "
        "http://localhost:3001.)",
        *([f"Site: {stack.site_dir}"] if stack.site_dir else []),
        f"Logs: {stack.workdir / 'logs'}",
        f"Alert log: {where['alert_log']}" + ("" if kept else
                                                " (removed on exit; keep it with --workdir DIR)"),
        f"`vigil alerts`, `vigil slo status` and `vigil usage` find this stack by themselves "
        f"({state.path()});"
        " for other tools, or another user:",
        f"  export VIGIL_ALERTMANAGER_URL={where['alertmanager']}",
        f"  export VIGIL_ALERT_LOG={where['alert_log']}",
        f"  export VIGIL_PROMETHEUS_URL={where['prometheus']}",
        "Press Ctrl-C to stop everything.",
    ])
