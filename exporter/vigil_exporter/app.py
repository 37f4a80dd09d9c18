"""The aiohttp application: built by a factory, resources owned through `cleanup_ctx`."""
from __future__ import annotations

import asyncio
import gc
import hmac
import html
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import payload, web

from vigil_exporter import __version__
from vigil_exporter.alerting.receiver import WEBHOOK_PATH, WebhookLimits, setup_alert_receiver
from vigil_exporter.config import Config, ConfigError
from vigil_exporter.exposition import RENDER_SWITCH_INTERVAL, accepts_gzip
from vigil_exporter.health import UNHEALTHY, health_document, info_document
from vigil_exporter.scheduler import Scheduler
from vigil_exporter.usage.endpoint import setup_usage_endpoint
from vigil_exporter.webconfig import BasicAuth, WebConfig
from vigil_exporter.webconfig import middleware as web_config_middleware
from vigil_exporter.wiring import Wiring, build

WIRING = web.AppKey("wiring", Wiring)
log = logging.getLogger("vigil")

OPEN_PATHS = ("/health/live",)  # reachable without credentials, for container healthchecks


def make_app(config: Config, web_config: WebConfig | None = None) -> web.Application:
    web_config = web_config or WebConfig()
    alerts = config["alerts"]
    webhook_auth = webhook_authorizer(alerts, config.source)
    own_auth = (WEBHOOK_PATH,) if webhook_auth else ()
    guard = web_config_middleware(web_config, OPEN_PATHS, own_auth) if (
        web_config.users or web_config.headers or web_config.rate_limit
        or web_config.allowed_sans) else None
    app = web.Application(client_max_size=config["web"]["max_request_body_bytes"],
                          middlewares=[guard] if guard else [])
    wiring = app[WIRING] = build(config)
    setup_alert_receiver(app, alerts["log_file"], wiring.alert_notifications,
                         limits=WebhookLimits.from_config(alerts), authorize=webhook_auth,
                         on_update=wiring.exposition.mark_dirty)
    setup_usage_endpoint(app, config["usage"])
    for warning in web_config.warnings:
        log.warning("web config: %s", warning)
    if not webhook_auth and not web_config.users:
        log.info("POST %s takes alerts from anyone who can reach the exporter: set "
                 "alerts.bearer_token_file or alerts.basic_auth_users (docs/security.md)",
                 WEBHOOK_PATH)
    app.cleanup_ctx.append(_run_scheduler)
    for auth in (getattr(guard, "auth", None), getattr(webhook_auth, "auth", None)):
        if auth is not None:
            app.on_shutdown.append(lambda _app, auth=auth: _close(auth))
    app.router.add_get("/", landing)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/info", info)
    return app


async def _close(auth: BasicAuth) -> None:
    auth.close()


def webhook_authorizer(alerts: dict, source: str):
    """The webhook's own credentials check (`alerts.bearer_token_file`, `alerts.basic_auth_users`),
    or None when it has none."""
    token = _read_token(alerts["bearer_token_file"], source) if alerts["bearer_token_file"] else None
    users = {name: hashed.encode() for name, hashed in alerts["basic_auth_users"].items()}
    if token is None and not users:
        return None
    auth = BasicAuth(users) if users else None

    async def authorize(request: web.Request) -> bool | None:
        header = request.headers.get("Authorization", "")
        if token is not None and header[:7].lower() == "bearer ":
            return hmac.compare_digest(header[7:].strip().encode(), token)
        return await auth.allowed(header) if auth else False

    authorize.auth = auth
    return authorize


def _read_token(path: str, source: str) -> bytes:
    """The token of `path`, relative to the configuration file's folder (as web.config_file)."""
    key = "alerts.bearer_token_file"
    if source != "defaults":
        path = str(Path(source).parent / path)
    try:
        token = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(source, [f"{key}: cannot read {path}: {exc.strerror}"]) from None
    if len(token) < 16:
        raise ConfigError(source, [f"{key}: {path}: expected a token of 16 characters or more"])
    return token


