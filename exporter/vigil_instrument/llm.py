"""LLM calls: requests, errors and retries, duration, time to first token and streaming time,
tokens by type, cost; by tenant and agent.

`track_llm` is a decorator (sync and async) and a context manager (`with`, `async with`):

    async with track_llm("openai", "gpt-4o", prices=PRICES, metrics=metrics) as call:
        reply = await client.chat.completions.create(...)
        call.record_response(reply)          # usage (and the model that answered) from the reply

    async with track_llm("anthropic", "claude-3-5-sonnet", prices=PRICES) as call:
        async for event in call.stream(await client.messages.create(..., stream=True)):
            ...                              # first token timed, usage read from the events

    @track_llm("anthropic", "claude-3-5-sonnet", prices=PRICES)
    async def ask(prompt): return await client.messages.create(...)   # read from the result

Responses are read duck-typed (llm_usage.py): no SDK is imported. The tenant and agent labels
come from the context (`tenant_scope`, per-request labels, `track_agent`) unless given; each is
bounded by its cap with an `other` overflow.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import perf_counter

from .agents import ERROR, SUCCESS, _Tracked
from .context import NONE, agent_var, tenant_var
from .llm_usage import TokenUsage, error_class, field, filtered, read_usage
from .metrics import Metrics, resolve


@dataclass(frozen=True)
class Price:
    """USD per million tokens; cached input and reasoning output default to the prompt and
    completion prices."""
    prompt: float
    completion: float
    cached: float | None = None
    reasoning: float | None = None

    def cost(self, usage: TokenUsage) -> float:
        cached = self.prompt if self.cached is None else self.cached
        reasoning = self.completion if self.reasoning is None else self.reasoning
        return (usage.prompt * self.prompt + usage.cached * cached + usage.completion * self.completion
                + usage.reasoning * reasoning) / 1_000_000


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
        """The model's price; else the longest listed model it is a dated version of
        ("gpt-4o-2024-08-06" -> "gpt-4o"); else the provider's "*"."""
        price = self._prices.get((provider, model))
        if price is not None:
            return price
        versions = [name for (p, name) in self._prices if p == provider and model.startswith(name + "-")]
        if versions:
            return self._prices[(provider, max(versions, key=len))]
        return self._prices.get((provider, "*"))

    def cost(self, provider: str, model: str, prompt_tokens: int | TokenUsage = 0,
             completion_tokens: int = 0) -> float | None:
        """USD for the tokens (a `TokenUsage`, or prompt and completion counts), or None when
        the model has no price."""
        price = self.price(provider, model)
        if price is None:
            return None
        usage = prompt_tokens if isinstance(prompt_tokens, TokenUsage) else TokenUsage(
            prompt=prompt_tokens, completion=completion_tokens)
        return price.cost(usage)


def openai_usage(result) -> tuple[int, int] | None:
    """(input, output) token totals of an OpenAI or Anthropic result, object or dict."""
    usage = read_usage(result)
    if usage is None:
        return None
    return usage.prompt + usage.cached, usage.completion + usage.reasoning


class LLMCall:
    """One LLM call being tracked: what `with track_llm(...) as call` gives."""

    __slots__ = ("tracker", "model", "tenant", "agent", "started", "first_token_at", "usage_seen",
                 "refused")

    def __init__(self, tracker: track_llm):
        self.tracker = tracker
        self.model = tracker.model
        self.tenant = tracker.tenant or tenant_var.get() or NONE
        self.agent = tracker.agent or agent_var.get() or NONE
        self.usage_seen: TokenUsage | None = None
        self.first_token_at: float | None = None
        self.refused = False
        self.started = perf_counter()

    def usage(self, prompt_tokens: int = 0, completion_tokens: int = 0, cached_tokens: int = 0,
              reasoning_tokens: int = 0) -> None:
        """Token counts as OpenAI reports them: `cached_tokens` is part of `prompt_tokens`,
        `reasoning_tokens` part of `completion_tokens`."""
        self.usage_seen = TokenUsage(prompt=max(prompt_tokens - cached_tokens, 0), cached=cached_tokens,
                                     completion=max(completion_tokens - reasoning_tokens, 0),
                                     reasoning=reasoning_tokens)

    def record_response(self, response) -> None:
        """Take the usage, the answering model and a content-filter stop from an OpenAI or
        Anthropic response (or a streamed chunk or event), object or dict."""
        usage = self.tracker.usage_from(response)
        if isinstance(usage, tuple):  # a custom usage_from giving (prompt, completion)
            usage = TokenUsage(prompt=usage[0], completion=usage[1])
        if usage is not None:
            self.usage_seen = usage if self.usage_seen is None else self.usage_seen.merged(usage)
        model = field(response, "model") or field(field(response, "message"), "model")
        if isinstance(model, str) and model and self.tracker.model_from_response:
            self.model = model
        if filtered(response):
            self.refused = True

    def first_token(self) -> None:
        """Mark the first token received (streaming); later calls are ignored."""
        if self.first_token_at is None:
            self.first_token_at = perf_counter()

    def retry(self) -> None:
        """Count one retry of this call (after a rate limit, a timeout...)."""
        t = self.tracker
        t.metrics.llm_retries.labels(t.provider, self.model).inc()

    def stream(self, chunks):
        """Wrap a stream (iterable or async iterable of chunks / events): the first chunk marks
        the first token, each chunk is read for usage and the model."""
        if hasattr(chunks, "__aiter__"):
            return self._astream(chunks)
        return self._stream(chunks)

    def _stream(self, chunks):
        for chunk in chunks:
            self.first_token()
            self.record_response(chunk)
            yield chunk

    async def _astream(self, chunks):
        async for chunk in chunks:
            self.first_token()
            self.record_response(chunk)
            yield chunk


