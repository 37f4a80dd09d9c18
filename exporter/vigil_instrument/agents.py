"""Agents, agent-to-agent messages, tools and caches.

`track_agent`, `track_tool` and `track_message` are each both a decorator (for
sync and async functions) and a context manager (`with` and `async with`):

    @track_agent("planner", metrics=metrics)
    async def plan(task): ...

    with track_tool("web_search", metrics=metrics):
        results = search(query)

An exception marks the execution status="error" and propagates unchanged. `track_llm` is in
llm.py. While `track_agent` runs, the agent is the context's (`context.agent_var`): LLM calls
made inside are counted under it.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from time import perf_counter

from .context import agent_var, restore
from .metrics import Metrics, resolve

SUCCESS = "success"
ERROR = "error"


class _Tracked:
    """Timing shared by decorators and context managers. `_begin()` returns per-call state,
    `_end(state, exc, result)` records; nothing per-call lives on the instance when decorating,
    so a decorated function may run concurrently."""

    def _begin(self):
        return perf_counter()

    def _end(self, state, exc: BaseException | None, result=None) -> None:
        raise NotImplementedError

    def __enter__(self):
        self._state = self._begin()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._end(self._state, exc)
        return False

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        return self.__exit__(exc_type, exc, tb)

    def __call__(self, func: Callable) -> Callable:
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args, **kwargs):
                state = self._begin()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    self._end(state, exc)
                    raise
                self._end(state, None, result)
                return result
            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            state = self._begin()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._end(state, exc)
                raise
            self._end(state, None, result)
            return result
        return wrapper


class track_agent(_Tracked):
    """agent_executions_total{agent,status}, agent_execution_duration_seconds{agent},
    agent_errors_total{agent,error_type} (the exception's class name), agents_running{agent}."""

    def __init__(self, agent: str, *, metrics: Metrics | None = None):
        m = resolve(metrics)
        self._agent = agent
        self._m = m
        self._running = m.agents_running.labels(agent)
        self._duration = m.agent_duration.labels(agent)

    def _begin(self):
        self._running.inc()
        return perf_counter(), agent_var.set(self._agent)

    def _end(self, state, exc, result=None) -> None:
        started, token = state
        self._duration.observe(perf_counter() - started, self._m.current_exemplar())
        self._running.dec()
        restore(agent_var, token)
        status = SUCCESS if exc is None else ERROR
        self._m.agent_executions.labels(self._agent, status).inc()
        if exc is not None:
            self._m.agent_errors.labels(self._agent, type(exc).__name__).inc()


class track_tool(_Tracked):
    """tool_executions_total{tool,status}, tool_execution_duration_seconds{tool}."""

    def __init__(self, tool: str, *, metrics: Metrics | None = None):
        m = resolve(metrics)
        self._tool = tool
        self._m = m
        self._duration = m.tool_duration.labels(tool)

    def _end(self, started, exc, result=None) -> None:
        self._duration.observe(perf_counter() - started, self._m.current_exemplar())
        self._m.tool_executions.labels(self._tool, SUCCESS if exc is None else ERROR).inc()


class track_message(_Tracked):
    """agent_message_processing_duration_seconds{message_type}: time to handle one message."""

    def __init__(self, message_type: str, *, metrics: Metrics | None = None):
        self._m = resolve(metrics)
        self._duration = self._m.agent_message_duration.labels(message_type)

    def _end(self, started, exc, result=None) -> None:
        self._duration.observe(perf_counter() - started, self._m.current_exemplar())


def record_agent_message(source_agent: str, target_agent: str, message_type: str,
                         size_bytes: int | None = None, *, metrics: Metrics | None = None) -> None:
    """agent_messages_total and agent_message_size_bytes for one message sent."""
    m = resolve(metrics)
    m.agent_messages.labels(source_agent, target_agent, message_type).inc()
    if size_bytes is not None:
        m.agent_message_size.labels(source_agent, target_agent, message_type).observe(size_bytes)


def record_cache(cache: str, hit: bool, *, metrics: Metrics | None = None) -> None:
    m = resolve(metrics)
    (m.cache_hits if hit else m.cache_misses).labels(cache).inc()