async def _run_scheduler(app: web.Application) -> AsyncIterator[None]:
    scheduler = app[WIRING].scheduler
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(RENDER_SWITCH_INTERVAL)  # renders run in a thread (exposition.py)
    scheduler.start()
    freeze = asyncio.create_task(freeze_after_first_round(scheduler))
    yield
    freeze.cancel()
    await scheduler.stop()
    sys.setswitchinterval(switch_interval)


async def freeze_after_first_round(scheduler: Scheduler) -> None:
    """Keep what exists after the first round out of the cyclic garbage collector.

    Modules, engines and pools live as long as the process. A full collection walked all
    ~100,000 of those objects and held the event loop for about 55 ms, which any scrape arriving
    then had to wait out (docs/performance.md). Once they are frozen, a full collection takes
    under a millisecond."""
    await scheduler.first_round_done.wait()
    gc.collect()
    gc.freeze()


async def metrics(request: web.Request) -> web.Response:
    rendered = await request.app[WIRING].exposition.choose(request.headers.get("Accept", ""))
    if accepts_gzip(request.headers.get("Accept-Encoding", "")):
        return web.Response(body=rendered.gzipped, headers=rendered.gzip_headers)
    return web.Response(body=ChunksPayload(rendered.chunks, rendered.size),
                        headers=rendered.headers)


class ChunksPayload(payload.Payload):
    """A body sent from the chunks the exposition keeps (one per family), never joined whole:
    joining 10.8 MB (10,000 tenants) for a client without gzip held the event loop for
    milliseconds, and aiohttp copies a bytes body once more to put its headers in front. Small
    chunks are joined into writes of WRITE_SIZE: a write per family was a system call per
    family, which made a plain scrape of a few hundred lines cost four times as much CPU."""

    WRITE_SIZE = 64 * 1024  # aiohttp's writer waits for the socket once this much is pending

    def __init__(self, chunks: list[bytes], size: int):
        super().__init__(chunks, content_type=None)
        self._size = size

    async def write(self, writer) -> None:
        batch, pending = [], 0
        for chunk in self._value:
            batch.append(chunk)
            pending += len(chunk)
            if pending >= self.WRITE_SIZE:
                await writer.write(b"".join(batch))
                batch, pending = [], 0
        if batch:
            await writer.write(b"".join(batch))

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self._value).decode(encoding, errors)


async def health(request: web.Request) -> web.Response:
    wiring = request.app[WIRING]
    document = health_document(wiring.scheduler, wiring.disabled)
    return web.json_response(document, status=503 if document["status"] == UNHEALTHY else 200,
                             dumps=_dumps)


async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def ready(request: web.Request) -> web.Response:
    wiring = request.app[WIRING]
    if wiring.scheduler.first_round_done.is_set():
        await wiring.exposition.flush_once()  # "ready" means the first round is in /metrics
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "starting", "message": "first collection round running"},
                             status=503)


async def info(request: web.Request) -> web.Response:
    return web.json_response(info_document(request.app[WIRING].scheduler.started_at), dumps=_dumps)


LANDING = """<!doctype html>
<html><head><meta charset="utf-8"><title>Vigil exporter</title></head>
<body><h1>Vigil exporter {version}</h1>
<p>Prometheus exporter for the application stack: system, database, Redis and business metrics.</p>
<ul>
<li><a href="metrics">/metrics</a>: the exposition Prometheus scrapes</li>
<li><a href="health">/health</a>: checks of every collector and dependency</li>
<li><a href="health/live">/health/live</a> and <a href="health/ready">/health/ready</a></li>
<li><a href="info">/info</a>: version, uptime and host resources</li>
</ul>
<p>Collectors: {collectors}</p></body></html>
"""


async def landing(request: web.Request) -> web.Response:
    names = ", ".join(c.name for c in request.app[WIRING].collectors) or "none"
    body = LANDING.format(version=html.escape(__version__), collectors=html.escape(names))
    return web.Response(text=body, content_type="text/html")


def _dumps(document) -> str:
    return json.dumps(document, indent=2)
