"""A fake LLM provider: deterministic pseudo-random latency, token counts, costs and failures.

Every draw comes from one `random.Random` seeded from the service's seed, so the same seed
gives the same sequence of calls. Now and then a provider has an incident (30-90 s of slow
answers and frequent errors), as real providers do; outside incidents about 2 % of the calls
fail.
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from vigil_instrument import Metrics, Price, PriceTable, track_llm

# List prices in USD per million tokens (prompt, completion).
PRICES = PriceTable({
    ("openai", "gpt-4o"): Price(2.50, 10.00),
    ("openai", "gpt-4o-mini"): Price(0.15, 0.60),
    ("anthropic", "claude-3-5-haiku"): Price(0.80, 4.00),
    ("anthropic", "claude-3-5-sonnet"): Price(3.00, 15.00),
    ("local", "*"): Price(0, 0),
})


@dataclass(frozen=True)
class Model:
    provider: str
    name: str
    first_token_seconds: float     # median time to the first token
    seconds_per_token: float       # generation speed


MODELS = {m.name: m for m in (
    Model("openai", "gpt-4o", 0.25, 0.004),
    Model("openai", "gpt-4o-mini", 0.12, 0.002),
    Model("anthropic", "claude-3-5-haiku", 0.15, 0.002),
    Model("anthropic", "claude-3-5-sonnet", 0.30, 0.005),
    Model("local", "llama-3-8b", 0.03, 0.001),
)}


class LLMError(Exception):
    """A failed LLM request (the class name is the agents' `error_type`)."""


class RateLimitError(LLMError):
    status_code = 429


class ProviderTimeoutError(LLMError):
    pass


class ProviderUnavailableError(LLMError):
    status_code = 503


ERROR_TYPES = (RateLimitError, ProviderTimeoutError, ProviderUnavailableError)

BASE_ERROR_RATE = 0.02
INCIDENT_ERROR_RATE = 0.35
INCIDENT_SLOWDOWN = 3.0
INCIDENT_CHANCE = 1 / 3000      # per call: an incident starts
INCIDENT_SECONDS = (30, 90)


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int


class FakeLLM:
    """`await llm.complete(model, prompt, max_tokens)`, recorded with `track_llm`."""

    def __init__(self, metrics: Metrics, seed: int = 42, latency_scale: float = 1.0):
        self.metrics = metrics
        self.rng = random.Random(f"{seed}:llm")
        self.latency_scale = latency_scale
        self._incident_until: dict[str, float] = {}

    def in_incident(self, provider: str) -> bool:
        return self._incident_until.get(provider, 0.0) > time.monotonic()

    def draw(self, model: Model, prompt: str,
             max_tokens: int) -> tuple[float, int, int, LLMError | None]:
        """(latency seconds, prompt tokens, completion tokens, failure) of one call."""
        rng = self.rng
        if not self.in_incident(model.provider) and rng.random() < INCIDENT_CHANCE:
            self._incident_until[model.provider] = time.monotonic() + rng.uniform(*INCIDENT_SECONDS)
        incident = self.in_incident(model.provider)
        prompt_tokens = max(1, len(prompt) // 4) + rng.randint(150, 900)  # + system prompt, context
        completion_tokens = rng.randint(max_tokens // 8, max_tokens)
        latency = (model.first_token_seconds * rng.lognormvariate(0, 0.5)
                   + model.seconds_per_token * completion_tokens)
        if rng.random() < 0.01:
            latency *= rng.uniform(4, 10)  # the long tail
        if incident:
            latency *= INCIDENT_SLOWDOWN
        failure = None
        if rng.random() < (INCIDENT_ERROR_RATE if incident else BASE_ERROR_RATE):
            failure = rng.choice(ERROR_TYPES)(f"{model.provider} {model.name}: simulated failure")
            latency *= rng.uniform(0.1, 1.0)
        return latency * self.latency_scale, prompt_tokens, completion_tokens, failure

    async def complete(self, model_name: str, prompt: str, max_tokens: int = 300) -> Completion:
        """One streamed call: the first token after about a fifth of the latency; a rate limit
        is retried once (counted) before it fails the call."""
        model = MODELS[model_name]
        latency, prompt_tokens, completion_tokens, failure = self.draw(model, prompt, max_tokens)
        cached = self.rng.randint(0, prompt_tokens // 2) if model.provider != "local" else 0
        async with track_llm(model.provider, model.name, prices=PRICES,
                             metrics=self.metrics) as call:
            if isinstance(failure, RateLimitError) and self.rng.random() < 0.5:
                call.retry()
                await asyncio.sleep(latency * 0.1)
            await asyncio.sleep(latency * 0.2)
            if failure is not None:
                raise failure
            call.first_token()
            await asyncio.sleep(latency * 0.8)
            call.usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                       cached_tokens=cached)
        words = max(1, completion_tokens * 3 // 4)
        return Completion(f"[{model.name}] " + " ".join(["lorem"] * min(words, 200)),
                          prompt_tokens, completion_tokens)
