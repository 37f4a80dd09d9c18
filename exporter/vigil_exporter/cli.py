"""`vigil`: the command line. Each command group beyond the exporter's own lives in its module.

Starting fast matters (the tests run `vigil` hundreds of times, users run it by hand): this module
and every module in COMMAND_MODULES import at the top only what building the parser needs. What
a command needs (asyncio, aiohttp, the collectors, SQLAlchemy, redis-py, psutil) is imported in
the function that runs it; tests/test_cli.py checks that parsing stays without them.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

from vigil_exporter import __version__
from vigil_exporter.commandline import add_command
from vigil_exporter.config import (
    DEFAULT_LISTEN,
    Config,
    ConfigError,
    load,
    split_listen_address,
    unresolved_listen_address,
)
from vigil_exporter.extras import MissingExtra

CORE_COMMANDS = ("serve", "check-config", "metrics", "status")
# Modules that add their own command groups through `register(subparsers)`. They are imported
# only when the command line asks for something beyond the core commands, so that the
# exporter's own process stays small.
COMMAND_MODULES = ("vigil_exporter.alerting.cli", "vigil_exporter.tools.bundle",
                   "vigil_exporter.tools.dashboards.cli", "vigil_exporter.tools.stack.cli",
                   "vigil_exporter.slo.cli", "vigil_exporter.usage.cli")
DEMO_MODULE = "vigil_demo.cli"  # the vigil-demo distribution, when installed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["serve", *argv]  # `vigil` alone runs the exporter, like any other exporter
    args = build_parser(argv[0]).parse_args(argv)
    try:
        return args.func(args) or 0
    except (ConfigError, MissingExtra) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with a core `command`, without the other commands' modules."""
    parser = argparse.ArgumentParser(prog="vigil", description="Vigil: Prometheus exporter and "
                                     "observability bundle for an application stack.")
    parser.add_argument("--version", action="version", version=f"vigil {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = add_command(commands, "serve", cmd_serve, help="run the exporter")
    _config_arguments(serve)
    serve.add_argument("--listen", metavar="HOST:PORT",
                       help=f"listen address (env VIGIL_LISTEN_ADDRESS, default {DEFAULT_LISTEN})")
    serve.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                       help="exporter-toolkit web config: TLS and basic auth")
    serve.add_argument("--demo", action="store_true",
                       help="fill the embedded database with a demo data set")

    check = add_command(commands, "check-config", cmd_check_config, help="validate a configuration file")
    check.add_argument("file")
    check.add_argument("--connect", action="store_true",
                       help="also run every business query against the live database")

    metrics = add_command(commands, "metrics", cmd_metrics, help="collect once and print the exposition")
    _config_arguments(metrics)
    metrics.add_argument("--format", choices=("text", "openmetrics", "json"), default="text")

    status = add_command(commands, "status", cmd_status, help="show a running exporter's /health as a table")
    status.add_argument("url", nargs="?", default="http://127.0.0.1:9477")
    status.add_argument("--timeout", type=float, default=5.0)

    if command not in (*CORE_COMMANDS, "--version"):  # --version prints before any command
        for module in COMMAND_MODULES:
            importlib.import_module(module).register(commands)
        _register_demo(commands)
    return parser


def _register_demo(commands) -> None:
    try:
        demo = importlib.import_module(DEMO_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in ("vigil_demo", DEMO_MODULE):
            raise
        parser = add_command(commands, "demo", _demo_not_installed,
                             help="the demo service (install vigil-demo)")
        parser.add_argument("arguments", nargs=argparse.REMAINDER)
        return
    demo.register(commands)


def _demo_not_installed(args) -> int:
    print("vigil demo: the demo service is its own package: from a checkout, "
          "`pip install ./packages/vigil-demo`", file=sys.stderr)
    return 2


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE", help="YAML configuration (env VIGIL_CONFIG)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))


def _load(args) -> Config:
    return load(args.config, overrides={"listen_address": getattr(args, "listen", None),
                                        "log_level": args.log_level})


