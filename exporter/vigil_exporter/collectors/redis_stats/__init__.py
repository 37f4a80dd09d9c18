"""Redis beyond INFO's single figures: one module per feature, each read with the instance's
client and the round's INFO (`RedisSource`).

| feature (config key) | module | costs the server |
|---|---|---|
| `replication` | role, replicas, link, offset lag | nothing (INFO) |
| `slowlog` | length and new entries | SLOWLOG LEN, SLOWLOG GET 1 |
| `commandstats` | calls, time and errors per command | INFO commandstats |
| `latencystats` | latency percentiles per command (Redis 7) | INFO latencystats |
| `key_patterns` | key counts per pattern | SCAN within a time budget per round |
"""
from __future__ import annotations

from vigil_exporter.collectors.features import all_metrics
from vigil_exporter.collectors.redis_stats.commands import CommandStats, LatencyStats
from vigil_exporter.collectors.redis_stats.keys import KeyPatterns
from vigil_exporter.collectors.redis_stats.replication import Replication
from vigil_exporter.collectors.redis_stats.slowlog import Slowlog
from vigil_exporter.collectors.redis_stats.source import RedisFeature, RedisSource

FEATURES: list[type[RedisFeature]] = [Replication, Slowlog, CommandStats, LatencyStats,
                                      KeyPatterns]
METRICS = all_metrics(FEATURES)

__all__ = ["FEATURES", "METRICS", "RedisSource"]
