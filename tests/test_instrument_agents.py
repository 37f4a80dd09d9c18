"""Agents, messages, tools, LLM calls, caches, auth, WebSockets and queues after real calls."""
from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from vigil_instrument import (
    Cardinality,
    Metrics,
    Price,
    PriceTable,
    record_agent_message,
    record_api_key_created,
    record_api_key_revoked,
    record_auth_request,
    record_cache,
    record_failed_attempt,
    record_login,
    record_token_refresh,
    record_websocket_message,
    set_queue_depth,
    tenant_scope,
    track_agent,
    track_llm,
    track_message,
    track_tool,
    track_websocket,
)
from vigil_instrument.context import current_agent, current_tenant


class Registry:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)

    def __call__(self, name, **labels):
        """The sum of the samples `name` whose labels include `labels`."""
        return sum(sample.value for family in self.registry.collect() for sample in family.samples
                   if sample.name == name and labels.items() <= sample.labels.items())


@pytest.fixture
def r():
    return Registry()


async def test_agent_decorator_on_async_functions_counts_running_and_errors(r):
    started = asyncio.Event()
    release = asyncio.Event()

    @track_agent("planner", metrics=r.metrics)
    async def plan(fail: bool = False):
        started.set()
        await release.wait()
        if fail:
            raise KeyError("no plan")
        return "plan"

    tasks = [asyncio.create_task(plan()), asyncio.create_task(plan()), asyncio.create_task(plan(fail=True))]
    await started.wait()
    await asyncio.sleep(0)
    assert r("agents_running", agent="planner") == 3
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[:2] == ["plan", "plan"] and isinstance(results[2], KeyError)
    assert plan.__name__ == "plan"
    assert r("agents_running", agent="planner") == 0
    assert r("agent_executions_total", agent="planner", status="success") == 2
    assert r("agent_executions_total", agent="planner", status="error") == 1
    assert r("agent_errors_total", agent="planner", error_type="KeyError") == 1
    assert r("agent_execution_duration_seconds_count", agent="planner") == 3


def test_agent_context_manager_and_sync_decorator(r):
    with track_agent("writer", metrics=r.metrics):
        assert r("agents_running", agent="writer") == 1
    with pytest.raises(ValueError):
        with track_agent("writer", metrics=r.metrics):
            raise ValueError("bad draft")

    @track_agent("writer", metrics=r.metrics)
    def write(text):
        return text.upper()

    assert write("x") == "X"
    assert r("agent_executions_total", agent="writer", status="success") == 2
    assert r("agent_errors_total", agent="writer", error_type="ValueError") == 1
    assert r("agents_running", agent="writer") == 0


async def test_async_with_and_cancellation_count_as_error(r):
    async with track_agent("router", metrics=r.metrics):
        await asyncio.sleep(0)

    async def stuck():
        async with track_agent("router", metrics=r.metrics):
            await asyncio.sleep(10)

    task = asyncio.create_task(stuck())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert r("agent_executions_total", agent="router", status="success") == 1
    assert r("agent_errors_total", agent="router", error_type="CancelledError") == 1
    assert r("agents_running", agent="router") == 0


def test_tools_from_several_threads(r):
    @track_tool("search", metrics=r.metrics)
    def search(query):
        if query == "bad":
            raise TimeoutError
        return [query]

    def run():
        for _ in range(100):
            search("ok")
    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with pytest.raises(TimeoutError):
        search("bad")
    assert r("tool_executions_total", tool="search", status="success") == 400
    assert r("tool_executions_total", tool="search", status="error") == 1
    assert r("tool_execution_duration_seconds_count", tool="search") == 401