def cmd_serve(args) -> int:
    import asyncio

    from vigil_exporter import logs
    from vigil_exporter.app import make_app
    from vigil_exporter.embedded import prepare_database, prepare_later

    config = _load(args)
    web_config = _web_config(config, args.web_config_file)
    logs.setup(config["log_level"])
    prepared = prepare_database(config, demo=args.demo)
    app = make_app(config, web_config)
    if not prepared:
        app.cleanup_ctx.append(prepare_later(config, demo=args.demo))
    host, port = split_listen_address(config["listen_address"])
    asyncio.run(_serve(app, host, port, web_config, config))
    return 0


def _web_config(config: Config, flag: str | None):
    """The web config the flag names, else `web.config_file` (relative to the config file)."""
    from pathlib import Path

    from vigil_exporter import webconfig

    path = flag or config["web"]["config_file"]
    if path and not flag and config.source != "defaults":
        path = str(Path(config.source).parent / path)
    return webconfig.load(path) if path else None


async def _serve(app, host: str, port: int, web_config, config: Config) -> None:
    import logging

    from vigil_exporter.server import ListenError, listening, until_stopped

    ssl_context = web_config.ssl_context if web_config else None
    try:
        async with listening(app, host, port, shutdown_timeout=config["web"]["shutdown_timeout"],
                             ssl_context=ssl_context, limits=config["web"]):
            scheme = "https" if ssl_context else "http"
            logging.getLogger("vigil").info("listening on %s://%s:%d/metrics", scheme, host, port,
                                            extra={"fields": {"version": __version__}})
            await until_stopped()
    except ListenError as exc:
        raise ConfigError(config.source, [
            f"listen_address: cannot listen on {host}:{port}: {exc.strerror or exc}"]) from None


def cmd_check_config(args) -> int:
    import asyncio

    config = load(args.file, environ={})
    from vigil_exporter.app import webhook_authorizer

    _web_config(config, None)  # what serve would load, checked the same way
    webhook_authorizer(config["alerts"], config.source)
    faults: list[str] = []
    unresolved = unresolved_listen_address(config["listen_address"])
    if unresolved:  # a fault when the resolver said so: serve could not listen either
        why, certain = unresolved
        if certain:
            faults.append(why)
        else:
            print(f"{args.file}: warning: {why}", file=sys.stderr)
    if args.connect and config.collector("business")["enabled"]:
        from vigil_exporter.collectors.business import check_queries, configured_queries
        faults += asyncio.run(check_queries(config.business_database(),
                                            configured_queries(config.collector("business"))))
    for fault in faults:
        print(f"{args.file}: {fault}", file=sys.stderr)
    if faults:
        return 2
    print(f"{args.file}: configuration is valid" + (" and every query ran" if args.connect else ""))
    return 0


def cmd_metrics(args) -> int:
    import asyncio

    from vigil_exporter.embedded import prepare_database
    from vigil_exporter.wiring import build

    config = _load(args)
    prepare_database(config)
    wiring = build(config, formats=("text" if args.format == "json" else args.format,))
    asyncio.run(wiring.collect_once())
    if args.format == "json":
        print(json.dumps(families_as_json(wiring.registry), indent=2))
        return 0
    sys.stdout.write(wiring.exposition.get_now(args.format).body.decode())
    return 0 if all(job.success for job in wiring.scheduler.jobs) else 1


def families_as_json(registry) -> list[dict]:
    return [{"name": f.name, "type": f.type, "help": f.documentation,
             "samples": [{"name": s.name, "labels": s.labels, "value": s.value}
                         for s in f.samples]}
            for f in registry.collect()]


def cmd_status(args) -> int:
    import urllib.error
    import urllib.request

    url = args.url.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            document = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            print(f"{url}: HTTP {exc.code}", file=sys.stderr)
            return 1
        document = json.load(exc)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"{url}: cannot reach the exporter: {reason}", file=sys.stderr)
        return 1
    print(format_health_table(document))
    return 0 if document.get("status") == "healthy" else 1


def format_health_table(document: dict) -> str:
    rows = [("CHECK", "STATUS", "LATENCY", "MESSAGE")]
    for check in document.get("checks", []):
        latency = check.get("latency_seconds")
        rows.append((check["name"], check["status"],
                     "" if latency is None else f"{latency * 1000:.1f}ms", check.get("message", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip()
             for r in rows]
    return f"vigil {document.get('version', '?')}: {document.get('status', '?')}\n" + "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
