"""The demo's own middlewares, inside the instrumentation middleware (which `make_app` puts
first), in this order: authentication, API calls as business rows, errors as JSON.

API calls are the requests made with an API key (programmatic use of the platform, what a plan's
`max_api_calls_per_day` limits); requests of logged-in users with a session token are not. Each
one is checked against the plan and written to `api_calls` with its route template and status.
"""
from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from vigil_exporter.logs import describe_error

from .agents import AllToolsFailed
from .auth import AuthFailure
from .llm import LLMError
from .quotas import LimitReached
from .state import PRINCIPAL, services

log = logging.getLogger("vigil.demo")


class SimulatedFault(Exception):
    """An internal error the demo makes on purpose, now and then."""


def _error(status: int, error: str, **extra) -> web.Response:
    return web.json_response({"error": error, **extra}, status=status)


@web.middleware
async def errors(request: web.Request, handler):
    """Known failures become JSON answers: plan limits 429, model and tool failures 502,
    a database or Redis out of reach 503, agent timeouts 504, anything else 500. A share of the
    /api requests fails on purpose while errors are injected (PUT /admin/faults)."""
    try:
        s = services(request)
        if (s.injected_error_ratio and request.path.startswith("/api/")
                and s.faults.random() < s.injected_error_ratio):
            raise SimulatedFault("injected error")
        return await handler(request)
    except web.HTTPException:
        raise
    except LimitReached as exc:
        return _error(429, "plan_limit_reached", limit=exc.limit)
    except (LLMError, AllToolsFailed) as exc:
        log.info("upstream failure: %s", describe_error(exc))
        return _error(502, "upstream_failure", type=type(exc).__name__)
    except asyncio.TimeoutError:
        return _error(504, "timeout")
    except ConnectionResetError:
        raise  # the client went away (e.g. the traffic generator stopping): nobody to answer
    except SimulatedFault as exc:
        log.warning("simulated fault: %s", exc)
        return _error(500, "internal_error")
    except (RedisError, OperationalError, InterfaceError, PoolTimeout, OSError) as exc:
        log.warning("dependency failure: %s", describe_error(exc))
        return _error(503, "unavailable")
    except Exception:
        log.exception("unhandled error")
        return _error(500, "internal_error")


@web.middleware
async def authenticate(request: web.Request, handler):
    """Credentials of /api requests (Authorization: Bearer, or X-API-Key) to request[PRINCIPAL];
    invalid credentials are answered 401 here."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        request[PRINCIPAL] = await services(request).auth.authenticate(
            request.headers.get("Authorization"), request.headers.get("X-API-Key"))
    except AuthFailure as failure:
        return _error(401, failure.reason)
    return await handler(request)


@web.middleware
async def api_calls(request: web.Request, handler):
    """Check an API-key request against the plan, run it, and log it as an API call."""
    caller = request.get(PRINCIPAL)
    if caller is None or caller.auth_type != "api_key":
        return await handler(request)
    s = services(request)
    try:
        s.quotas.take(caller.tenant_id, "api_calls")
    except LimitReached as exc:
        return _error(429, "plan_limit_reached", limit=exc.limit)  # refused: not an API call
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        endpoint = resource.canonical if resource is not None else "unmatched"
        s.store.log_api_call(caller.tenant_id, endpoint, status)


async def read_json(request: web.Request, *required: str) -> dict:
    """The JSON object of the body with the `required` keys, or 400."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "expected a JSON object"}',
                                 content_type="application/json")
    missing = [key for key in required if key not in body]
    if missing:
        raise web.HTTPBadRequest(text=json.dumps({"error": "missing fields", "fields": missing}),
                                 content_type="application/json")
    return body


def int_param(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound(text='{"error": "not_found"}',
                               content_type="application/json") from None


def int_field(body: dict, name: str) -> int:
    """An integer field of a JSON body, or 400."""
    try:
        return int(body[name])
    except (TypeError, ValueError):
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{name} must be an integer"}),
                                 content_type="application/json") from None