async def test_messages_and_processing_time(r):
    record_agent_message("planner", "writer", "task", 1200, metrics=r.metrics)
    record_agent_message("planner", "writer", "task", 800, metrics=r.metrics)
    record_agent_message("writer", "planner", "result", metrics=r.metrics)

    @track_message("task", metrics=r.metrics)
    async def handle(message):
        await asyncio.sleep(0.01)

    await handle({})
    labels = dict(source_agent="planner", target_agent="writer", message_type="task")
    assert r("agent_messages_total", **labels) == 2
    assert r("agent_message_size_bytes_sum", **labels) == 2000
    assert r("agent_message_size_bytes_count", **labels) == 2
    assert r("agent_messages_total", source_agent="writer", target_agent="planner", message_type="result") == 1
    assert r("agent_message_processing_duration_seconds_count", message_type="task") == 1
    assert r("agent_message_processing_duration_seconds_sum", message_type="task") >= 0.01


PRICES = PriceTable({("openai", "gpt-4o"): Price(prompt=2.5, completion=10.0), ("local", "*"): (0, 0)})


async def test_llm_context_manager_tokens_and_cost(r):
    async with track_llm("openai", "gpt-4o", prices=PRICES, metrics=r.metrics) as call:
        await asyncio.sleep(0)
        call.usage(prompt_tokens=1000, completion_tokens=500)
    with pytest.raises(ConnectionError):
        with track_llm("openai", "gpt-4o", prices=PRICES, metrics=r.metrics):
            raise ConnectionError("rate limited")
    with track_llm("mystery", "m1", prices=PRICES, metrics=r.metrics) as call:
        call.usage(prompt_tokens=10, completion_tokens=10)

    assert r("llm_requests_total", provider="openai", model="gpt-4o", status="success") == 1
    assert r("llm_requests_total", provider="openai", model="gpt-4o", status="error") == 1
    assert r("llm_request_duration_seconds_count", provider="openai", model="gpt-4o") == 2
    assert r("llm_tokens_total", provider="openai", model="gpt-4o", type="prompt") == 1000
    assert r("llm_tokens_total", provider="openai", model="gpt-4o", type="completion") == 500
    assert r("llm_cost_usd_total", provider="openai", model="gpt-4o") == pytest.approx(0.0075)
    assert r("llm_tokens_total", provider="mystery", model="m1", type="prompt") == 10
    assert r.registry.get_sample_value("llm_cost_usd_total", {"provider": "mystery", "model": "m1",
                                                              "tenant": "none", "agent": "none"}) is None


async def test_llm_decorator_reads_usage_from_the_result(r):
    class Usage:
        prompt_tokens = 300
        completion_tokens = 100

    class Reply:
        usage = Usage()

    @track_llm("openai", "gpt-4o", prices=PRICES, metrics=r.metrics)
    async def chat_object():
        return Reply()

    @track_llm("openai", "gpt-4o", prices=PRICES, metrics=r.metrics)
    def chat_dict():
        return {"usage": {"prompt_tokens": 700, "completion_tokens": 0}}

    await chat_object()
    chat_dict()
    assert r("llm_requests_total", provider="openai", model="gpt-4o", status="success") == 2
    assert r("llm_tokens_total", provider="openai", model="gpt-4o", type="prompt") == 1000
    assert r("llm_tokens_total", provider="openai", model="gpt-4o", type="completion") == 100
    assert r("llm_cost_usd_total", provider="openai", model="gpt-4o") == pytest.approx(0.0035)


def test_price_table_fallback():
    assert PRICES.cost("local", "llama", 10**6, 10**6) == 0
    assert PRICES.cost("openai", "unknown", 1, 1) is None
    assert PRICES.cost("openai", "gpt-4o", 10**6, 0) == pytest.approx(2.5)


def test_caches(r):
    for hit in (True, True, False):
        record_cache("embeddings", hit, metrics=r.metrics)
    assert r("cache_hits_total", cache="embeddings") == 2
    assert r("cache_misses_total", cache="embeddings") == 1


