"""Series that exist before any traffic: zero-valued children of every label combination the
demo can produce (agents, tools, models, caches, auth outcomes, error types), so that rules,
panels and ratios see their families from the first scrape, e.g. `status="error"` at 0."""
from __future__ import annotations

from vigil_instrument import Metrics
from vigil_instrument.context import NONE

from .agents import AGENTS, EDGES, MESSAGE_TYPES, TOOLS
from .auth import AUTH_TYPES, FAILURE_REASONS, LOGIN_PROVIDER, REFRESH_PROVIDER
from .cache import CACHES
from .inbox import QUEUE
from .llm import ERROR_TYPES, MODELS

STATUSES = ("success", "error")
OUTCOMES = ("success", "failure")
AGENT_ERRORS = tuple(e.__name__ for e in ERROR_TYPES) + ("AllToolsFailed",)


def prime(m: Metrics) -> None:
    for agent in AGENTS:
        m.agents_running.labels(agent)
        m.agent_duration.labels(agent)
        for status in STATUSES:
            m.agent_executions.labels(agent, status)
        for error_type in AGENT_ERRORS:
            m.agent_errors.labels(agent, error_type)
    for source, target, message_type in EDGES:
        m.agent_messages.labels(source, target, message_type)
        m.agent_message_size.labels(source, target, message_type)
        m.agent_message_retries.labels(source, target, message_type)
        m.agent_message_context.labels(source, target)
        for error_type in AGENT_ERRORS:
            m.agent_message_errors.labels(source, target, error_type)
    for message_type in MESSAGE_TYPES:
        m.agent_message_duration.labels(message_type)
    for tool in TOOLS:
        m.tool_duration.labels(tool)
        for status in STATUSES:
            m.tool_executions.labels(tool, status)
    for model in MODELS.values():  # tenant and agent "none": calls made outside both
        m.llm_duration.labels(model.provider, model.name)
        m.llm_time_to_first_token.labels(model.provider, model.name)
        m.llm_streaming_duration.labels(model.provider, model.name)
        m.llm_retries.labels(model.provider, model.name)
        for error_class in ("rate_limit", "timeout", "server"):
            m.llm_errors.labels(model.provider, model.name, error_class)
        m.llm_cost.labels(model.provider, model.name, NONE, NONE)
        for status in STATUSES:
            m.llm_requests.labels(model.provider, model.name, status, NONE, NONE)
        for kind in ("prompt", "cached", "completion"):
            m.llm_tokens.labels(model.provider, model.name, kind, NONE, NONE)
    for cache in CACHES:
        m.cache_hits.labels(cache)
        m.cache_misses.labels(cache)
    for outcome in OUTCOMES:
        m.auth_logins.labels(LOGIN_PROVIDER, outcome)
        m.auth_token_refreshes.labels(REFRESH_PROVIDER, outcome)
    for reason in FAILURE_REASONS:
        m.auth_failed_attempts.labels(reason)
    for auth_type in AUTH_TYPES:
        m.auth_requests.labels(auth_type)
    for direction in ("in", "out"):
        m.websocket_messages.labels(direction)
    m.queue_depth.labels(QUEUE).set(0)
