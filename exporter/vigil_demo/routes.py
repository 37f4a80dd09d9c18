"""The demo's HTTP API. Handlers are short: they read the request, call the service objects
(`state.Services`) and answer JSON; failures map to statuses in `middlewares.errors`.

    POST   /api/login                      {email, password} -> tokens (every password: "demo")
    POST   /api/token/refresh              {refresh_token} -> new access token
    POST   /api/logout                     ends the session of the access token
    POST   /api/signup                     {tenant, email} -> a new tenant on the free plan
    POST   /api/users                      {email} -> a new user of the caller's tenant
    POST   /api/keys                       -> a new API key (X-API-Key) of the caller
    DELETE /api/keys/{key_id}              revoke one
    POST   /api/agents                     {name} -> a new agent of the tenant
    POST   /api/agents/{agent}/run         {task, channel_id?}: planner|researcher|writer|responder
    POST   /api/channels                   {name} -> a new channel of the tenant
    POST   /api/channels/{channel_id}/messages  {text} -> queued for the responder agent
    POST   /api/documents                  {name, size_bytes} -> stored (counts against storage)
    GET    /api/items/{item_id}            a document's metadata, through the "items" cache
    GET    /api/tenants/{tenant}/usage     usage against every plan limit
    GET    /api/directory                  tenants, users, channels, items (for traffic generators)
    GET    /ws                             WebSocket echo
    GET    /health, /health/live, /metrics
    GET|PUT /admin/faults                  {error_ratio}: share of /api requests answered 500
"""
from __future__ import annotations

import asyncio
import json
import time
import weakref

from aiohttp import WSMsgType, web
from sqlalchemy.exc import IntegrityError

from vigil_exporter.logs import describe_error
from vigil_instrument import aiohttp_metrics_handler, record_websocket_message, tenant_scope, track_websocket

from .auth import AuthFailure
from .middlewares import SimulatedFault, int_field, int_param, read_json
from .state import METRICS, principal, services
from .storage import LIMIT_COLUMNS, utcnow

RUNNABLE_AGENTS = ("planner", "researcher", "writer", "responder")
AGENT_TIMEOUT = 30.0
ITEM_CACHE_TTL = 120.0
ITEM_FAULT_RATE = 0.005       # simulated internal errors
ITEM_SLOW_RATE = 0.01         # simulated slow backend
SIGNUP_PLAN = ("free", {"max_agents": 5, "max_channels": 3, "max_messages_per_day": 200,
                        "max_api_calls_per_day": 300, "max_storage_bytes": 100 << 20,
                        "max_concurrent_connections": 5})
WEBSOCKETS = web.AppKey("websockets", weakref.WeakSet)


def _fail(error_class, error: str) -> web.HTTPException:
    """An HTTP error with a JSON body, to raise."""
    return error_class(text=json.dumps({"error": error}), content_type="application/json")


def _not_found() -> web.HTTPException:
    return _fail(web.HTTPNotFound, "not_found")


def _conflict() -> web.HTTPException:
    return _fail(web.HTTPConflict, "exists")


# ---- auth -------------------------------------------------------------------------------------

async def login(request: web.Request) -> web.Response:
    body = await read_json(request, "email", "password")
    try:
        tokens = await services(request).auth.login(str(body["email"]), str(body["password"]))
    except AuthFailure as failure:
        return web.json_response({"error": failure.reason}, status=401)
    return web.json_response(tokens)


async def refresh_token(request: web.Request) -> web.Response:
    body = await read_json(request, "refresh_token")
    try:
        return web.json_response(await services(request).auth.refresh(str(body["refresh_token"])))
    except AuthFailure as failure:
        return web.json_response({"error": failure.reason}, status=401)


async def logout(request: web.Request) -> web.Response:
    ended = await services(request).auth.logout(principal(request))
    return web.json_response({"ended": ended})


async def create_key(request: web.Request) -> web.Response:
    key = await services(request).auth.create_key(principal(request))
    return web.json_response(key, status=201)


async def revoke_key(request: web.Request) -> web.Response:
    key_id = int_param(request, "key_id")
    if not await services(request).auth.revoke_key(principal(request), key_id):
        raise _not_found()
    return web.json_response({"revoked": True})


