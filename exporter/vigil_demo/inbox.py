"""The inbox: chat messages waiting for the responder agent, in a Redis list (with
`--redis-url`) or an in-process queue. Its length is `queue_depth{queue="inbox"}`; with Redis it
is also a key the exporter can watch (`vigil_redis_key_length`, key `vigil:demo:inbox`).
"""
from __future__ import annotations

import asyncio
import json
import logging

from vigil_exporter.logs import FailureLog, describe_error
from vigil_instrument import Metrics, set_queue_depth

log = logging.getLogger("vigil.demo")
QUEUE = "inbox"
REDIS_KEY = "vigil:demo:inbox"


class Inbox:
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    async def put(self, item: dict) -> None:
        raise NotImplementedError

    async def get(self, timeout: float) -> dict | None:
        """The oldest item, or None after `timeout` seconds."""
        raise NotImplementedError

    async def depth(self) -> int:
        raise NotImplementedError

    async def measure(self) -> None:
        """Set the queue depth gauge from the queue itself."""
        set_queue_depth(QUEUE, await self.depth(), metrics=self.metrics)


class MemoryInbox(Inbox):
    def __init__(self, metrics: Metrics, maxsize: int = 10_000):
        super().__init__(metrics)
        self._queue: asyncio.Queue[dict] = asyncio.Queue(maxsize)

    async def put(self, item: dict) -> None:
        self._queue.put_nowait(item)  # QueueFull when 10,000 wait: the caller answers 503
        await self.measure()

    async def get(self, timeout: float) -> dict | None:
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        await self.measure()
        return item

    async def depth(self) -> int:
        return self._queue.qsize()


class RedisInbox(Inbox):
    def __init__(self, metrics: Metrics, client):
        super().__init__(metrics)
        self.client = client

    async def put(self, item: dict) -> None:
        depth = await self.client.lpush(REDIS_KEY, json.dumps(item))
        set_queue_depth(QUEUE, depth, metrics=self.metrics)

    async def get(self, timeout: float) -> dict | None:
        popped = await self.client.brpop([REDIS_KEY], timeout=max(1, round(timeout)))
        if popped is None:
            return None
        await self.measure()
        return json.loads(popped[1])

    async def depth(self) -> int:
        return await self.client.llen(REDIS_KEY)


_failures = FailureLog(log)  # shared by the workers: one line per outage, not one per worker


async def work(inbox: Inbox, handle, stop: asyncio.Event, poll_seconds: float = 1.0) -> None:
    """Take items off the inbox and `await handle(item)` until `stop` is set. A failing item is
    logged and dropped; a failing queue (Redis down) is retried every second."""
    failures = _failures
    while not stop.is_set():
        try:
            item = await inbox.get(poll_seconds)
            failures.recovered("inbox")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - Redis outage: wait and retry
            failures.failed("inbox", describe_error(exc))
            await asyncio.sleep(poll_seconds)
            continue
        if item is None:
            continue
        try:
            await handle(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the worker
            log.warning("inbox message failed: %s", describe_error(exc),
                        extra={"fields": {"request_id": item.get("request_id")}})
