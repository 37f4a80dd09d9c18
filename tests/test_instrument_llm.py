"""LLM calls in depth: OpenAI and Anthropic response shapes (objects and dicts, and the SDKs' own
response, stream-event and exception classes), token types, streaming (time to first token),
error classes and retries."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace as NS

import pytest
from prometheus_client import CollectorRegistry

from vigil_instrument import Metrics, Price, PriceTable, TokenUsage, error_class, read_usage, track_llm

PRICES = PriceTable({("openai", "gpt-4o"): Price(2.5, 10, cached=1.25),
                     ("anthropic", "claude-3-5-sonnet"): Price(3, 15, cached=0.3)})


@pytest.fixture
def m():
    return Metrics(CollectorRegistry())


def total(metrics, name, **labels):
    return sum(s.value for family in metrics.registry.collect() for s in family.samples
               if s.name == name and labels.items() <= s.labels.items())


def test_usage_of_every_response_shape():
    openai_chat = NS(usage=NS(prompt_tokens=1000, completion_tokens=300,
                              prompt_tokens_details=NS(cached_tokens=600),
                              completion_tokens_details=NS(reasoning_tokens=200)))
    openai_responses = {"usage": {"input_tokens": 50, "output_tokens": 20,
                                  "input_tokens_details": {"cached_tokens": 10},
                                  "output_tokens_details": {"reasoning_tokens": 5}}}
    anthropic = NS(usage=NS(input_tokens=40, output_tokens=12, cache_read_input_tokens=900,
                            cache_creation_input_tokens=60))
    anthropic_start = {"type": "message_start", "message": {"usage": {"input_tokens": 7, "output_tokens": 1}}}
    assert read_usage(openai_chat) == TokenUsage(prompt=400, cached=600, completion=100, reasoning=200)
    assert read_usage(openai_responses) == TokenUsage(prompt=40, cached=10, completion=15, reasoning=5)
    assert read_usage(anthropic) == TokenUsage(prompt=100, cached=900, completion=12)
    assert read_usage(anthropic_start) == TokenUsage(prompt=7, completion=1)
    assert read_usage({"usage": None}) is None and read_usage(NS(text="no usage")) is None


def test_token_types_and_cost_with_a_cache_price(m):
    with track_llm("openai", "gpt-4o", prices=PRICES, metrics=m) as call:
        call.usage(prompt_tokens=1000, completion_tokens=300, cached_tokens=600, reasoning_tokens=200)
    by_type = {kind: total(m, "llm_tokens_total", type=kind)
               for kind in ("prompt", "cached", "completion", "reasoning")}
    assert by_type == {"prompt": 400, "cached": 600, "completion": 100, "reasoning": 200}
    expected = (400 * 2.5 + 600 * 1.25 + 100 * 10 + 200 * 10) / 1e6
    assert total(m, "llm_cost_usd_total") == pytest.approx(expected)


def test_sync_stream_of_openai_chunks(m):
    def chunks():
        for text in ("Hel", "lo"):
            yield NS(model="gpt-4o-2024-08-06", choices=[NS(delta=NS(content=text), finish_reason=None)], usage=None)
        yield NS(model="gpt-4o-2024-08-06", choices=[], usage=NS(prompt_tokens=20, completion_tokens=2))

    with track_llm("openai", "gpt-4o", prices=PRICES, metrics=m) as call:
        text = "".join(c.choices[0].delta.content for c in call.stream(chunks()) if c.choices)
    assert text == "Hello"
    labels = dict(provider="openai", model="gpt-4o-2024-08-06")
    assert total(m, "llm_time_to_first_token_seconds_count", **labels) == 1
    assert total(m, "llm_streaming_duration_seconds_count", **labels) == 1
    assert total(m, "llm_tokens_total", type="prompt", **labels) == 20
    assert total(m, "llm_cost_usd_total", **labels) == pytest.approx((20 * 2.5 + 2 * 10) / 1e6)


async def test_async_stream_of_anthropic_events(m):
    async def events():
        yield {"type": "message_start", "message": {"model": "claude-3-5-sonnet-20241022",
                                                   "usage": {"input_tokens": 30, "output_tokens": 1,
                                                             "cache_read_input_tokens": 100}}}
        await asyncio.sleep(0.02)
        yield {"type": "content_block_delta", "delta": {"text": "hi"}}
        yield {"type": "message_delta", "usage": {"output_tokens": 45}}

    async with track_llm("anthropic", "claude-3-5-sonnet", prices=PRICES, metrics=m) as call:
        async for _ in call.stream(events()):
            pass
    labels = dict(provider="anthropic", model="claude-3-5-sonnet-20241022")
    assert total(m, "llm_tokens_total", type="prompt", **labels) == 30
    assert total(m, "llm_tokens_total", type="cached", **labels) == 100
    assert total(m, "llm_tokens_total", type="completion", **labels) == 45    # running total, not a sum
    assert total(m, "llm_streaming_duration_seconds_sum", **labels) >= 0.02
    assert total(m, "llm_time_to_first_token_seconds_sum", **labels) < 0.02


class RateLimitError(Exception):
    pass


class APIStatusError(Exception):
    def __init__(self, status_code):
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


def test_error_classes_and_retries(m):
    failures = [RateLimitError("slow down"), APIStatusError(429), APIStatusError(529), APIStatusError(503),
                asyncio.TimeoutError(), APIStatusError(408), ValueError("bad prompt")]
    assert [error_class(e) for e in failures] == ["rate_limit", "rate_limit", "server", "server", "timeout",
                                                  "timeout", "other"]
    for failure in failures:
        with pytest.raises(type(failure)):
            with track_llm("openai", "gpt-4o", metrics=m) as call:
                call.retry()
                raise failure
    with track_llm("openai", "gpt-4o", metrics=m) as call:        # refused by the content filter
        call.record_response({"choices": [{"finish_reason": "content_filter"}], "usage": {"prompt_tokens": 9}})
    errors = {kind: total(m, "llm_errors_total", error_class=kind) for kind in
              ("rate_limit", "timeout", "server", "content_filter", "other")}
    assert errors == {"rate_limit": 2, "timeout": 2, "server": 2, "content_filter": 1, "other": 1}
    assert total(m, "llm_requests_total", status="error") == 8
    assert total(m, "llm_retries_total") == 7
    assert total(m, "llm_tokens_total", type="prompt") == 9


async def test_decorator_takes_the_model_and_cached_tokens_of_each_response(m):
    """A decorated function is labelled per call with the model its response names, not the one
    given at decoration time, and its cached and reasoning tokens are their own types."""
    replies = iter([
        NS(model="gpt-4o-2024-08-06", usage=NS(prompt_tokens=1000, completion_tokens=300,
                                               prompt_tokens_details=NS(cached_tokens=600),
                                               completion_tokens_details=NS(reasoning_tokens=200))),
        {"model": "gpt-4o-2024-11-20", "usage": {"prompt_tokens": 50, "completion_tokens": 5,
                                                 "prompt_tokens_details": {"cached_tokens": 40}}},
    ])

    @track_llm("openai", "gpt-4o", prices=PRICES, metrics=m)
    async def ask_async():
        return next(replies)

    @track_llm("openai", "gpt-4o", prices=PRICES, metrics=m)
    def ask_sync():
        return next(replies)

    await ask_async()
    ask_sync()
    first, second = dict(model="gpt-4o-2024-08-06"), dict(model="gpt-4o-2024-11-20")
    assert {kind: total(m, "llm_tokens_total", type=kind, **first)
            for kind in ("prompt", "cached", "completion", "reasoning")} == {
        "prompt": 400, "cached": 600, "completion": 100, "reasoning": 200}
    assert total(m, "llm_tokens_total", type="cached", **second) == 40
    assert total(m, "llm_requests_total", status="success", **first) == 1
    assert total(m, "llm_requests_total", status="success", **second) == 1
    assert total(m, "llm_requests_total", model="gpt-4o") == 0
    assert total(m, "llm_request_duration_seconds_count", **second) == 1
    # a dated snapshot is priced as the model it is a version of, cached tokens at their price
    assert total(m, "llm_cost_usd_total", **first) == pytest.approx((400 * 2.5 + 600 * 1.25 + 300 * 10) / 1e6)


def test_decorating_a_generator_is_refused(m):
    with pytest.raises(TypeError, match="call.stream"):
        @track_llm("openai", "gpt-4o", metrics=m)
        def tokens():
            yield "a"


# --- the SDKs' own response, stream and error objects (built locally: no request is made) ------

def test_openai_sdk_objects():
    import httpx
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    m = Metrics(CollectorRegistry())
    usage = {"prompt_tokens": 1000, "completion_tokens": 300, "total_tokens": 1300,
             "prompt_tokens_details": {"cached_tokens": 600}, "completion_tokens_details": {"reasoning_tokens": 200}}
    reply = ChatCompletion.model_validate({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1764583200, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
        "usage": usage})
    assert read_usage(reply) == TokenUsage(prompt=400, cached=600, completion=100, reasoning=200)

    @track_llm("openai", "gpt-4o", prices=PRICES, metrics=m)
    def ask():
        return reply
    ask()
    chunk = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1764583200, "model": "gpt-4o-2024-08-06"}
    chunks = [ChatCompletionChunk.model_validate({**chunk, "choices": [
                  {"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}),
              ChatCompletionChunk.model_validate({**chunk, "choices": [
                  {"index": 0, "delta": {}, "finish_reason": "content_filter"}]}),
              ChatCompletionChunk.model_validate({**chunk, "choices": [], "usage": usage})]
    with track_llm("openai", "gpt-4o", prices=PRICES, metrics=m) as call:
        assert len(list(call.stream(chunks))) == 3
    labels = dict(provider="openai", model="gpt-4o-2024-08-06")
    assert total(m, "llm_tokens_total", type="cached", **labels) == 1200
    assert total(m, "llm_tokens_total", type="reasoning", **labels) == 400
    assert total(m, "llm_time_to_first_token_seconds_count", **labels) == 1
    assert total(m, "llm_errors_total", error_class="content_filter", **labels) == 1   # the stream was filtered
    assert total(m, "llm_requests_total", status="success", **labels) == 1

    request = httpx.Request("POST", "https://llm.invalid/v1/chat/completions")

    def status_error(cls, status, body=None):
        return cls(f"HTTP {status}", response=httpx.Response(status, request=request), body=body)
    failures = {
        "rate_limit": status_error(openai.RateLimitError, 429),
        "server": status_error(openai.InternalServerError, 503),
        "timeout": openai.APITimeoutError(request=request),
        "content_filter": status_error(openai.BadRequestError, 400, {"code": "content_filter", "message": "filtered"}),
        "other": status_error(openai.BadRequestError, 400, {"code": "invalid_request", "message": "bad"}),
    }
    assert {kind: error_class(exc) for kind, exc in failures.items()} == {kind: kind for kind in failures}
    assert error_class(openai.APIConnectionError(request=request)) == "server"


async def test_anthropic_sdk_objects():
    import anthropic
    import httpx
    from anthropic.types import Message, RawContentBlockDeltaEvent, RawMessageDeltaEvent, RawMessageStartEvent

    m = Metrics(CollectorRegistry())
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-sonnet-20241022",
               "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "stop_sequence": None,
               "usage": {"input_tokens": 40, "output_tokens": 12, "cache_read_input_tokens": 900,
                         "cache_creation_input_tokens": 60}}
    reply = Message.model_validate(message)
    assert read_usage(reply) == TokenUsage(prompt=100, cached=900, completion=12)

    @track_llm("anthropic", "claude-3-5-sonnet", prices=PRICES, metrics=m)
    async def ask():
        return reply
    await ask()

    async def events():
        yield RawMessageStartEvent.model_validate({"type": "message_start", "message": {
            **message, "content": [], "stop_reason": None,
            "usage": {"input_tokens": 30, "output_tokens": 1, "cache_read_input_tokens": 100}}})
        yield RawContentBlockDeltaEvent.model_validate({"type": "content_block_delta", "index": 0,
                                                        "delta": {"type": "text_delta", "text": "hi"}})
        yield RawMessageDeltaEvent.model_validate({"type": "message_delta", "usage": {"output_tokens": 45},
                                                   "delta": {"stop_reason": "refusal", "stop_sequence": None}})
    async with track_llm("anthropic", "claude-3-5-sonnet", prices=PRICES, metrics=m) as call:
        async for _ in call.stream(events()):
            pass
    labels = dict(provider="anthropic", model="claude-3-5-sonnet-20241022")
    assert total(m, "llm_tokens_total", type="prompt", **labels) == 100 + 30
    assert total(m, "llm_tokens_total", type="cached", **labels) == 900 + 100
    assert total(m, "llm_tokens_total", type="completion", **labels) == 12 + 45
    assert total(m, "llm_cost_usd_total", **labels) == pytest.approx(
        (130 * 3 + 1000 * 0.3 + 57 * 15) / 1e6)
    assert total(m, "llm_errors_total", error_class="content_filter", **labels) == 1   # stop_reason refusal

    request = httpx.Request("POST", "https://llm.invalid/v1/messages")

    def status_error(cls, status):
        return cls(f"HTTP {status}", response=httpx.Response(status, request=request), body=None)
    assert error_class(status_error(anthropic.RateLimitError, 429)) == "rate_limit"
    assert error_class(status_error(anthropic.InternalServerError, 529)) == "server"   # overloaded
    assert error_class(anthropic.APITimeoutError(request=request)) == "timeout"
    assert error_class(status_error(anthropic.BadRequestError, 400)) == "other"
