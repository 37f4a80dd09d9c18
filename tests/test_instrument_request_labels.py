"""Per-request labels (tenant, auth type, client) on aiohttp and ASGI, through real requests."""
from __future__ import annotations

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry

from vigil_instrument import (
    Cardinality,
    Metrics,
    PrometheusMiddleware,
    RequestLabels,
    from_header,
    from_path_param,
    from_state,
    hash_id,
    instrument_aiohttp,
    track_llm,
)

# The demo keys of request storage are plain strings, as most aiohttp code still has them.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


def declared(**options):
    return RequestLabels(
        tenant=[from_header("X-Tenant-ID"), from_path_param("tenant"), from_state("tenant")],
        auth_type=from_state("auth_type"),
        client=from_header("X-Client-Name", hash=True),
        **options)


def samples(registry, name):
    """{label tuple: value} of the samples `name`."""
    return {tuple(sorted(s.labels.items())): s.value for family in registry.collect()
            for s in family.samples if s.name == name}


def total(registry, name, **labels):
    return sum(s.value for family in registry.collect() for s in family.samples
               if s.name == name and labels.items() <= s.labels.items())


async def llm_call(metrics):
    with track_llm("openai", "gpt-4o", metrics=metrics) as call:
        call.usage(prompt_tokens=10, completion_tokens=1)


# --- aiohttp ---------------------------------------------------------------------------------

@pytest.fixture
async def aiohttp_client_with_labels():
    registry = CollectorRegistry()
    metrics = Metrics(registry, request_labels=declared(max_values={"tenant": 3}))

    async def usage(request):
        request["auth_type"] = "api_key"
        await llm_call(metrics)
        return web.json_response({"tenant": request.match_info["tenant"]})

    async def state_tenant(request):
        request["tenant"] = "from-state"
        request["auth_type"] = "jwt"
        await llm_call(metrics)
        return web.Response(text="ok")

    app = web.Application()
    instrument_aiohttp(app, metrics)
    app.router.add_get("/tenants/{tenant}/usage", usage)
    app.router.add_get("/me", state_tenant)
    async with TestClient(TestServer(app)) as client:
        yield client, registry


async def test_aiohttp_labels_from_header_path_and_state(aiohttp_client_with_labels):
    client, registry = aiohttp_client_with_labels
    assert (await client.get("/tenants/acme/usage", headers={"X-Client-Name": "mobile"})).status == 200
    assert (await client.get("/tenants/acme/usage", headers={"X-Tenant-ID": "globex"})).status == 200
    assert (await client.get("/me")).status == 200
    assert (await client.get("/nowhere", headers={"X-Tenant-ID": "acme"})).status == 404

    counts = samples(registry, "http_requests_total")
    route = "/tenants/{tenant}/usage"
    mobile = hash_id("mobile")
    assert counts[(("auth_type", "api_key"), ("client", mobile), ("method", "GET"), ("route", route),
                   ("status", "200"), ("tenant", "acme"))] == 1
    assert counts[(("auth_type", "api_key"), ("client", "none"), ("method", "GET"), ("route", route),
                   ("status", "200"), ("tenant", "globex"))] == 1          # the header comes first
    assert counts[(("auth_type", "jwt"), ("client", "none"), ("method", "GET"), ("route", "/me"),
                   ("status", "200"), ("tenant", "from-state"))] == 1
    assert counts[(("auth_type", "none"), ("client", "none"), ("method", "GET"), ("route", "unmatched"),
                   ("status", "404"), ("tenant", "acme"))] == 1
    # Histograms keep their labels unless asked for.
    assert {labels for labels in samples(registry, "http_request_duration_seconds_count")} == {
        (("method", "GET"), ("route", route)), (("method", "GET"), ("route", "/me")),
        (("method", "GET"), ("route", "unmatched"))}
    # The LLM calls made while serving a request count under its tenant (known from the header
    # or path parameter before the handler runs; a tenant set in state is not known yet).
    assert total(registry, "llm_requests_total", tenant="acme") == 1
    assert total(registry, "llm_requests_total", tenant="globex") == 1
    assert total(registry, "llm_requests_total", tenant="none") == 1


