"""redis-py instrumentation (sync and asyncio) against a real redis-server."""
from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio
from prometheus_client import CollectorRegistry

from vigil_instrument import Metrics, instrument_redis
from vigil_instrument.redis import command_label


class Samples:
    def __init__(self, client: str):
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.client = client

    def ops(self, command, status="success"):
        return self.registry.get_sample_value(
            "redis_client_operations_total", {"client": self.client, "command": command, "status": status}) or 0.0

    def timed(self, command):
        return self.registry.get_sample_value(
            "redis_client_operation_duration_seconds_count", {"client": self.client, "command": command}) or 0.0

    def active(self):
        return self.registry.get_sample_value("redis_client_connections_active", {"client": self.client})


def test_command_label_is_bounded():
    assert command_label("GET") == "GET"
    assert command_label(b"hset") == "HSET"
    assert command_label("CLIENT SETNAME") == "CLIENT"
    assert command_label("MY.CUSTOM.MODULE.CMD") == "other"
    assert command_label("x" * 100) == "other"


def test_sync_client(redis_server):
    s = Samples("cache")
    client = redis.Redis.from_url(redis_server.url)
    instrument_redis(client, "cache", metrics=s.metrics)
    with pytest.raises(ValueError, match="already instrumented"):
        instrument_redis(client, "cache", metrics=s.metrics)
    try:
        client.set("vigil:instr:k", "v")
        assert client.get("vigil:instr:k") == b"v"
        client.get("vigil:instr:missing")
        client.execute_command("OBJECT", "ENCODING", "vigil:instr:k")
        with pytest.raises(redis.ResponseError):
            client.execute_command("NO.SUCH.COMMAND")
        with pytest.raises(redis.ResponseError):
            client.lpush("vigil:instr:k", "x")  # WRONGTYPE
        with client.pipeline() as pipe:
            pipe.incr("vigil:instr:n").incr("vigil:instr:n").delete("vigil:instr:n")
            assert pipe.execute() == [1, 2, 1]
        assert s.active() == 0
        pubsub_conn = client.connection_pool.get_connection()
        assert s.active() == 1
        client.connection_pool.release(pubsub_conn)
        assert s.active() == 0
    finally:
        client.delete("vigil:instr:k")
        client.close()

    assert s.ops("SET") == 1
    assert s.ops("GET") == 2 and s.timed("GET") == 2
    assert s.ops("OBJECT") == 1
    assert s.ops("other", "error") == 1
    assert s.ops("LPUSH", "error") == 1
    assert s.ops("PIPELINE") == 1
    assert s.ops("INCR") == 0  # inside the pipeline: one round trip, one operation


async def test_async_client_and_active_connections(redis_server):
    s = Samples("queue")
    client = redis.asyncio.Redis.from_url(redis_server.url)
    instrument_redis(client, "queue", metrics=s.metrics)
    blocker = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await client.delete("vigil:instr:q")
        waiting = [asyncio.create_task(client.blpop(["vigil:instr:q"], timeout=5)) for _ in range(3)]
        for _ in range(100):
            if s.active() == 3:
                break
            await asyncio.sleep(0.01)
        assert s.active() == 3  # three connections blocked in BLPOP
        await blocker.rpush("vigil:instr:q", "a", "b", "c")
        popped = await asyncio.gather(*waiting)
        assert sorted(value for _, value in popped) == [b"a", b"b", b"c"]
        assert s.active() == 0
        await client.hset("vigil:instr:h", mapping={"a": 1})
        assert await client.hgetall("vigil:instr:h") == {b"a": b"1"}
        async with client.pipeline(transaction=True) as pipe:
            await pipe.set("vigil:instr:x", 1).get("vigil:instr:x").execute()
        await client.delete("vigil:instr:h", "vigil:instr:x")
    finally:
        await client.aclose()
        await blocker.aclose()

    assert s.ops("BLPOP") == 3 and s.timed("BLPOP") == 3
    assert s.ops("HSET") == 1 and s.ops("HGETALL") == 1
    assert s.ops("PIPELINE") == 1
    assert s.ops("DEL") == 2
    assert s.active() == 0