# ---- tenants and users ------------------------------------------------------------------------

async def signup(request: web.Request) -> web.Response:
    body = await read_json(request, "tenant", "email")
    store = services(request).store
    plan, limits = SIGNUP_PLAN
    try:
        tenant_id = await store.add_tenant(str(body["tenant"])[:100], plan, limits)
        user_id = await store.add_user(tenant_id, str(body["email"])[:255])
    except IntegrityError:
        raise _conflict() from None
    await services(request).quotas.refresh()
    return web.json_response({"tenant_id": tenant_id, "user_id": user_id, "plan": plan}, status=201)


async def invite_user(request: web.Request) -> web.Response:
    caller = principal(request)
    body = await read_json(request, "email")
    try:
        user_id = await services(request).store.add_user(caller.tenant_id, str(body["email"])[:255])
    except IntegrityError:
        raise _conflict() from None
    return web.json_response({"id": user_id}, status=201)


async def tenant_usage(request: web.Request) -> web.Response:
    caller = principal(request)
    if request.match_info["tenant"] != caller.tenant:
        raise _fail(web.HTTPForbidden, "other_tenant")
    usage = services(request).quotas.report(caller.tenant_id)
    return web.json_response({"tenant": caller.tenant, "usage": usage, "limits": LIMIT_COLUMNS})


async def directory(request: web.Request) -> web.Response:
    s = services(request)
    tenants = await s.store.directory()
    for tenant in tenants:
        tenant["usage"] = s.quotas.report(tenant["id"])
    return web.json_response({"tenants": tenants})


# ---- agents, channels, messages ---------------------------------------------------------------

async def create_agent(request: web.Request) -> web.Response:
    return await _create_named(request, "agents", services(request).store.add_agent)


async def run_agent(request: web.Request) -> web.Response:
    caller = principal(request)
    agent = request.match_info["agent"]
    if agent not in RUNNABLE_AGENTS:
        raise _not_found()
    body = await read_json(request, "task")
    s = services(request)
    channel_id = int_field(body, "channel_id") if body.get("channel_id") is not None else None
    if channel_id is not None and not await s.store.channel_exists(caller.tenant_id, channel_id):
        raise _not_found()
    with tenant_scope(caller.tenant):  # its LLM calls count under the caller's tenant
        result = await asyncio.wait_for(s.agents.run(agent, str(body["task"])), AGENT_TIMEOUT)
    if channel_id is not None:  # the answer is posted to the channel
        s.quotas.take(caller.tenant_id, "messages")
        await s.store.add_message(caller.tenant_id, channel_id, "out", len(result.text.encode()))
    return web.json_response({"agent": agent, "steps": result.steps, "text": result.text[:500]})


async def create_channel(request: web.Request) -> web.Response:
    return await _create_named(request, "channels", services(request).store.add_channel)


async def _create_named(request: web.Request, quota: str, add) -> web.Response:
    """Create an agent or a channel from {"name": ...}, within the tenant's quota."""
    caller = principal(request)
    body = await read_json(request, "name")
    services(request).quotas.take(caller.tenant_id, quota)
    new_id = await add(caller.tenant_id, str(body["name"])[:100])
    return web.json_response({"id": new_id}, status=201)


async def post_message(request: web.Request) -> web.Response:
    caller = principal(request)
    body = await read_json(request, "text")
    channel_id = int_param(request, "channel_id")
    message_id = await services(request).chat.post(caller.tenant_id, channel_id, str(body["text"])[:10_000],
                                                   tenant=caller.tenant)
    if message_id is None:
        raise _not_found()
    return web.json_response({"id": message_id, "status": "queued"}, status=202)


# ---- documents and the item cache -------------------------------------------------------------

async def upload_document(request: web.Request) -> web.Response:
    caller = principal(request)
    body = await read_json(request, "name", "size_bytes")
    size = int_field(body, "size_bytes")
    if size <= 0:
        raise _fail(web.HTTPBadRequest, "size_bytes must be positive")
    s = services(request)
    s.quotas.take(caller.tenant_id, "storage_bytes", size)
    document_id = await s.store.add_document(caller.tenant_id, str(body["name"])[:255], size)
    return web.json_response({"id": document_id}, status=201)