def test_auth_events(r):
    m = r.metrics
    record_login("password", True, metrics=m)
    record_login("password", False, metrics=m)
    record_login("google", True, metrics=m)
    record_token_refresh("jwt", True, metrics=m)
    record_token_refresh("jwt", False, metrics=m)
    record_failed_attempt("bad_password", metrics=m)
    record_failed_attempt("bad_password", metrics=m)
    record_api_key_created(metrics=m)
    record_api_key_created(metrics=m)
    record_api_key_revoked(metrics=m)
    for auth_type in ("jwt", "jwt", "api_key", "none"):
        record_auth_request(auth_type, "user-1", metrics=m)
    assert r("auth_logins_total", provider="password", outcome="success") == 1
    assert r("auth_logins_total", provider="password", outcome="failure") == 1
    assert r("auth_logins_total", provider="google", outcome="success") == 1
    assert r("auth_token_refreshes_total", provider="jwt", outcome="failure") == 1
    assert r("auth_failed_attempts_total", reason="bad_password") == 2
    assert r("auth_api_keys_created_total") == 2
    assert r("auth_api_keys_revoked_total") == 1
    assert r("auth_requests_total", auth_type="jwt") == 2
    assert r("auth_requests_total", auth_type="none") == 1


async def test_websockets_and_queues(r):
    m = r.metrics
    with track_websocket(metrics=m):
        with track_websocket(metrics=m):
            assert r("websocket_connections") == 2
            record_websocket_message("in", metrics=m)
            await asyncio.sleep(0)
            record_websocket_message("out", metrics=m)
            record_websocket_message("out", metrics=m)
        assert r("websocket_connections") == 1
    assert r("websocket_connections") == 0
    assert r("websocket_messages_total", direction="in") == 1
    assert r("websocket_messages_total", direction="out") == 2
    set_queue_depth("ingest", 12, metrics=m)
    set_queue_depth("ingest", 3, metrics=m)
    assert r("queue_depth", queue="ingest") == 3


async def test_llm_counts_under_the_tenant_and_agent_of_the_context(r):
    @track_llm("openai", "gpt-4o", prices=PRICES, metrics=r.metrics)
    async def chat():
        return {"usage": {"prompt_tokens": 100, "completion_tokens": 10}}

    @track_agent("planner", metrics=r.metrics)
    async def planner():
        return await chat()

    with tenant_scope("acme"):
        await planner()                                    # tenant and agent from the context
        await chat()                                       # no agent running
    await planner()                                        # no tenant
    with track_llm("openai", "gpt-4o", prices=PRICES, tenant="globex", agent="writer",
                   metrics=r.metrics) as call:
        call.usage(prompt_tokens=1, completion_tokens=1)   # given explicitly

    def requests(tenant, agent):
        return r("llm_requests_total", provider="openai", model="gpt-4o", status="success",
                 tenant=tenant, agent=agent)
    assert [requests("acme", "planner"), requests("acme", "none"), requests("none", "planner"),
            requests("globex", "writer")] == [1, 1, 1, 1]
    assert r("llm_tokens_total", type="prompt", tenant="acme", agent="planner") == 100
    assert r("llm_tokens_total", type="completion", tenant="acme") == 20
    assert r("llm_cost_usd_total", tenant="acme", agent="planner") == pytest.approx(0.00035)
    assert r("llm_cost_usd_total", tenant="globex", agent="writer") == pytest.approx(0.0000125)
    assert current_tenant() is None and current_agent() is None  # both restored


def test_llm_tenant_and_agent_labels_stay_bounded_under_10000_tenants():
    registry = CollectorRegistry()
    metrics = Metrics(registry, cardinality=Cardinality(max_values={"tenant": 20}))
    for n in range(10_000):
        with track_llm("openai", "gpt-4o", prices=PRICES, tenant=f"tenant-{n}", agent=f"agent-{n % 80}",
                       metrics=metrics) as call:
            call.usage(prompt_tokens=1, completion_tokens=1)
    samples = [s for family in registry.collect() for s in family.samples if s.name == "llm_cost_usd_total"]
    tenants = {s.labels["tenant"] for s in samples}
    agents = {s.labels["agent"] for s in samples}
    assert len(tenants) == 21 and "other" in tenants        # 20 named, the rest "other"
    assert len(agents) == 51 and "other" in agents          # agent's default cap is 50
    total = sum(s.value for s in samples)
    assert total == pytest.approx(10_000 * 12.5 / 1e6)     # nothing lost in the overflow
    assert Cardinality().max_values("tenant") == 100
    assert Cardinality(default_max_values=10).max_values("tenant") == 10


