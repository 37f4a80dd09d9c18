"""Agents, agent-to-agent messages, tools, LLM calls and caches.

`track_agent`, `track_tool`, `track_message` and `track_llm` are each both a decorator (for
sync and async functions) and a context manager (`with` and `async with`):

    @track_agent("planner", metrics=metrics)
    async def plan(task): ...

    with track_tool("web_search", metrics=metrics):
        results = search(query)

    async with track_llm("openai", "gpt-4o", prices=PRICES, metrics=metrics) as call:
        reply = await client.chat(...)
        call.usage(prompt_tokens=reply.usage.prompt_tokens,
                   completion_tokens=reply.usage.completion_tokens)

An exception marks the execution status="error" and propagates unchanged.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import perf_counter

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
        return perf_counter()

    def _end(self, started, exc, result=None) -> None:
        self._duration.observe(perf_counter() - started)
        self._running.dec()
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
        self._duration.observe(perf_counter() - started)
        self._m.tool_executions.labels(self._tool, SUCCESS if exc is None else ERROR).inc()


class track_message(_Tracked):
    """agent_message_processing_duration_seconds{message_type}: time to handle one message."""

    def __init__(self, message_type: str, *, metrics: Metrics | None = None):
        self._duration = resolve(metrics).agent_message_duration.labels(message_type)

    def _end(self, started, exc, result=None) -> None:
        self._duration.observe(perf_counter() - started)


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


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""
    prompt: float
    completion: float


class PriceTable:
    """Prices by (provider, model), with (provider, "*") as a provider-wide fallback.

    PriceTable({("openai", "gpt-4o"): Price(2.50, 10.00), ("local", "*"): Price(0, 0)})
    """

    def __init__(self, prices: Mapping[tuple[str, str], Price | tuple[float, float]] | None = None):
        self._prices: dict[tuple[str, str], Price] = {}
        for key, price in (prices or {}).items():
            self.set(*key, price)

    def set(self, provider: str, model: str, price: Price | tuple[float, float]) -> None:
        self._prices[(provider, model)] = price if isinstance(price, Price) else Price(*price)

    def price(self, provider: str, model: str) -> Price | None:
        return self._prices.get((provider, model)) or self._prices.get((provider, "*"))

    def cost(self, provider: str, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for the tokens, or None when the model has no price."""
        price = self.price(provider, model)
        if price is None:
            return None
        return (prompt_tokens * price.prompt + completion_tokens * price.completion) / 1_000_000


def openai_usage(result) -> tuple[int, int] | None:
    """(prompt, completion) tokens from an OpenAI-style result: `.usage` object or dict."""
    usage = result.get("usage") if isinstance(result, Mapping) else getattr(result, "usage", None)
    if usage is None:
        return None
    if isinstance(usage, Mapping):
        return usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    return getattr(usage, "prompt_tokens", 0), getattr(usage, "completion_tokens", 0)


class track_llm(_Tracked):
    """llm_requests_total{provider,model,status}, llm_request_duration_seconds{provider,model},
    llm_tokens_total{provider,model,type}, llm_cost_usd_total{provider,model}.

    Tokens come from `call.usage(...)` inside a `with` block, or, for a decorated function,
    from its return value through `usage_from` (default: OpenAI-style `.usage`). The cost is
    counted only for models that have a price in `prices`.
    """

    def __init__(self, provider: str, model: str, *, prices: PriceTable | None = None,
                 usage_from: Callable[[object], tuple[int, int] | None] = openai_usage,
                 metrics: Metrics | None = None):
        self._m = resolve(metrics)
        self._provider = provider
        self._model = model
        self._prices = prices
        self._usage_from = usage_from
        self._tokens: tuple[int, int] | None = None

    def usage(self, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        self._tokens = (prompt_tokens, completion_tokens)

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._end(self._state, exc, None, self._tokens)
        return False

    def _end(self, started, exc, result=None, tokens=None) -> None:
        m, provider, model = self._m, self._provider, self._model
        m.llm_duration.labels(provider, model).observe(perf_counter() - started)
        m.llm_requests.labels(provider, model, SUCCESS if exc is None else ERROR).inc()
        if tokens is None and result is not None:
            tokens = self._usage_from(result)
        if tokens is not None:
            self.record_tokens(*tokens)

    def record_tokens(self, prompt_tokens: int, completion_tokens: int) -> None:
        m, provider, model = self._m, self._provider, self._model
        if prompt_tokens:
            m.llm_tokens.labels(provider, model, "prompt").inc(prompt_tokens)
        if completion_tokens:
            m.llm_tokens.labels(provider, model, "completion").inc(completion_tokens)
        if self._prices is not None:
            cost = self._prices.cost(provider, model, prompt_tokens, completion_tokens)
            if cost:
                m.llm_cost.labels(provider, model).inc(cost)
