"""WebSocket connections and messages, queue depths."""
from __future__ import annotations

from contextlib import contextmanager

from .metrics import Metrics, resolve


@contextmanager
def track_websocket(*, metrics: Metrics | None = None):
    """`websocket_connections` counts this connection while the block runs
    (works in `async def` handlers too: the block may contain awaits)."""
    gauge = resolve(metrics).websocket_connections
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def record_websocket_message(direction: str, *, metrics: Metrics | None = None) -> None:
    """direction: "in" (received) or "out" (sent)."""
    resolve(metrics).websocket_messages.labels(direction).inc()


def set_queue_depth(queue: str, depth: int, *, metrics: Metrics | None = None) -> None:
    resolve(metrics).queue_depth.labels(queue).set(depth)
