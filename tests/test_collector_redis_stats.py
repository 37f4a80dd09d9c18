"""The Redis features (replication, slowlog, commandstats, latencystats, key patterns) against a
real primary and its replica (`redis_pair`, made with `replicaof`)."""
from __future__ import annotations

import pytest
import redis

from tests.test_collector_redis import validate
from vigil_exporter.collectors import redis_stats
from vigil_exporter.collectors.base import DEGRADED, OK
from vigil_exporter.collectors.features import NotAvailable
from vigil_exporter.collectors.redis import RedisCollector
from vigil_exporter.collectors.redis_stats.commands import LatencyStats
from vigil_exporter.tools.stack.process import free_port, wait_until

OFF = {key: {"enabled": False} for key in ("replication", "slowlog", "commandstats",
                                           "latencystats", "key_patterns")}


@pytest.fixture
async def collect():
    """`await collect(url, **instance)`: a collector of one instance "main", one round;
    returns (samples {(name, labels...): value}, collector); closed at the end."""
    made = []

    async def run(url: str, rounds: int = 1, collector=None, **instance):
        if collector is None:
            config, faults = validate({"instances": {"main": {"url": url, **instance}}})
            assert faults == []
            collector = RedisCollector(config)
            made.append(collector)
        for _ in range(rounds):
            families = await collector.collect()
        found = {(s.name, *sorted((k, v) for k, v in s.labels.items() if k != "redis")): s.value
                 for f in families for s in f.samples}
        return found, collector
    yield run
    for collector in made:
        await collector.close()


def checks(collector) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.message) for c in collector.checks()}


def client(server, db: int = 0) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, db=db, decode_responses=True)


async def test_replication_on_both_ends(redis_pair, collect):
    primary, replica = client(redis_pair.primary), client(redis_pair.replica)
    address = f"127.0.0.1:{redis_pair.replica.port}"
    wait_until(lambda: primary.info("replication").get("slave0", {}).get("state") == "online",
               10)
    # the replica stops applying the stream for 2 s (UNPAUSE would wait for it too)
    replica.execute_command("CLIENT", "PAUSE", 2000, "ALL")
    primary.set("replicated:big", "x" * 200_000)
    lagging, collector = await collect(redis_pair.primary.url, **{**OFF, "replication": {}})
    assert lagging[("vigil_redis_connected_replicas",)] == 1
    assert lagging[("vigil_redis_replica_online", ("replica", address))] == 1
    assert lagging[("vigil_redis_replica_lag_bytes", ("replica", address))] > 100_000
    assert lagging[("vigil_redis_replication_offset_bytes",)] > 200_000
    assert lagging[("vigil_redis_replica_lag_seconds", ("replica", address))] >= 0
    assert role(lagging) == "master"
    assert checks(collector)["redis:main:replication"][0] == OK
    wait_until(lambda: replica.get("replicated:big") is not None, 10)
    on_replica, _ = await collect(redis_pair.replica.url, **{**OFF, "replication": {}})
    assert on_replica[("vigil_redis_master_link_up",)] == 1
    assert on_replica[("vigil_redis_master_sync_in_progress",)] == 0
    assert on_replica[("vigil_redis_master_last_io_seconds",)] >= 0
    assert on_replica[("vigil_redis_replication_offset_bytes",)] > 200_000
    assert role(on_replica) == "slave"
    assert ("vigil_redis_replica_lag_bytes", ("replica", address)) not in on_replica


def role(found) -> str:
    """The role label of vigil_redis_info (the base collector's, besides the features)."""
    (info,) = [dict(k[1:]) for k in found if k[0] == "vigil_redis_info"]
    return info["role"]


async def test_replica_link_down(redis_isolated, collect):
    client(redis_isolated).replicaof("127.0.0.1", free_port())  # a primary that is not there
    found, _ = await collect(redis_isolated.url, **{**OFF, "replication": {}})
    assert found[("vigil_redis_master_link_up",)] == 0
    assert ("vigil_redis_master_last_io_seconds",) not in found


async def test_slowlog_counts_new_entries_across_a_reset(redis_pair, collect):
    primary = client(redis_pair.primary)
    primary.config_set("slowlog-log-slower-than", 0)  # every command is slow
    try:
        before, collector = await collect(redis_pair.primary.url, **{**OFF, "slowlog": {}})
        for i in range(5):
            primary.set(f"slow:{i}", i)
        primary.slowlog_reset()
        primary.set("slow:after-reset", 1)
        after, _ = await collect(None, collector=collector)
    finally:
        primary.config_set("slowlog-log-slower-than", 10000)
    entries = ("vigil_redis_slowlog_entries_total",)
    assert after[entries] - before[entries] >= 7  # 5 SETs, the reset, a SET (and our own)
    assert after[("vigil_redis_slowlog_length",)] < after[entries]
    assert after[("vigil_redis_slowlog_last_duration_seconds",)] >= 0


async def test_commandstats_bounded_and_latency_percentiles(redis_pair, collect):
    primary = client(redis_pair.primary)
    for i in range(200):
        primary.set(f"cmd:{i}", i)
    found, collector = await collect(redis_pair.primary.url, **{
        **OFF, "commandstats": {"limit": 3}, "latencystats": {"limit": 3}})
    calls = {dict(k[1:])["command"]: v for k, v in found.items()
             if k[0] == "vigil_redis_command_calls_total"}
    assert len(calls) == 3 and calls["set"] >= 200
    assert found[("vigil_redis_command_duration_seconds_total", ("command", "set"))] > 0
    assert found[("vigil_redis_command_errors_total", ("command", "set"))] == 0
    percentiles = {dict(k[1:])["percentile"] for k in found
                 if k[0] == "vigil_redis_command_latency_seconds"
                 and dict(k[1:])["command"] == "set"}
    assert percentiles == {"50", "99", "99.9"}
    assert {dict(k[1:])["command"] for k in found
            if k[0] == "vigil_redis_command_latency_seconds"} <= set(calls)
    assert checks(collector)["redis:main:latencystats"][0] == OK


