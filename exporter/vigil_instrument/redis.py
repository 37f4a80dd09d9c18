"""redis-py client instrumentation, sync (`redis.Redis`) and asyncio (`redis.asyncio.Redis`).

    client = redis.asyncio.Redis.from_url(url)
    instrument_redis(client, name="cache", metrics=metrics)

Each command counts in `redis_client_operations_total{client,command,status}` and
`redis_client_operation_duration_seconds{client,command}`; a pipeline's execute() is one
operation with command="PIPELINE". The command label is bounded: commands outside
`KNOWN_COMMANDS` are recorded as "other". `redis_client_connections_active{client}` is the
number of connections checked out of the client's pool right now.
"""
from __future__ import annotations

import inspect
from time import perf_counter

from .metrics import Metrics, resolve

KNOWN_COMMANDS = frozenset("""
    APPEND AUTH BITCOUNT BLMOVE BLPOP BRPOP BZPOPMIN BZPOPMAX CLIENT CLUSTER COMMAND CONFIG COPY
    DBSIZE DECR DECRBY DEL DISCARD DUMP ECHO EVAL EVALSHA EXEC EXISTS EXPIRE EXPIREAT FLUSHALL
    FLUSHDB GEOADD GEODIST GEOSEARCH GET GETDEL GETEX GETRANGE GETSET HDEL HELLO HEXISTS HGET
    HGETALL HINCRBY HINCRBYFLOAT HKEYS HLEN HMGET HMSET HSCAN HSET HSETNX HVALS INCR INCRBY
    INCRBYFLOAT INFO KEYS LINDEX LINSERT LLEN LMOVE LPOP LPOS LPUSH LPUSHX LRANGE LREM LSET LTRIM
    MEMORY MGET MSET MSETNX MULTI OBJECT PERSIST PEXPIRE PEXPIREAT PFADD PFCOUNT PFMERGE PING
    PSETEX PSUBSCRIBE PTTL PUBLISH PUBSUB PUNSUBSCRIBE RANDOMKEY RENAME RENAMENX RPOP RPOPLPUSH
    RPUSH RPUSHX SADD SCAN SCARD SCRIPT SDIFF SDIFFSTORE SELECT SET SETEX SETNX SETRANGE SINTER
    SINTERSTORE SISMEMBER SMEMBERS SMISMEMBER SMOVE SPOP SRANDMEMBER SREM SSCAN STRLEN SUBSCRIBE
    SUNION SUNIONSTORE TIME TOUCH TTL TYPE UNLINK UNSUBSCRIBE UNWATCH WATCH XACK XADD XAUTOCLAIM
    XCLAIM XDEL XGROUP XINFO XLEN XPENDING XRANGE XREAD XREADGROUP XREVRANGE XTRIM ZADD ZCARD
    ZCOUNT ZINCRBY ZINTERSTORE ZLEXCOUNT ZMSCORE ZPOPMAX ZPOPMIN ZRANGE ZRANGEBYLEX ZRANGEBYSCORE
    ZRANK ZREM ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREVRANGE ZREVRANGEBYSCORE ZREVRANK ZSCAN ZSCORE
    ZUNIONSTORE PIPELINE
""".split())
_command_labels: dict = {}


def command_label(name) -> str:
    """The bounded label of a command name as redis-py passes it ("GET", "CLIENT SETNAME", b"get")."""
    label = _command_labels.get(name)
    if label is None:
        text = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        word = text.split(" ", 1)[0].upper()
        label = word if word in KNOWN_COMMANDS else "other"
        if len(_command_labels) < 4096:
            _command_labels[name] = label
    return label


class _Recorder:
    def __init__(self, m: Metrics, client: str):
        self.m = m
        self.client = client

    def record(self, command: str, started: float, ok: bool) -> None:
        m = self.m
        m.redis_duration.labels(self.client, command).observe(perf_counter() - started)
        m.redis_operations.labels(self.client, command, "success" if ok else "error").inc()


def instrument_redis(client, name: str, *, metrics: Metrics | None = None) -> None:
    """Instrument one redis-py client object (its commands, pipelines and connection pool)."""
    if getattr(client, "_vigil_instrumented", False):
        raise ValueError(f"redis client {client!r} is already instrumented")
    recorder = _Recorder(resolve(metrics), name)
    is_async = inspect.iscoroutinefunction(client.execute_command)
    client.execute_command = _timed(client.execute_command, is_async, recorder, command_label)
    make_pipeline = client.pipeline

    def pipeline(*args, **kwargs):
        pipe = make_pipeline(*args, **kwargs)
        pipe.execute = _timed(pipe.execute, is_async, recorder, lambda *_: "PIPELINE")
        return pipe
    client.pipeline = pipeline
    _count_connections(client.connection_pool, is_async, recorder.m.redis_connections_active.labels(name))
    client._vigil_instrumented = True


def _timed(call, is_async: bool, recorder: _Recorder, label):
    if is_async:
        async def timed_async(*args, **options):
            with _Operation(recorder, label(args[0]) if args else "PIPELINE"):
                return await call(*args, **options)
        return timed_async

    def timed(*args, **options):
        with _Operation(recorder, label(args[0]) if args else "PIPELINE"):
            return call(*args, **options)
    return timed


class _Operation:
    """One command or pipeline, timed from entry and counted as success or error on exit."""

    __slots__ = ("recorder", "command", "started")

    def __init__(self, recorder: _Recorder, command: str):
        self.recorder = recorder
        self.command = command

    def __enter__(self) -> None:
        self.started = perf_counter()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.recorder.record(self.command, self.started, exc_type is None)
        return False


def _count_connections(pool, is_async: bool, gauge) -> None:
    """Wrap the pool's get_connection/release; a pool shared by several clients is counted
    under the first client instrumented."""
    if getattr(pool, "_vigil_counted", False):
        return
    pool._vigil_counted = True
    held: set = set()
    get, release = pool.get_connection, pool.release

    def acquired(connection):
        held.add(connection)
        gauge.inc()
        return connection

    def released(connection) -> None:
        if connection in held:
            held.discard(connection)
            gauge.dec()

    if is_async:
        async def get_connection(*args, **kwargs):
            return acquired(await get(*args, **kwargs))

        async def release_connection(connection):
            try:
                await release(connection)
            finally:
                released(connection)
    else:
        def get_connection(*args, **kwargs):
            return acquired(get(*args, **kwargs))

        def release_connection(connection):
            try:
                release(connection)
            finally:
                released(connection)
    pool.get_connection = get_connection
    pool.release = release_connection