def test_llm_reads_openai_and_anthropic_responses(r):
    openai_reply = SimpleNamespace(model="gpt-4o-2024-08-06",
                                   usage=SimpleNamespace(prompt_tokens=1000, completion_tokens=100))
    anthropic_reply = {"model": "claude-3-5-sonnet-20241022", "usage": {"input_tokens": 2000, "output_tokens": 50}}
    prices = PriceTable({("openai", "gpt-4o"): (2.5, 10), ("openai", "gpt-4o-mini"): (0.15, 0.6),
                         ("anthropic", "claude-3-5-sonnet"): (3, 15)})
    with track_llm("openai", "gpt-4o", prices=prices, metrics=r.metrics) as call:
        call.record_response(openai_reply)
    with track_llm("anthropic", "claude-3-5-sonnet", prices=prices, metrics=r.metrics) as call:
        call.record_response(anthropic_reply)
    assert r("llm_tokens_total", model="gpt-4o-2024-08-06", type="prompt") == 1000
    assert r("llm_cost_usd_total", model="gpt-4o-2024-08-06") == pytest.approx(0.0035)
    assert r("llm_tokens_total", model="claude-3-5-sonnet-20241022", type="completion") == 50
    assert r("llm_cost_usd_total", model="claude-3-5-sonnet-20241022") == pytest.approx(0.00675)
    assert prices.price("openai", "gpt-4o-mini-2024-07-18") == Price(0.15, 0.6)  # longest version prefix
    assert prices.price("openai", "gpt-4o1") is None


def test_agent_to_agent_context_retries_and_errors(r):
    record_agent_message("planner", "researcher", "task", 512, context_tokens=3000, retries=2, metrics=r.metrics)
    record_agent_message("planner", "researcher", "task", 256, error=TimeoutError(), metrics=r.metrics)
    with pytest.raises(KeyError):
        with track_agent("researcher", metrics=r.metrics):
            with track_message("task", source_agent="planner", metrics=r.metrics):
                raise KeyError("no such document")
    edge = dict(source_agent="planner", target_agent="researcher")
    assert r("agent_message_context_tokens_sum", **edge) == 3000
    assert r("agent_message_context_tokens_count", **edge) == 1
    assert r("agent_message_retries_total", message_type="task", **edge) == 2
    assert r("agent_message_errors_total", error_type="TimeoutError", **edge) == 1
    assert r("agent_message_errors_total", error_type="KeyError", **edge) == 1   # target: the agent running
    assert r("agent_messages_total", message_type="task", **edge) == 2


def test_agent_message_edges_stay_bounded_like_agents():
    """source_agent and target_agent are capped like agent (50, then "other"): the communication
    graph has at most 51 x 51 edges per message type, and no message is lost."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for n in range(200):
        record_agent_message(f"agent-{n}", f"agent-{n + 1}", "task", 100, context_tokens=10, retries=1,
                             error="TimeoutError", metrics=metrics)
    for family in ("agent_messages_total", "agent_message_size_bytes_count", "agent_message_context_tokens_count",
                   "agent_message_retries_total", "agent_message_errors_total"):
        samples = [s for f in registry.collect() for s in f.samples if s.name == family]
        for label in ("source_agent", "target_agent"):
            values = {s.labels[label] for s in samples}
            assert len(values) == 51 and "other" in values, (family, label, len(values))
        assert sum(s.value for s in samples) == 200, family