async def test_aiohttp_tenant_cap_is_shared_with_llm(aiohttp_client_with_labels):
    client, registry = aiohttp_client_with_labels
    for n in range(8):
        assert (await client.get(f"/tenants/t{n}/usage")).status == 200
    tenants = {dict(labels)["tenant"] for labels in samples(registry, "http_requests_total")}
    assert tenants == {"t0", "t1", "t2", "other"}
    llm_tenants = {dict(labels)["tenant"] for labels in samples(registry, "llm_requests_total")}
    assert llm_tenants == {"t0", "t1", "t2", "other"}
    assert total(registry, "http_requests_total") == 8


# --- ASGI (FastAPI) --------------------------------------------------------------------------

def fastapi_app(metrics, **options) -> FastAPI:
    app = FastAPI()

    @app.get("/tenants/{tenant}/items/{item_id}")
    async def item(tenant: str, item_id: int, request: Request):
        request.state.auth_type = "jwt"
        await llm_call(metrics)
        return {"item": item_id}

    @app.get("/me")
    async def me(request: Request):
        request.state.tenant = "from-state"
        return {}

    app.add_middleware(PrometheusMiddleware, metrics=metrics, **options)
    return app


async def test_asgi_labels_from_header_path_and_state():
    registry = CollectorRegistry()
    metrics = Metrics(registry, request_labels=declared(histograms=True))
    transport = httpx.ASGITransport(app=fastapi_app(metrics))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/tenants/acme/items/1", headers={"X-Client-Name": "cli"})).status_code == 200
        assert (await client.get("/tenants/acme/items/2", headers={"x-tenant-id": "globex"})).status_code == 200
        assert (await client.get("/me")).status_code == 200

    route = "/tenants/{tenant}/items/{item_id}"
    counts = samples(registry, "http_requests_total")
    assert counts[(("auth_type", "jwt"), ("client", hash_id("cli")), ("method", "GET"), ("route", route),
                   ("status", "200"), ("tenant", "acme"))] == 1
    assert counts[(("auth_type", "jwt"), ("client", "none"), ("method", "GET"), ("route", route),
                   ("status", "200"), ("tenant", "globex"))] == 1
    assert counts[(("auth_type", "none"), ("client", "none"), ("method", "GET"), ("route", "/me"),
                   ("status", "200"), ("tenant", "from-state"))] == 1
    # histograms=True: the histograms carry them too
    assert total(registry, "http_request_duration_seconds_count", tenant="from-state", route="/me") == 1
    # Only a header is known before an ASGI app routes: the path parameter's tenant is not in
    # the LLM call's context.
    assert total(registry, "llm_requests_total", tenant="globex") == 1
    assert total(registry, "llm_requests_total", tenant="none") == 1


async def test_asgi_caps_hold_under_10000_tenants():
    registry = CollectorRegistry()
    metrics = Metrics(registry, cardinality=Cardinality(max_values={"tenant": 50}),
                      request_labels=RequestLabels(tenant=from_header("X-Tenant-ID")))

    async def bare(scope, receive, send):  # a minimal ASGI app: 10,000 requests stay fast
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = PrometheusMiddleware(bare, metrics=metrics)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    for n in range(10_000):
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": "/me", "raw_path": b"/me", "root_path": "", "query_string": b"",
                 "headers": [(b"x-tenant-id", f"tenant-{n}".encode())], "server": ("test", 80)}
        await app(scope, receive, send)
    tenants = {dict(labels)["tenant"] for labels in samples(registry, "http_requests_total")}
    assert len(tenants) == 51 and "other" in tenants
    assert total(registry, "http_requests_total") == 10_000


def test_declarations_are_checked():
    with pytest.raises(ValueError, match="route"):
        RequestLabels(route=from_header("X-Route"))
    with pytest.raises(TypeError, match="from_header"):
        RequestLabels(tenant="X-Tenant-ID")
    with pytest.raises(ValueError, match="at least one"):
        RequestLabels()
