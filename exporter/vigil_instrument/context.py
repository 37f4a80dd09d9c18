"""Who the current work is for: the tenant and the agent, carried in context variables.

The HTTP middlewares set the tenant of a request when per-request labels name one
(`RequestLabels`); `track_agent` sets the agent while it runs. `track_llm` reads both, so an LLM
call made by an agent while serving a tenant's request is counted under that tenant and agent
without passing them down:

    with tenant_scope("acme"):            # e.g. in a queue worker, where no request is running
        await planner(task)               # track_agent("planner") inside; track_llm inside that

Values are bounded where they are recorded (each label has a cap and an `other` overflow).
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from .cardinality import NONE  # the label value when no tenant / agent is known

__all__ = ["NONE", "agent_var", "current_agent", "current_tenant", "restore", "tenant_scope", "tenant_var"]


tenant_var: ContextVar[str | None] = ContextVar("vigil_tenant", default=None)
agent_var: ContextVar[str | None] = ContextVar("vigil_agent", default=None)


def current_tenant() -> str | None:
    return tenant_var.get()


def current_agent() -> str | None:
    return agent_var.get()


def restore(var: ContextVar, token) -> None:
    """Reset a context variable; a token made in another context (a generator or a WSGI body
    closed elsewhere) cannot be used there, so the value before is set instead."""
    try:
        var.reset(token)
    except ValueError:
        var.set(None if token.old_value is token.MISSING else token.old_value)


@contextmanager
def tenant_scope(tenant: str | None):
    """Count the LLM calls made inside the block under `tenant`."""
    token = tenant_var.set(None if tenant is None else str(tenant))
    try:
        yield
    finally:
        tenant_var.reset(token)
