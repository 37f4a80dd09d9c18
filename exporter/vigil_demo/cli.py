"""`vigil demo`: run the instrumented demo agent service, optionally with its traffic generator.

    vigil demo                                   # :8080, SQLite file vigil.db, no Redis, no traffic
    vigil demo --traffic 5                       # plus about 5 requests per second to itself
    vigil demo --database-url postgresql://vigil@localhost/vigil \
               --redis-url redis://localhost:6379/0

The default database is the exporter's default (sqlite:///vigil.db), so that `vigil serve` and
`vigil demo` started in the same directory share the rows out of the box.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vigil_exporter.commandline import add_command
from vigil_exporter.logs import describe_error

from .settings import DEFAULT_LISTEN, Settings

if TYPE_CHECKING:  # asyncio is imported where the service runs: `vigil --help` does not need it
    import asyncio

log = logging.getLogger("vigil.demo")
LOG_LEVELS = ("debug", "info", "warning", "error")
SHUTDOWN_TIMEOUT = 2.0  # seconds in-flight requests get on SIGTERM


def register(subparsers) -> None:
    demo = add_command(subparsers, "demo", cmd_demo,
                       help="run the instrumented demo agent service (and its traffic generator)")
    demo.add_argument("--listen", metavar="HOST:PORT", default=DEFAULT_LISTEN,
                      help=f"listen address (default {DEFAULT_LISTEN})")
    demo.add_argument("--database-url", metavar="URL",
                      help="SQLAlchemy URL of the business database (env VIGIL_DATABASE_URL, or "
                           "a file named by VIGIL_DATABASE_URL_FILE; default sqlite:///vigil.db, "
                           "the exporter's default). The schema and "
                           "the demo tenants are created when missing.")
    demo.add_argument("--redis-url", metavar="URL",
                      help="Redis for the cache and the inbox queue (env VIGIL_REDIS_URL; default: "
                           "none, both in the process)")
    demo.add_argument("--traffic", metavar="RATE", type=float, default=0.0,
                      help="requests per second the built-in generator sends to the service "
                           "(default 0: no generator)")
    demo.add_argument("--seed", type=int, default=42,
                      help="seed of the demo data and of every simulated draw (default 42)")
    demo.add_argument("--burst-interval", metavar="SECONDS", type=float, default=600.0,
                      help="mean time between traffic bursts (default 600)")
    demo.add_argument("--latency-scale", metavar="FACTOR", type=float, default=1.0,
                      help="multiplies the simulated LLM and tool latencies (default 1)")
    demo.add_argument("--log-level", choices=LOG_LEVELS,
                      help="log level (env VIGIL_LOG_LEVEL, default info); logs are JSON lines")


def settings_from(args, environ=os.environ) -> Settings:
    """Flags first, then the environment, then the defaults."""
    listen = args.listen
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {listen!r}: expected HOST:PORT")
    for flag, value in (("--traffic", args.traffic), ("--burst-interval", args.burst_interval),
                        ("--latency-scale", args.latency_scale)):
        if value < 0 or (flag == "--burst-interval" and value == 0):
            raise ValueError(f"{flag} {value:g}: must be positive")
    return Settings(
        listen=listen,
        database_url=(args.database_url or environ.get("VIGIL_DATABASE_URL")
                      or _secret_file(environ, "VIGIL_DATABASE_URL_FILE") or Settings.database_url),
        redis_url=args.redis_url or environ.get("VIGIL_REDIS_URL") or None,
        traffic=args.traffic, seed=args.seed, burst_interval=args.burst_interval,
        latency_scale=args.latency_scale,
        log_level=args.log_level or environ.get("VIGIL_LOG_LEVEL") or "info",
        secret=environ.get("VIGIL_DEMO_SECRET") or None)


def _secret_file(environ, variable: str) -> str | None:
    """The content of the file a `*_FILE` variable names (a Docker secret), stripped."""
    path = environ.get(variable)
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{variable}: cannot read {path}: {exc}") from None


def cmd_demo(args) -> int:
    """An aiohttp agent service instrumented with vigil_instrument: HTTP API, agents, tools, a fake
    LLM provider, auth, cache, queue, WebSocket; /metrics for the job vigil-demo. It writes the
    business rows the exporter reads."""
    from vigil_instrument import configure_logging

    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"vigil demo: {exc}", file=sys.stderr)
        return 2
    import asyncio

    configure_logging(settings.log_level)
    try:
        asyncio.run(serve(settings))
    except Exception as exc:  # noqa: BLE001 - a start-up failure: one line, exit 1
        log.error("demo service failed: %s", describe_error(exc))
        return 1
    return 0


def local_url(host: str, port: int) -> str:
    """Where a client in this process reaches a server listening on host:port."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(settings: Settings, stop: asyncio.Event | None = None, metrics=None) -> None:
    """Run the service until `stop` is set (or SIGTERM / SIGINT), with the traffic generator
    when `settings.traffic` is positive."""
    from prometheus_client import disable_created_metrics

    from vigil_exporter.server import listening, until_stopped

    from .app import make_app
    from .traffic import Traffic

    disable_created_metrics()  # like the exporter: no `_created` series beside every counter
    host, port = settings.host_port
    async with listening(make_app(settings, metrics), host, port,
                         shutdown_timeout=SHUTDOWN_TIMEOUT) as port:
        log.info("demo service listening on http://%s:%d", host, port,
                 extra={"fields": {"traffic": settings.traffic, "redis": bool(settings.redis_url)}})
        traffic = None
        if settings.traffic > 0:
            traffic = Traffic(local_url(host, port), settings.traffic, settings.seed,
                              burst_interval=settings.burst_interval)
            await traffic.start()
        try:
            await until_stopped(stop)
            log.info("stopping")
        finally:
            if traffic is not None:
                await traffic.stop()
