"""The Redis collector against real redis-server processes."""
from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest

from vigil_exporter.collectors import redis_stats
from vigil_exporter.collectors.base import DISABLED, FAILING, OK, Check
from vigil_exporter.collectors.redis import RedisCollector
from vigil_exporter.tools.stack.process import free_port
from vigil_exporter.validation import Errors

DB = 7  # this module's own database on the shared server
SAMPLES = {
    "vigil_redis_up", "vigil_redis_ping_duration_seconds", "vigil_redis_connected_clients",
    "vigil_redis_blocked_clients", "vigil_redis_memory_used_bytes",
    "vigil_redis_memory_max_bytes", "vigil_redis_memory_fragmentation_ratio",
    "vigil_redis_commands_processed_total", "vigil_redis_keyspace_hits_total",
    "vigil_redis_keyspace_misses_total", "vigil_redis_evicted_keys_total",
    "vigil_redis_expired_keys_total", "vigil_redis_rejected_connections_total",
    "vigil_redis_db_keys", "vigil_redis_uptime_seconds", "vigil_redis_info",
    "vigil_redis_key_length",
}


def validate(section: dict) -> tuple[dict, list[str]]:
    errors = Errors()
    config = RedisCollector.config_schema.validate(section, "collectors.redis", errors)
    return config, [str(f) for f in errors.faults]


@pytest.fixture
async def make():
    made = []

    def build(instances: dict, **section) -> RedisCollector:
        config, faults = validate({"instances": instances, **section})
        assert faults == []
        made.append(RedisCollector(config))
        return made[-1]
    yield build
    for collector in made:
        await collector.close()


