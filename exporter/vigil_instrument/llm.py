"""LLM calls: requests, duration, tokens and cost, by tenant and agent.

`track_llm` is a decorator (sync and async) and a context manager (`with`, `async with`):

    async with track_llm("openai", "gpt-4o", prices=PRICES, metrics=metrics) as call:
        reply = await client.chat.completions.create(...)
        call.record_response(reply)          # usage (and the model that answered) from the reply

    @track_llm("anthropic", "claude-3-5-sonnet", prices=PRICES)
    async def ask(prompt): return await client.messages.create(...)   # read from the result

The tenant and agent labels come from the context (`tenant_scope`, per-request labels,
`track_agent`) unless given; each is bounded by its cap with an `other` overflow.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import perf_counter

from .agents import ERROR, SUCCESS, _Tracked
from .context import NONE, agent_var, tenant_var
from .metrics import Metrics, resolve


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
        """The model's price; else the longest listed model it is a dated version of
        ("gpt-4o-2024-08-06" -> "gpt-4o"); else the provider's "*"."""
        price = self._prices.get((provider, model))
        if price is not None:
            return price
        versions = [name for (p, name) in self._prices if p == provider and model.startswith(name + "-")]
        if versions:
            return self._prices[(provider, max(versions, key=len))]
        return self._prices.get((provider, "*"))

    def cost(self, provider: str, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for the tokens, or None when the model has no price."""
        price = self.price(provider, model)
        if price is None:
            return None
        return (prompt_tokens * price.prompt + completion_tokens * price.completion) / 1_000_000


def _field(obj, name: str):
    """`obj.name` or `obj[name]`: SDK objects and their dict form alike."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def openai_usage(result) -> tuple[int, int] | None:
    """(prompt, completion) tokens from an OpenAI-style (`prompt_tokens`/`completion_tokens`) or
    Anthropic-style (`input_tokens`/`output_tokens`) result's `usage`, object or dict."""
    usage = _field(result, "usage")
    if usage is None:
        return None
    prompt = _field(usage, "prompt_tokens")
    if prompt is None:
        prompt = _field(usage, "input_tokens")
    completion = _field(usage, "completion_tokens")
    if completion is None:
        completion = _field(usage, "output_tokens")
    return int(prompt or 0), int(completion or 0)


class LLMCall:
    """One LLM call being tracked: what `with track_llm(...) as call` gives."""

    __slots__ = ("tracker", "model", "tenant", "agent", "started", "tokens")

    def __init__(self, tracker: track_llm):
        self.tracker = tracker
        self.model = tracker.model
        self.tenant = tracker.tenant or tenant_var.get() or NONE
        self.agent = tracker.agent or agent_var.get() or NONE
        self.tokens: tuple[int, int] | None = None
        self.started = perf_counter()

    def usage(self, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        self.tokens = (prompt_tokens, completion_tokens)

    def record_response(self, response) -> None:
        """Take the usage (and the answering model, when the response names it) from an
        OpenAI or Anthropic response object, or its dict form."""
        tokens = self.tracker.usage_from(response)
        if tokens is not None:
            self.tokens = tokens
        model = _field(response, "model")
        if isinstance(model, str) and model and self.tracker.model_from_response:
            self.model = model


class track_llm(_Tracked):
    """llm_requests_total{provider,model,status,tenant,agent}, llm_request_duration_seconds
    {provider,model}, llm_tokens_total{provider,model,type,tenant,agent},
    llm_cost_usd_total{provider,model,tenant,agent}.

    Tokens come from `call.usage(...)` or `call.record_response(reply)` inside a `with` block,
    or, for a decorated function, from its return value through `usage_from` (default: the
    OpenAI / Anthropic `.usage`). The cost is counted only for models that have a price in
    `prices`. The model label is the one the response names when it names one (the model that
    actually answered, e.g. a dated snapshot); `model_from_response=False` keeps the given one.
    """

    def __init__(self, provider: str, model: str, *, prices: PriceTable | None = None,
                 tenant: str | None = None, agent: str | None = None,
                 usage_from: Callable[[object], tuple[int, int] | None] = openai_usage,
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

    def _end(self, call: LLMCall, exc, result=None) -> None:
        if result is not None and call.tokens is None:
            call.record_response(result)
        m, provider, model = self.metrics, self.provider, call.model
        m.llm_duration.labels(provider, model).observe(perf_counter() - call.started, m.current_exemplar())
        m.llm_requests.labels(provider, model, SUCCESS if exc is None else ERROR, call.tenant, call.agent).inc()
        if call.tokens is not None:
            self._record_tokens(call, *call.tokens)

    def _record_tokens(self, call: LLMCall, prompt_tokens: int, completion_tokens: int) -> None:
        m, provider, model = self.metrics, self.provider, call.model
        if prompt_tokens:
            m.llm_tokens.labels(provider, model, "prompt", call.tenant, call.agent).inc(prompt_tokens)
        if completion_tokens:
            m.llm_tokens.labels(provider, model, "completion", call.tenant, call.agent).inc(completion_tokens)
        if self.prices is not None:
            cost = self.prices.cost(provider, model, prompt_tokens, completion_tokens)
            if cost:
                m.llm_cost.labels(provider, model, call.tenant, call.agent).inc(cost)