async def test_latency_tracking_off_is_not_available(redis_isolated, collect):
    client(redis_isolated).config_set("latency-tracking", "no")
    client(redis_isolated).config_resetstat()
    found, collector = await collect(redis_isolated.url, **{**OFF, "latencystats": {}})
    status, message = checks(collector)["redis:main:latencystats"]
    assert status == DEGRADED and "latency-tracking yes" in message
    assert not any(k[0] == "vigil_redis_command_latency_seconds" for k in found)


async def test_latencystats_need_redis_7(redis_pair):
    from vigil_exporter.collectors.redis_stats.source import RedisSource
    with pytest.raises(NotAvailable, match="Redis 7 .this is 6.2.14"):
        await LatencyStats({"limit": 3}).read(RedisSource(None, {"redis_version": "6.2.14"}))


async def test_missing_permission_is_not_available(redis_isolated, collect):
    client(redis_isolated).acl_setuser("limited", enabled=True, nopass=True, keys=["*"],
                                       commands=["+@all", "-slowlog"])
    url = f"redis://limited@{redis_isolated.address}/0"
    found, collector = await collect(url, **{**OFF, "slowlog": {}, "commandstats": {}})
    status, message = checks(collector)["redis:main:slowlog"]
    assert status == DEGRADED and "lacks a permission" in message, message
    assert checks(collector)["redis:main:commandstats"][0] == OK
    assert ("vigil_redis_slowlog_length",) not in found


async def test_key_patterns_scan_within_a_budget_over_rounds(redis_pair, collect):
    keys = client(redis_pair.primary, db=5)
    keys.flushdb()
    with keys.pipeline() as pipe:
        for i in range(1000):
            pipe.set(f"session:{i}", 1)
        pipe.set("other", 1)
        pipe.execute()
    config = {**OFF, "key_patterns": {"patterns": ["session:*", "missing:*"],
                                      "scan_budget": "1ms", "scan_count": 10}}
    url = redis_pair.primary.url.rsplit("/", 1)[0] + "/5"
    found, collector = await collect(url, **config)
    rounds = 1
    while not all(("vigil_redis_pattern_keys", ("pattern", p)) in found
                  for p in ("session:*", "missing:*")):
        found, _ = await collect(None, collector=collector)
        rounds += 1
        assert rounds < 500
    assert rounds > 1  # the budget spread the pass over several rounds
    assert found[("vigil_redis_pattern_keys", ("pattern", "session:*"))] == 1000
    assert found[("vigil_redis_pattern_keys", ("pattern", "missing:*"))] == 0
    assert found[("vigil_redis_pattern_scan_duration_seconds", ("pattern", "session:*"))] > 0
    assert "cmdstat_keys" not in client(redis_pair.primary).info("commandstats")
    assert collector.instances[0].features.features[0].script not in (None, False)  # Lua count
    keys.flushdb()


async def test_down_instance_leaves_features_unread(collect):
    _, collector = await collect(f"redis://127.0.0.1:{free_port()}/0")
    status, message = checks(collector)["redis:main:slowlog"]
    assert status == DEGRADED and message.startswith("not read")


def test_scan_budget_must_fit_the_socket_timeout():
    _, faults = validate({"instances": {"main": {
        "url": "redis://h:6379/0", "socket_timeout": "1s",
        "key_patterns": {"patterns": ["a:*"], "scan_budget": "2s"}}}})
    assert faults == ["collectors.redis.instances.main.key_patterns.scan_budget: must be "
                      "shorter than the instance's socket_timeout (1s)"]


async def test_every_feature_can_be_turned_off(redis_pair, collect):
    def features_in(found) -> set[str]:
        return {k[0].removesuffix("_total") for k in found} & set(redis_stats.METRICS)

    everything, collector = await collect(redis_pair.primary.url)
    assert "vigil_redis_slowlog_length" in features_in(everything)  # on by default
    assert "redis:main:slowlog" in checks(collector)
    nothing, collector = await collect(redis_pair.primary.url, **OFF)
    assert features_in(nothing) == set()
    assert [name for name in checks(collector) if name.startswith("redis:main:")] == []
    assert nothing[("vigil_redis_up",)] == 1


def test_features_declare_their_metrics_once():
    names = [name for cls in redis_stats.FEATURES for name in cls.metrics]
    assert len(names) == len(set(names))


async def test_key_patterns_fall_back_to_scan_without_scripting(redis_isolated, collect):
    """An ACL user that may not run scripts still gets its counts, from plain SCAN."""
    admin = client(redis_isolated)
    admin.acl_setuser("noscript", enabled=True, nopass=True, keys=["*"],
                      commands=["+@all", "-@scripting"])
    admin.mset({f"job:{i}": 1 for i in range(25)})
    url = f"redis://noscript@{redis_isolated.address}/0"
    found, collector = await collect(url, **{**OFF, "key_patterns": {"patterns": ["job:*"]}})
    assert found[("vigil_redis_pattern_keys", ("pattern", "job:*"))] == 25
    assert collector.instances[0].features.features[0].script is False
