"""Prometheus instrumentation for Python services: HTTP (aiohttp, ASGI, WSGI: Flask, Django), agents, tools, LLM
calls, caches, auth, WebSockets, queues, SQLAlchemy pools and queries, Redis clients.

    import vigil_instrument as instrument
    metrics = instrument.Metrics()                 # every family, on the default registry
    instrument.instrument_aiohttp(app, metrics)
    app.router.add_get("/metrics", instrument.aiohttp_metrics_handler())

See docs/instrumentation.md. Framework-specific parts are imported on first use, so a FastAPI
service does not import aiohttp and the other way round.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"  # released together with vigil-exporter: the same version

from .agents import record_agent_message, record_cache, track_agent, track_message, track_tool
from .auth import (
    record_api_key_created,
    record_api_key_revoked,
    record_auth_request,
    record_failed_attempt,
    record_login,
    record_token_refresh,
)
from .cardinality import Cardinality, LabelLimiter, hash_id
from .connections import record_websocket_message, set_queue_depth, track_websocket
from .context import current_agent, current_tenant, tenant_scope
from .llm import LLMCall, Price, PriceTable, openai_usage, track_llm
from .llm_usage import TokenUsage, error_class, read_usage
from .logging import configure_logging, current_request_id, request_id_var
from .metrics import DuplicateMetricsError, Metrics, default_metrics
from .request_labels import RequestLabels, from_header, from_path_param, from_state

_LAZY = {
    "aiohttp_middleware": "http_aiohttp",
    "instrument_aiohttp": "http_aiohttp",
    "PrometheusMiddleware": "asgi",
    "WSGIMiddleware": "wsgi",
    "instrument_flask": "flask",
    "instrument_django": "django",
    "instrument_engine": "sqlalchemy",
    "statement_type": "sqlalchemy",
    "instrument_redis": "redis",
    "aiohttp_metrics_handler": "exposition",
    "asgi_metrics_app": "exposition",
    "wsgi_metrics_app": "exposition",
    "exposition_registry": "exposition",
    "mark_process_dead": "exposition",
    "record_request": "manual",
    "custom_counter": "custom",
    "custom_gauge": "custom",
    "custom_histogram": "custom",
    "set_app_info": "custom",
    "instrument_starlette": "asgi",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = [
    "Cardinality", "DuplicateMetricsError", "LLMCall", "LabelLimiter", "Metrics", "Price", "PriceTable",
    "RequestLabels", "TokenUsage", "error_class", "from_header", "from_path_param", "from_state", "read_usage",
    "configure_logging", "current_agent", "current_request_id", "current_tenant", "default_metrics",
    "hash_id", "openai_usage", "record_agent_message", "record_api_key_created", "record_api_key_revoked",
    "record_auth_request", "record_cache", "record_failed_attempt", "record_login",
    "record_token_refresh", "record_websocket_message", "request_id_var", "set_queue_depth",
    "tenant_scope", "track_agent", "track_llm", "track_message", "track_tool", "track_websocket", *_LAZY,
]
