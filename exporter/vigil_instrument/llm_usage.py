"""What an LLM provider's response says, read duck-typed (no SDK imported): token usage, the
model that answered, a content-filter stop; and the class of a failed call.

Token types are disjoint, so that their sum is every token billed:
  prompt      input tokens not read from a cache (Anthropic: cache writes included)
  cached      input tokens read from the provider's prompt cache
  completion  output tokens, reasoning excluded
  reasoning   hidden reasoning output tokens (OpenAI o-series; Anthropic counts thinking as output)
"""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

TOKEN_TYPES = ("prompt", "cached", "completion", "reasoning")
ERROR_CLASSES = ("rate_limit", "timeout", "server", "content_filter", "other")


@dataclass(frozen=True)
class TokenUsage:
    prompt: int = 0
    cached: int = 0
    completion: int = 0
    reasoning: int = 0

    def merged(self, other: TokenUsage) -> TokenUsage:
        """The larger of each count: streamed events report running totals."""
        return TokenUsage(*(max(a, b) for a, b in zip(self.counts(), other.counts())))

    def counts(self) -> tuple[int, int, int, int]:
        return self.prompt, self.cached, self.completion, self.reasoning


def field(obj, name: str):
    """`obj.name` or `obj[name]`: SDK objects and their dict form alike."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(value) -> int:
    return int(value) if isinstance(value, (int, float)) else 0


def read_usage(response) -> TokenUsage | None:
    """The usage of an OpenAI (chat completions or responses) or Anthropic response, or of a
    streamed chunk / event that carries one (OpenAI's last chunk with `include_usage`,
    Anthropic's `message_start` and `message_delta`)."""
    usage = field(response, "usage")
    if usage is None:
        usage = field(field(response, "message"), "usage")  # Anthropic message_start event
    if usage is None:
        return None
    if field(usage, "prompt_tokens") is not None or field(usage, "completion_tokens") is not None:
        return _openai(usage, "prompt_tokens", "completion_tokens",
                       "prompt_tokens_details", "completion_tokens_details")
    if field(usage, "input_tokens_details") is not None or field(usage, "output_tokens_details") is not None:
        return _openai(usage, "input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")
    if field(usage, "input_tokens") is None and field(usage, "output_tokens") is None:
        return None
    # Anthropic: input_tokens excludes cache reads and writes, which are listed beside it.
    return TokenUsage(prompt=_int(field(usage, "input_tokens")) + _int(field(usage, "cache_creation_input_tokens")),
                      cached=_int(field(usage, "cache_read_input_tokens")),
                      completion=_int(field(usage, "output_tokens")))


def _openai(usage, input_name, output_name, input_details, output_details) -> TokenUsage:
    """OpenAI: cached and reasoning tokens are parts of the input and output totals."""
    total_in, total_out = _int(field(usage, input_name)), _int(field(usage, output_name))
    cached = _int(field(field(usage, input_details), "cached_tokens"))
    reasoning = _int(field(field(usage, output_details), "reasoning_tokens"))
    return TokenUsage(prompt=max(total_in - cached, 0), cached=cached,
                      completion=max(total_out - reasoning, 0), reasoning=reasoning)


def filtered(response) -> bool:
    """Whether the provider stopped the answer for its content policy: OpenAI's finish reason,
    Anthropic's stop reason (on a message, or on a stream's `message_delta` event)."""
    choices = field(response, "choices")
    if isinstance(choices, (list, tuple)):
        return any(field(choice, "finish_reason") == "content_filter" for choice in choices)
    return "refusal" in (field(response, "stop_reason"), field(field(response, "delta"), "stop_reason"))


def error_class(exc: BaseException) -> str:
    """rate_limit | timeout | server | content_filter | other, from the HTTP status an SDK
    exception carries (`status_code`, `status`) or, failing that, its class names."""
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    status = field(exc, "status_code") or field(exc, "status")
    if isinstance(status, int):
        if status == 429:
            return "rate_limit"
        if status in (408, 504):
            return "timeout"
        if status >= 500:
            return "server"
    names = " ".join(cls.__name__.lower() for cls in type(exc).__mro__)
    code = str(field(exc, "code") or "").lower()
    for cls, words in (("rate_limit", ("ratelimit", "quota")),
                       ("timeout", ("timeout", "timedout")),
                       ("content_filter", ("contentfilter", "contentpolicy", "safety", "refusal")),
                       ("server", ("internalserver", "serviceunavailable", "overloaded", "unavailable",
                                   "apiconnection", "connection"))):
        if any(word in names for word in words) or any(word in code.replace("_", "") for word in words):
            return cls
    return "other"
