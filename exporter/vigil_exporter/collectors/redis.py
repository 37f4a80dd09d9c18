"""Redis collector: health, INFO figures and queue lengths of named Redis servers (redis-py).

A Redis that is down or silent is not a failure of the collector: its `vigil_redis_up` is 0 and
every other instance is still served. Each instance keeps one client (a connection pool that
reconnects by itself) and one round of it never takes longer than its `socket_timeout`.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from vigil_exporter.collectors import redis_stats
from vigil_exporter.collectors.base import (
    DEGRADED,
    DISABLED,
    FAILING,
    OK,
    Check,
    Collector,
    Job,
    collector_schema,
    refreshed_every,
)
from vigil_exporter.collectors.families import Families
from vigil_exporter.collectors.features import FeatureSet, build
from vigil_exporter.logs import FailureLog, describe_error, redact_url
from vigil_exporter.validation import Duration, Errors, Int, List, Map, Object, Str

log = logging.getLogger("vigil.collectors.redis")

# The command that measures a key of each type.
LENGTH = {"list": "llen", "stream": "xlen", "set": "scard", "zset": "zcard", "hash": "hlen"}
SCHEMES = ("redis://", "rediss://", "unix://")


class InfoFigure(NamedTuple):
    """A single-valued INFO field, served as vigil_redis_<name> (a counter with `_total`)."""

    kind: str  # "gauge" or "counter"
    name: str
    help: str
    field: str = ""  # the INFO field, when it is not `name`


INFO_FIGURES = [
    InfoFigure("gauge", "connected_clients", "Client connections, replicas excluded."),
    InfoFigure("gauge", "blocked_clients", "Clients waiting in a blocking call (BLPOP, ...)."),
    InfoFigure("gauge", "memory_used_bytes", "Memory allocated by Redis.", "used_memory"),
    InfoFigure("gauge", "memory_max_bytes", "The maxmemory limit (0 = no limit).", "maxmemory"),
    InfoFigure("gauge", "memory_fragmentation_ratio", "Memory held from the system divided by "
               "memory allocated (above 1.5: fragmented).", "mem_fragmentation_ratio"),
    InfoFigure("gauge", "uptime_seconds", "Seconds since the Redis server started.",
               "uptime_in_seconds"),
    InfoFigure("counter", "commands_processed", "Commands processed by the server.",
               "total_commands_processed"),
    InfoFigure("counter", "keyspace_hits", "Key lookups that found the key."),
    InfoFigure("counter", "keyspace_misses", "Key lookups that did not find the key."),
    InfoFigure("counter", "evicted_keys", "Keys evicted because of the maxmemory limit."),
    InfoFigure("counter", "expired_keys", "Keys deleted because their time to live ran out."),
    InfoFigure("counter", "rejected_connections",
               "Connections refused because of the maxclients limit."),
]


INSTANCE = Object({
    "url": Str(help="redis://[[user]:password@]host:port/db, rediss:// for TLS, or "
                    "unix:///path/to/socket. The password is never shown."),
    "socket_timeout": Duration("2s", "Longest wait for one round of this instance (connect, "
                                     "PING, INFO, key lengths); shorter than the collector's "
                                     "timeout."),
    "keys": List(Object({
        "key": Str(help="Key name, e.g. a queue."),
        "type": Str(None, "Its type; detected with TYPE when unset.", choices=tuple(LENGTH)),
    }), [], "Keys whose length is exported as vigil_redis_key_length."),
    **{feature.key: feature.schema() for feature in redis_stats.FEATURES},
})


def _check(section: dict, path: str, errors: Errors) -> None:
    prefix = f"{path}.instances" if path else "instances"
    for name, instance in section["instances"].items():
        if not instance["url"].startswith(SCHEMES):
            errors.add(f"{prefix}.{name}.url", "expected a URL starting with "
                                               + ", ".join(SCHEMES))
        elif (fault := url_fault(instance["url"])) is not None:
            errors.add(f"{prefix}.{name}.url", fault)
        if instance["socket_timeout"] >= section["timeout"]:
            errors.add(f"{prefix}.{name}.socket_timeout", "must be shorter than the "
                       f"collector's timeout ({section['timeout']:g}s)")
        if instance["key_patterns"]["scan_budget"] >= instance["socket_timeout"]:
            errors.add(f"{prefix}.{name}.key_patterns.scan_budget", "must be shorter than "
                       f"the instance's socket_timeout ({instance['socket_timeout']:g}s)")


def url_fault(url: str) -> str | None:
    """What redis-py would refuse in `url` when the exporter starts, in words that never repeat
    the URL (its message quotes a piece of it, which may be a piece of the password)."""
    import redis.asyncio as aioredis

    try:
        aioredis.ConnectionPool.from_url(url)
    except ValueError as exc:
        what = "the port is not a whole number from 0 to 65535" if "Port" in str(exc) \
            else "redis-py cannot parse it"
        return (f"not a usable Redis URL: {what} (a password holding /, @ or : must be "
                "percent-encoded, e.g. %2F)")
    return None


@dataclass
class Sample:
    """What one round learnt about one instance; `info` is empty when it is down."""

    up: bool = False
    ping: float = 0.0
    info: dict = field(default_factory=dict)
    lengths: list[tuple[str, str, int]] = field(default_factory=list)  # key, type, length
    features: list = field(default_factory=list)  # samples of the features (redis_stats)


class Instance:
    def __init__(self, name: str, config: dict, max_keys: int, failures: FailureLog):
        self.name, self.failures = name, failures
        self.url = redact_url(config["url"])
        self.timeout = config["socket_timeout"]
        self.keys = config["keys"][:max_keys]
        if len(config["keys"]) > max_keys:
            log.warning("redis:%s: %d keys configured, only the first %d are measured "
                        "(max_keys)", name, len(config["keys"]), max_keys)
        self.types: dict[str, str] = {}  # last type seen of each auto-detected key
        self.check = Check(f"redis:{name}", DEGRADED, "not checked yet")
        self.features = FeatureSet(f"redis:{name}", build(redis_stats.FEATURES, config),
                                   failures)
        # Imported here, so an exporter without Redis never loads redis-py (about 6 MiB).
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # One retry: a pooled connection the server closed (a restart, CLIENT KILL, Redis's
        # idle `timeout`) is replaced at once. The asyncio client needs the asyncio Retry:
        # given the synchronous one it never retries.
        self.client = aioredis.Redis.from_url(
            config["url"], socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 1), decode_responses=True, client_name="vigil")

    async def poll(self) -> Sample:
        try:
            sample = await asyncio.wait_for(self._poll(), self.timeout)
        except Exception as exc:  # noqa: BLE001 - a dead Redis is a value (up 0), not an error
            cause = describe_error(exc)
            self.failures.failed(self.check.name, cause, url=self.url)
            self.check = Check(self.check.name, FAILING, cause)
            self.features.mark_unreachable(cause)
            return Sample()
        self.failures.recovered(self.check.name, url=self.url)
        self.check = Check(self.check.name, OK, f"Redis {sample.info.get('redis_version')} "
                           f"({sample.info.get('role')})", sample.ping)
        return sample

    async def _poll(self) -> Sample:
        start = time.perf_counter()
        await self.client.ping()
        ping = time.perf_counter() - start
        info = await self.client.info()
        lengths = await self._lengths() if self.keys else []
        features = await self.features.read(redis_stats.RedisSource(self.client, info))
        return Sample(True, ping, info, lengths, features)

    async def _lengths(self) -> list[tuple[str, str, int]]:
        detect = [k["key"] for k in self.keys if not k["type"]]
        if detect:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in detect:
                    pipe.type(key)
                for key, kind in zip(detect, await pipe.execute()):
                    # "none": a drained queue is gone; its last known type then reads 0.
                    if kind in LENGTH:
                        self.types[key] = kind
                    elif kind != "none":
                        self.types.pop(key, None)
                        self.failures.failed(f"{self.check.name} key {key}",
                                             f"a {kind} has no length")
        measured = [(k["key"], k["type"] or self.types.get(k["key"])) for k in self.keys]
        measured = [(key, kind) for key, kind in measured if kind in LENGTH]
        async with self.client.pipeline(transaction=False) as pipe:
            for key, kind in measured:
                getattr(pipe, LENGTH[kind])(key)
            lengths = await pipe.execute(raise_on_error=False)
        result = []
        for (key, kind), length in zip(measured, lengths):
            if isinstance(length, Exception):  # e.g. WRONGTYPE: the configured type is wrong
                self.failures.failed(f"{self.check.name} key {key}", describe_error(length))
            else:
                self.failures.recovered(f"{self.check.name} key {key}")
                result.append((key, kind, length))
        return result


class RedisCollector(Collector):
    name = "redis"
    config_schema = collector_schema("15s", "5s", {
        "instances": Map(INSTANCE, {}, "Named Redis servers; the name is the `redis` label. "
                                       "None configured: the collector is off."),
        "max_keys": Int(50, "Most keys measured per instance; the rest are ignored.",
                        minimum=0),
    }, check=_check)

    def __init__(self, config: dict):
        super().__init__(config)
        self.every = refreshed_every(config['interval'])
        failures = FailureLog(log)
        self.instances = [Instance(name, c, config["max_keys"], failures)
                          for name, c in config["instances"].items()]

    def jobs(self) -> list[Job]:
        return super().jobs() if self.instances else []

    def checks(self) -> list[Check]:
        if not self.instances:
            return [Check("redis", DISABLED, "not configured")]
        return [check for instance in self.instances
                for check in (instance.check, *instance.features.checks())]

    async def close(self) -> None:
        await asyncio.gather(*(i.client.aclose() for i in self.instances),
                             return_exceptions=True)

    async def collect(self) -> list[Metric]:
        if not self.instances:
            return []
        samples = await asyncio.gather(*(i.poll() for i in self.instances))
        every, label = self.every, ["redis"]

        def gauge(name, text, labels=label):
            return GaugeMetricFamily(f"vigil_redis_{name}", text + every, labels=labels)

        def info_family(figure: InfoFigure):
            if figure.kind == "counter":
                return CounterMetricFamily(f"vigil_redis_{figure.name}", figure.help + every,
                                           labels=label)
            return gauge(figure.name, figure.help)

        up = gauge("up", "1 if the Redis server answered the last round, else 0.")
        ping = gauge("ping_duration_seconds", "Round trip of a PING.")
        figures = [(info_family(f), f.field or f.name) for f in INFO_FIGURES]
        db_keys = gauge("db_keys", "Keys in the database.", ["redis", "db"])
        info = gauge("info", "Role, version and maxmemory-policy of the Redis server; always 1.",
                     ["redis", "role", "version", "maxmemory_policy"])
        length = gauge("key_length", "Length of the configured key (list, stream, set, sorted "
                       "set or hash; 0 when it does not exist).", ["redis", "key", "type"])
        for instance, sample in zip(self.instances, samples):
            name = instance.name
            up.add_metric([name], 1.0 if sample.up else 0.0)
            if not sample.up:
                continue
            ping.add_metric([name], sample.ping)
            for family, field_ in figures:
                if field_ in sample.info:
                    family.add_metric([name], float(sample.info[field_]))
            for db, stats in sample.info.items():
                if re.fullmatch(r"db\d+", db) and isinstance(stats, dict):
                    db_keys.add_metric([name, db], stats.get("keys", 0))
            info.add_metric([name, str(sample.info.get("role", "")),
                             str(sample.info.get("redis_version", "")),
                             str(sample.info.get("maxmemory_policy", ""))], 1.0)
            for key, kind, value in sample.lengths:
                length.add_metric([name, key, kind], value)
        features = Families(redis_stats.METRICS, "redis", self.config["interval"])
        for instance, sample in zip(self.instances, samples):
            features.add_samples(instance.name, sample.features)
        families = [up, ping, *(f for f, _ in figures), db_keys, info, length]
        return [f for f in families if f.samples] + features.result()
