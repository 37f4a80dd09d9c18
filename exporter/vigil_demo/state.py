"""What the handlers read from the application: typed keys, one `Services` object."""
from __future__ import annotations

import random
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from vigil_instrument import Metrics

from .agents import AgentRuntime
from .auth import Authenticator, Principal
from .cache import Cache
from .chat import Chat
from .inbox import Inbox
from .quotas import Quotas
from .settings import Settings
from .storage import Store


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    store: Store
    quotas: Quotas
    cache: Cache
    inbox: Inbox
    auth: Authenticator
    agents: AgentRuntime
    chat: Chat
    redis: object | None        # redis.asyncio.Redis, when configured
    faults: random.Random       # draws of the simulated failures and slow requests
    # Share of /api requests answered 500 on purpose (PUT /admin/faults): to watch an SLO burn.
    injected_error_ratio: float = 0.0


SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
ENGINE = web.AppKey("engine", AsyncEngine)
REDIS = web.AppKey("redis", object)
SERVICES = web.AppKey("services", Services)

# Request key of the authenticated Principal (None: no credentials); RequestKey since aiohttp 3.12.
PRINCIPAL = (web.RequestKey("principal", Principal) if hasattr(web, "RequestKey")
             else "vigil.principal")


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def principal(request: web.Request) -> Principal:
    """The caller, or 401 for a request without credentials."""
    found = request.get(PRINCIPAL)
    if found is None:
        services(request).auth.failed("missing_credentials")
        raise web.HTTPUnauthorized(text='{"error": "missing_credentials"}',
                                   content_type="application/json")
    return found
