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

from .context import NONE, agent_var, restore
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
                with _Call(self) as call:
                    return call.returned(await func(*args, **kwargs))
            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with _Call(self) as call:
                return call.returned(func(*args, **kwargs))
        return wrapper


class _Call:
    """One call of a decorated function: `_begin()` on entry, `_end()` on exit with the
    exception it raised or the result it returned, the same for sync and async functions."""

    __slots__ = ("tracked", "state", "result")

    def __init__(self, tracked: _Tracked):
        self.tracked = tracked
        self.result = None

    def __enter__(self) -> _Call:
        self.state = self.tracked._begin()
        return self

    def returned(self, result):
        self.result = result
        return result

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.tracked._end(self.state, exc, self.result)
        return False


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
    """agent_message_processing_duration_seconds{message_type}: time to handle one message; a
    failure counts in agent_message_errors_total{source_agent,target_agent,error_type} (the
    target defaults to the agent running, the source to "none")."""

    def __init__(self, message_type: str, *, source_agent: str | None = None, target_agent: str | None = None,
                 metrics: Metrics | None = None):
        self._m = resolve(metrics)
        self._duration = self._m.agent_message_duration.labels(message_type)
        self._source, self._target = source_agent, target_agent

    def _end(self, started, exc, result=None) -> None:
        self._duration.observe(perf_counter() - started, self._m.current_exemplar())
        if exc is not None:
            target = self._target or agent_var.get() or NONE
            self._m.agent_message_errors.labels(self._source or NONE, target, type(exc).__name__).inc()


def record_agent_message(source_agent: str, target_agent: str, message_type: str,
                         size_bytes: int | None = None, *, context_tokens: int | None = None, retries: int = 0,
                         error: BaseException | str | None = None, metrics: Metrics | None = None) -> None:
    """One message sent from an agent to another: agent_messages_total, its size, the context
    it carried (tokens), the retries it took to deliver, and a delivery failure's type."""
    m = resolve(metrics)
    m.agent_messages.labels(source_agent, target_agent, message_type).inc()
    if size_bytes is not None:
        m.agent_message_size.labels(source_agent, target_agent, message_type).observe(size_bytes)
    if context_tokens is not None:
        m.agent_message_context.labels(source_agent, target_agent).observe(context_tokens)
    if retries:
        m.agent_message_retries.labels(source_agent, target_agent, message_type).inc(retries)
    if error is not None:
        error_type = error if isinstance(error, str) else type(error).__name__
        m.agent_message_errors.labels(source_agent, target_agent, error_type).inc()


def record_cache(cache: str, hit: bool, *, metrics: Metrics | None = None) -> None:
    m = resolve(metrics)
    (m.cache_hits if hit else m.cache_misses).labels(cache).inc()