async def get_item(request: web.Request) -> web.Response:
    caller = principal(request)
    item_id = int_param(request, "item_id")
    s = services(request)
    if s.faults.random() < ITEM_FAULT_RATE:
        raise SimulatedFault("item backend failed")
    if s.faults.random() < ITEM_SLOW_RATE:
        await asyncio.sleep(s.faults.uniform(0.5, 2.0) * s.settings.latency_scale)

    async def load():
        return await s.store.document(caller.tenant_id, item_id)

    item = await s.cache.lookup("items", f"{caller.tenant_id}:{item_id}", load, ITEM_CACHE_TTL)
    if item is None:
        raise _not_found()
    return web.json_response(item)


# ---- fault injection ----------------------------------------------------------------------------

async def faults(request: web.Request) -> web.Response:
    """Read or set the share of /api requests answered 500 on purpose (0 to 1)."""
    s = services(request)
    if request.method == "PUT":
        body = await read_json(request, "error_ratio")
        ratio = body["error_ratio"]
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
            raise _fail(web.HTTPBadRequest, "error_ratio must be a number from 0 to 1")
        s.injected_error_ratio = float(ratio)
    return web.json_response({"error_ratio": s.injected_error_ratio})


# ---- WebSocket, health, metrics ---------------------------------------------------------------

async def websocket(request: web.Request) -> web.WebSocketResponse:
    metrics = request.app[METRICS]
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    request.app[WEBSOCKETS].add(ws)
    with track_websocket(metrics=metrics):
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            record_websocket_message("in", metrics=metrics)
            await ws.send_str(json.dumps({"echo": message.data[:200], "at": time.time()}))
            record_websocket_message("out", metrics=metrics)
    return ws


async def close_websockets(app: web.Application) -> None:
    """on_shutdown: close open WebSockets so that stopping does not wait for their clients."""
    await asyncio.gather(*(ws.close(code=1001, message=b"shutting down")
                           for ws in list(app[WEBSOCKETS])), return_exceptions=True)


async def health(request: web.Request) -> web.Response:
    s = services(request)
    checks = {"database": _check(s.store.ping())}
    if s.redis is not None:
        checks["redis"] = _check(s.redis.ping())
    results = dict(zip(checks, await asyncio.gather(*checks.values())))
    ok = results["database"]["status"] == "up"  # Redis down: degraded (cache misses), not down
    return web.json_response({"status": "healthy" if ok else "unhealthy",
                              "time": utcnow().isoformat(), "checks": results},
                             status=200 if ok else 503)


async def _check(probe) -> dict:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe, 2.0)
    except Exception as exc:  # noqa: BLE001 - any failure is "down"
        return {"status": "down", "error": describe_error(exc)}
    return {"status": "up", "latency_seconds": round(time.perf_counter() - started, 6)}


async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


def setup_routes(app: web.Application) -> None:
    app[WEBSOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(close_websockets)
    r = app.router
    r.add_post("/api/login", login)
    r.add_post("/api/token/refresh", refresh_token)
    r.add_post("/api/logout", logout)
    r.add_post("/api/signup", signup)
    r.add_post("/api/users", invite_user)
    r.add_post("/api/keys", create_key)
    r.add_delete("/api/keys/{key_id}", revoke_key)
    r.add_post("/api/agents", create_agent)
    r.add_post("/api/agents/{agent}/run", run_agent)
    r.add_post("/api/channels", create_channel)
    r.add_post("/api/channels/{channel_id}/messages", post_message)
    r.add_post("/api/documents", upload_document)
    r.add_get("/api/items/{item_id}", get_item)
    r.add_get("/api/tenants/{tenant}/usage", tenant_usage)
    r.add_get("/api/directory", directory)
    r.add_get("/ws", websocket)
    r.add_get("/admin/faults", faults)
    r.add_put("/admin/faults", faults)
    r.add_get("/health", health)
    r.add_get("/health/live", live)
    r.add_get("/metrics", aiohttp_metrics_handler(app[METRICS].registry))
