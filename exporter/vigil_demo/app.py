"""The demo service's application factory.

    app = make_app(Settings(database_url="sqlite:///vigil.db", redis_url=None))

Resources with a lifetime are `cleanup_ctx` generators, set up in order and torn down in
reverse: the database (schema and demo tenants created if missing, an instrumented async
engine), the Redis client (instrumented; absent without a URL), then the service objects with
their background tasks (inbox workers, API-call flushes, quota refreshes).
"""
from __future__ import annotations

import asyncio
import logging
import random

import redis.asyncio
from aiohttp import web

from vigil_exporter.collectors.sqlutil import dispose, make_engine
from vigil_exporter.logs import FailureLog, describe_error, redact_url
from vigil_instrument import (
    Metrics,
    default_metrics,
    instrument_aiohttp,
    instrument_engine,
    instrument_redis,
)

from .agents import AgentRuntime
from .auth import Authenticator
from .cache import MemoryCache, RedisCache
from .chat import Chat
from .inbox import MemoryInbox, RedisInbox, work
from .llm import FakeLLM
from .middlewares import api_calls, authenticate, errors
from .quotas import Quotas
from .routes import setup_routes
from .series import prime
from .settings import Settings
from .state import ENGINE, METRICS, REDIS, SERVICES, SETTINGS, Services
from .storage import Store, prepare_database

log = logging.getLogger("vigil.demo")

APPLICATION_NAME = "vigil-demo"
# Not timed as HTTP requests: scrapes, probes, and WebSockets (a connection lasts minutes).
EXCLUDE_PATHS = ("/metrics", "/health*", "/ws")
INBOX_WORKERS = 2
HOUSEKEEPING_SECONDS = 1.0


def make_app(settings: Settings, metrics: Metrics | None = None) -> web.Application:
    """The demo service. `metrics` defaults to the process-wide `default_metrics()`; tests pass
    their own `Metrics(CollectorRegistry())`."""
    metrics = metrics or default_metrics()
    prime(metrics)
    app = web.Application(middlewares=[authenticate, api_calls, errors])
    instrument_aiohttp(app, metrics, exclude_paths=EXCLUDE_PATHS)
    app[SETTINGS] = settings
    app[METRICS] = metrics
    setup_routes(app)
    app.cleanup_ctx.extend([database, redis_client, service_objects])
    return app


async def database(app: web.Application):
    settings = app[SETTINGS]
    created, loaded = await asyncio.to_thread(prepare_database, settings.database_url,
                                              settings.seed)
    if created:
        log.info("created the business schema", extra={"fields": {"tables": created}})
    if loaded:
        log.info("loaded the demo tenants", extra={"fields": {"seed": settings.seed}})
    engine = make_engine(settings.database_url, pool_size=settings.pool_size,
                         max_overflow=settings.max_overflow, connect_timeout=5,
                         application_name=APPLICATION_NAME)
    instrument_engine(engine, settings.pool_name, metrics=app[METRICS])
    app[ENGINE] = engine
    log.info("database ready", extra={"fields": {"url": redact_url(settings.database_url)}})
    yield
    await dispose(engine)


async def redis_client(app: web.Application):
    settings = app[SETTINGS]
    if not settings.redis_url:
        app[REDIS] = None
        yield
        return
    client = redis.asyncio.Redis.from_url(settings.redis_url, socket_timeout=3,
                                          socket_connect_timeout=2, health_check_interval=30)
    instrument_redis(client, settings.redis_client_name, metrics=app[METRICS])
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001 - start anyway: the cache misses, the inbox retries
        log.warning("redis unreachable at start: %s", describe_error(exc),
                    extra={"fields": {"url": redact_url(settings.redis_url)}})
    app[REDIS] = client
    yield
    await client.aclose()


async def service_objects(app: web.Application):
    settings, metrics, client = app[SETTINGS], app[METRICS], app[REDIS]
    store = Store(app[ENGINE])
    quotas = Quotas(store)
    await quotas.refresh()
    cache = RedisCache(metrics, client) if client is not None else MemoryCache(metrics)
    inbox = RedisInbox(metrics, client) if client is not None else MemoryInbox(metrics)
    llm = FakeLLM(metrics, settings.seed, settings.latency_scale)
    agents = AgentRuntime(llm, metrics, settings.seed, settings.latency_scale)
    services = Services(
        settings=settings, metrics=metrics, store=store, quotas=quotas, cache=cache, inbox=inbox,
        auth=Authenticator(store, cache, metrics, settings.secret), agents=agents,
        chat=Chat(store, quotas, inbox, agents, settings.seed), redis=client,
        faults=random.Random(f"{settings.seed}:faults"))
    app[SERVICES] = services
    stop = asyncio.Event()
    tasks = [asyncio.create_task(work(inbox, services.chat.answer, stop), name=f"inbox-{i}")
             for i in range(INBOX_WORKERS)]
    tasks.append(asyncio.create_task(housekeeping(services, stop), name="housekeeping"))
    yield
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    try:
        await store.flush_api_calls()
    except Exception as exc:  # noqa: BLE001
        log.warning("could not write the last API calls: %s", describe_error(exc))


async def housekeeping(services: Services, stop: asyncio.Event) -> None:
    """Every second: write the buffered API calls, refresh plan usage when stale, measure the
    inbox."""
    failures = FailureLog(log)

    async def refresh_quotas() -> None:
        if services.quotas.stale():
            await services.quotas.refresh()

    steps = {"api call flush": services.store.flush_api_calls, "quota refresh": refresh_quotas,
             "inbox depth": services.inbox.measure}
    while not stop.is_set():
        for name, step in steps.items():
            try:
                await step()
                failures.recovered(name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep going: the database may come back
                failures.failed(name, describe_error(exc))
        try:
            await asyncio.wait_for(stop.wait(), HOUSEKEEPING_SECONDS)
        except asyncio.TimeoutError:
            pass