@pytest.fixture
def db(redis_server):
    client = redis.Redis(port=redis_server.port, db=DB, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def value(families, name: str, **labels):
    found = [s.value for f in families for s in f.samples
             if s.name == name and s.labels == {"redis": "main", **labels}]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def exposition(families) -> str:
    registry = CollectorRegistry()
    registry.register(type("Snapshot", (), {"collect": lambda self: families})())
    return generate_latest(registry).decode()


def fill_queues(db) -> dict[str, tuple[str, int]]:
    db.lpush("jobs", *range(5))
    for i in range(3):
        db.xadd("events", {"n": i})
    db.sadd("members", "a", "b", "c", "d")
    db.zadd("ranked", {"a": 1, "b": 2})
    db.hset("settings", mapping={"a": 1, "b": 2})
    return {"jobs": ("list", 5), "events": ("stream", 3), "members": ("set", 4),
            "ranked": ("zset", 2), "settings": ("hash", 2)}


async def test_every_family_present_with_plausible_values(make, redis_server, db):
    queues = fill_queues(db)
    keys = [{"key": "jobs", "type": "list"}] + [{"key": k} for k in queues if k != "jobs"]
    collector = make({"main": {"url": f"redis://127.0.0.1:{redis_server.port}/{DB}",
                               "keys": keys}})
    families = await collector.collect()
    features = {f.name for f in families if f.name + ("_total" if f.type == "counter" else "")
                in redis_stats.METRICS or f.name in redis_stats.METRICS}
    # the features' own families: tests/test_collector_redis_stats.py
    assert {s.name for f in families if f.name not in features for s in f.samples} == SAMPLES
    assert value(families, "vigil_redis_up") == 1
    assert 0 < value(families, "vigil_redis_ping_duration_seconds") < 1
    assert value(families, "vigil_redis_memory_used_bytes") > 0
    assert value(families, "vigil_redis_memory_max_bytes") == 0
    assert value(families, "vigil_redis_memory_fragmentation_ratio") > 0
    assert value(families, "vigil_redis_connected_clients") >= 1
    assert value(families, "vigil_redis_commands_processed_total") > 0
    assert value(families, "vigil_redis_db_keys", db=f"db{DB}") == len(queues)
    assert value(families, "vigil_redis_info", role="master",
                 version=db.info("server")["redis_version"],
                 maxmemory_policy=db.config_get("maxmemory-policy")["maxmemory-policy"]) == 1
    for key, (kind, length) in queues.items():
        assert value(families, "vigil_redis_key_length", key=key, type=kind) == length
    for family in families:
        assert family.documentation.endswith("Refreshed in the background every 15s.")
    check = collector.checks()[0]  # the instance; its features follow
    assert (check.name, check.status, check.critical) == ("redis:main", OK, False)
    assert check.latency_seconds > 0


async def test_counters_follow_the_server(make, redis_server, db):
    db.set("present", 1)
    collector = make({"main": {"url": redis_server.url}})
    before = await collector.collect()
    for _ in range(5):
        db.get("present")
        db.get("absent")
    after = await collector.collect()
    for name in ("vigil_redis_keyspace_hits_total", "vigil_redis_keyspace_misses_total"):
        assert value(after, name) - value(before, name) >= 5
    assert value(after, "vigil_redis_commands_processed_total") >= \
        value(before, "vigil_redis_commands_processed_total") + 10


async def test_key_lengths_are_capped_and_follow_the_queue(make, redis_server, db, caplog):
    fill_queues(db)
    db.set("plain", "x")
    url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    keys = [{"key": k} for k in ("jobs", "events", "members", "ranked")]
    collector = make({"main": {"url": url, "keys": keys}}, max_keys=2)
    families = await collector.collect()
    assert {s.labels["key"] for f in families for s in f.samples
            if s.name == "vigil_redis_key_length"} == {"jobs", "events"}
    assert any("max_keys" in r.getMessage() for r in caplog.records)

    keys = [{"key": "jobs"}, {"key": "later", "type": "list"}, {"key": "plain"},
            {"key": "members", "type": "list"}]
    collector = make({"main": {"url": url, "keys": keys}})
    with caplog.at_level(logging.WARNING):
        families = await collector.collect()
        db.delete("jobs")  # a drained queue disappears: its length is 0, not absent
        families = await collector.collect()
    assert value(families, "vigil_redis_key_length", key="jobs", type="list") == 0
    assert value(families, "vigil_redis_key_length", key="later", type="list") == 0
    lengths = [s.labels["key"] for f in families for s in f.samples
               if s.name == "vigil_redis_key_length"]
    assert sorted(lengths) == ["jobs", "later"]  # a string has no length; a wrong type is skipped
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "key plain failing: a string has no length" in logged and "WRONGTYPE" in logged
    assert value(families, "vigil_redis_up") == 1


async def test_a_stopped_redis_is_up_0_then_back(make, redis_isolated, caplog):
    collector = make({"main": {"url": redis_isolated.url, "socket_timeout": "1s"}})
    assert value(await collector.collect(), "vigil_redis_up") == 1
    redis_isolated.stop()
    with caplog.at_level(logging.INFO, logger="vigil.collectors.redis"):
        for _ in range(3):
            start = time.monotonic()
            families = await collector.collect()
            assert time.monotonic() - start < 1.5
            assert value(families, "vigil_redis_up") == 0
            assert [f.name for f in families] == ["vigil_redis_up"]
        check = collector.checks()[0]
        assert check.status == FAILING and "ConnectionError" in check.message
        redis_isolated.start()
        families = await collector.collect()
    assert value(families, "vigil_redis_up") == 1
    assert value(families, "vigil_redis_uptime_seconds") < 60
    assert collector.checks()[0].status == OK
    # One line per cause ("closed by server", then "connection refused"), not one per round.
    *failing, recovered = [r.getMessage() for r in caplog.records]
    assert 1 <= len(failing) <= 2 and len(set(failing)) == len(failing), failing
    assert all(m.startswith("redis:main failing: ConnectionError") for m in failing)
    assert recovered == "redis:main recovered"
    assert "Traceback" not in caplog.text


async def test_a_silent_redis_times_out_and_the_others_are_served(make, redis_server):
    with socket.socket() as silent:
        port = free_port()
        silent.bind(("127.0.0.1", port))
        silent.listen()  # accepts connections, never answers
        collector = make({"main": {"url": redis_server.url},
                          "silent": {"url": f"redis://127.0.0.1:{port}/0",
                                     "socket_timeout": "0.5s"}})
        start = time.monotonic()
        families = await collector.collect()
        assert time.monotonic() - start < 1.0
    ups = {s.labels["redis"]: s.value for f in families for s in f.samples
           if s.name == "vigil_redis_up"}
    assert ups == {"main": 1, "silent": 0}
    checks = {c.name: c for c in collector.checks()}
    assert checks["redis:silent"].status == FAILING
    assert checks["redis:silent"].message == "timed out"
    assert checks["redis:main"].status == OK


async def test_a_paused_redis_times_out_and_the_next_round_reads_true_values(make,
                                                                             redis_isolated):
    admin = redis.Redis(port=redis_isolated.port)
    admin.lpush("jobs", 1, 2, 3)
    collector = make({"main": {"url": redis_isolated.url, "socket_timeout": "0.3s",
                               "keys": [{"key": "jobs"}]}})
    await collector.collect()
    admin.client_pause(600, all=True)  # the server holds every reply back for 0.6 s
    start = time.monotonic()
    assert value(await collector.collect(), "vigil_redis_up") == 0
    assert time.monotonic() - start < 0.5
    assert collector.checks()[0].message == "timed out"
    await asyncio.sleep(0.4)
    # The abandoned connection is not reused: no late reply is read as the answer to another
    # command.
    families = await collector.collect()
    admin.close()
    assert value(families, "vigil_redis_up") == 1
    assert value(families, "vigil_redis_key_length", key="jobs", type="list") == 3
    assert value(families, "vigil_redis_connected_clients") == 2


async def test_passwords_never_show(make, redis_server, caplog):
    secret = "s3cret-Pw-42"
    admin = redis.Redis(port=redis_server.port)
    admin.acl_setuser("vigil-test", enabled=True, passwords=[f"+{secret}"], keys=["*"],
                      commands=["+@all"])
    instances = {
        "main": {"url": f"redis://vigil-test:{secret}@127.0.0.1:{redis_server.port}/0",
                 "keys": [{"key": "jobs"}]},
        "wrong": {"url": f"redis://vigil-test:{secret}x@127.0.0.1:{redis_server.port}/0"},
        "gone": {"url": f"redis://:{secret}@127.0.0.1:{free_port()}/0"},
    }
    try:
        with caplog.at_level(logging.DEBUG):
            collector = make(instances, max_keys=0)
            families = await collector.collect()
            await collector.collect()
    finally:
        admin.acl_deluser("vigil-test")
        admin.close()
    assert value(families, "vigil_redis_up") == 1
    checks = {c.name: c for c in collector.checks()}
    assert checks["redis:wrong"].status == checks["redis:gone"].status == FAILING
    records = " ".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "redis:wrong failing" in records and "***" in records
    for text in (exposition(families), records, caplog.text, repr(collector.checks())):
        assert secret not in text


async def test_not_configured_is_off_and_says_so():
    config, faults = validate({})
    collector = RedisCollector(config)
    assert faults == [] and collector.jobs() == []
    assert await collector.collect() == []
    assert collector.checks() == [Check("redis", DISABLED, "not configured")]
    await collector.close()


@pytest.mark.parametrize("instance, fault", [
    ({"url": "http://:hunter2@example/0"},
     "collectors.redis.instances.main.url: expected a URL starting with redis://"),
    ({"url": "redis://x", "socket_timeout": "5s"},
     "collectors.redis.instances.main.socket_timeout: must be shorter than"),
    ({"url": "redis://x", "keys": [{"key": "q", "type": "string"}]},
     'collectors.redis.instances.main.keys[0].type: expected one of "list"'),
    ({"url": "redis://x", "keys": [{"name": "q"}]},
     "collectors.redis.instances.main.keys[0].name: unknown key"),
    ({}, "collectors.redis.instances.main.url: is required"),
])
def test_config_faults_name_the_key(instance, fault):
    _, faults = validate({"instances": {"main": instance}})
    assert faults and faults[0].startswith(fault), faults
    assert "hunter2" not in " ".join(faults)


async def test_promtool_accepts_the_exposition(make, redis_server, db):
    fill_queues(db)
    collector = make({"main": {"url": f"redis://127.0.0.1:{redis_server.port}/{DB}",
                               "keys": [{"key": "jobs"}, {"key": "events"}]},
                      "down": {"url": f"redis://127.0.0.1:{free_port()}/0"}})
    text = exposition(await collector.collect())
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                            text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