class track_llm(_Tracked):
    """llm_requests_total{provider,model,status,tenant,agent}, llm_errors_total{provider,model,
    error_class}, llm_retries_total{provider,model}, llm_request_duration_seconds{provider,model},
    llm_time_to_first_token_seconds and llm_streaming_duration_seconds{provider,model} (streams),
    llm_tokens_total{provider,model,type,tenant,agent} (type: prompt, cached, completion,
    reasoning; disjoint), llm_cost_usd_total{provider,model,tenant,agent}.

    Tokens come from `call.record_response(reply)`, `call.stream(...)` or `call.usage(...)` inside
    a `with` block, or, for a decorated function, from its return value through `usage_from`
    (default: the OpenAI / Anthropic `.usage`; it may return a `TokenUsage` or (prompt,
    completion)). The cost is counted only for models that have a price in `prices`. The model
    label is the one the response names when it names one (the model that actually answered,
    e.g. a dated snapshot); `model_from_response=False` keeps the given one. A response stopped
    by the provider's content filter counts as an error of class content_filter.
    """

    def __init__(self, provider: str, model: str, *, prices: PriceTable | None = None,
                 tenant: str | None = None, agent: str | None = None,
                 usage_from: Callable[[object], TokenUsage | tuple[int, int] | None] = read_usage,
                 model_from_response: bool = True, metrics: Metrics | None = None):
        self.metrics = resolve(metrics)
        self.provider = provider
        self.model = model
        self.prices = prices
        self.tenant = tenant
        self.agent = agent
        self.usage_from = usage_from
        self.model_from_response = model_from_response

    def _begin(self) -> LLMCall:
        return LLMCall(self)

    def __enter__(self) -> LLMCall:
        self._state = self._begin()
        return self._state

    def __call__(self, func: Callable) -> Callable:
        if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
            raise TypeError("track_llm cannot decorate a generator: use `with track_llm(...) as call` "
                            "and `call.stream(...)`")
        return super().__call__(func)

    def _end(self, call: LLMCall, exc, result=None) -> None:
        if result is not None:
            call.record_response(result)
        end = perf_counter()
        m, provider, model = self.metrics, self.provider, call.model
        exemplar = m.current_exemplar()
        m.llm_duration.labels(provider, model).observe(end - call.started, exemplar)
        if call.first_token_at is not None:
            m.llm_time_to_first_token.labels(provider, model).observe(call.first_token_at - call.started, exemplar)
            m.llm_streaming_duration.labels(provider, model).observe(end - call.first_token_at, exemplar)
        failed = exc is not None or call.refused
        m.llm_requests.labels(provider, model, ERROR if failed else SUCCESS, call.tenant, call.agent).inc()
        if failed:
            m.llm_errors.labels(provider, model, "content_filter" if exc is None else error_class(exc)).inc()
        if call.usage_seen is not None:
            self._record_tokens(call, call.usage_seen)

    def _record_tokens(self, call: LLMCall, usage: TokenUsage) -> None:
        m, provider, model = self.metrics, self.provider, call.model
        for kind, count in zip(("prompt", "cached", "completion", "reasoning"), usage.counts()):
            if count:
                m.llm_tokens.labels(provider, model, kind, call.tenant, call.agent).inc(count)
        if self.prices is not None:
            cost = self.prices.cost(provider, model, usage)
            if cost:
                m.llm_cost.labels(provider, model, call.tenant, call.agent).inc(cost)
