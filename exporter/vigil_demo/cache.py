"""A read-through cache in Redis (with `--redis-url`) or in the process, counted by name in
`cache_hits_total{cache}` / `cache_misses_total{cache}`.

A Redis that fails is a cache miss, not an error: the value is loaded from the database and the
outage is logged once (the Redis client metrics show the failing commands).
"""
from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from vigil_exporter.logs import FailureLog, describe_error
from vigil_instrument import Metrics, record_cache

log = logging.getLogger("vigil.demo")
KEY_PREFIX = "vigil:demo:cache:"
CACHES = ("items", "api_keys")


class Cache:
    """get / set / delete of JSON values; `lookup` is the read-through path."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    async def get(self, key: str) -> str | None:
        raise NotImplementedError

    async def set(self, key: str, value: str, ttl: float) -> None:
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError

    async def lookup(self, cache: str, key: str, load: Callable[[], Awaitable[object]], ttl: float):
        """The cached value of `key`, else `await load()` stored for `ttl` seconds (None is not
        cached)."""
        raw = await self.get(f"{cache}:{key}")
        if raw is not None:
            record_cache(cache, True, metrics=self.metrics)
            return json.loads(raw)
        record_cache(cache, False, metrics=self.metrics)
        value = await load()
        if value is not None:
            await self.set(f"{cache}:{key}", json.dumps(value), ttl)
        return value

    async def forget(self, cache: str, key: str) -> None:
        await self.delete(f"{cache}:{key}")


class MemoryCache(Cache):
    def __init__(self, metrics: Metrics, max_entries: int = 10_000):
        super().__init__(metrics)
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def get(self, key: str) -> str | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < time.monotonic():
            del self._data[key]
            return None
        return value

    async def set(self, key: str, value: str, ttl: float) -> None:
        self._data[key] = (time.monotonic() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)


class RedisCache(Cache):
    def __init__(self, metrics: Metrics, client):
        super().__init__(metrics)
        self.client = client
        self.failures = FailureLog(log)

    async def get(self, key: str) -> str | None:
        try:
            value = await self.client.get(KEY_PREFIX + key)
        except Exception as exc:  # noqa: BLE001 - any Redis failure is a miss
            self.failures.failed("redis cache", describe_error(exc))
            return None
        self.failures.recovered("redis cache")
        return value.decode() if isinstance(value, bytes) else value

    async def set(self, key: str, value: str, ttl: float) -> None:
        try:
            await self.client.set(KEY_PREFIX + key, value, px=max(1, int(ttl * 1000)))
        except Exception as exc:  # noqa: BLE001
            self.failures.failed("redis cache", describe_error(exc))

    async def delete(self, key: str) -> None:
        try:
            await self.client.delete(KEY_PREFIX + key)
        except Exception as exc:  # noqa: BLE001
            self.failures.failed("redis cache", describe_error(exc))
