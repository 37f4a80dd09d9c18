"""SQLAlchemy engine instrumentation: the service's own pool and its query durations.

    engine = create_engine(url)              # or create_async_engine(url)
    instrument_engine(engine, name="main", metrics=metrics)

Pool gauges (`vigil_db_pool_size|checked_out|overflow|checked_in{pool}`, the exporter's names
with a `pool` label) are refreshed on every pool event, for pools that report them (QueuePool
and its async variant; NullPool and StaticPool report nothing). Checkout time is the time
`pool.connect()` takes: waiting for a free connection, opening a new one, pre-ping.
"""
from __future__ import annotations

import weakref
from time import perf_counter

from sqlalchemy import event

from .metrics import Metrics, resolve

STATEMENT_TYPES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
_START_KEY = "vigil_query_start"
_instrumented: weakref.WeakSet = weakref.WeakSet()


def statement_type(statement: str) -> str:
    """SELECT, INSERT, UPDATE, DELETE (each six letters) from the first keyword, else other."""
    word = statement.lstrip()[:6].upper()
    return word if word in STATEMENT_TYPES else "other"


def instrument_engine(engine, name: str, *, metrics: Metrics | None = None) -> None:
    """Record pool and query metrics of `engine` (sync `Engine` or `AsyncEngine`) as pool=`name`.
    Instrumenting the same engine twice raises: it would count everything twice."""
    engine = getattr(engine, "sync_engine", engine)
    if engine in _instrumented:
        raise ValueError(f"engine {engine!r} is already instrumented")
    _instrumented.add(engine)
    m = resolve(metrics)
    gauges = _PoolGauges(m, name)
    created = m.db_pool_connections_created.labels(name)
    invalidated = m.db_pool_invalidations.labels(name)
    checkout_duration = m.db_pool_checkout_duration.labels(name)
    query_duration = {kind: m.db_query_duration.labels(name, kind) for kind in (*STATEMENT_TYPES, "other")}

    def time_checkouts(pool) -> None:
        connect = pool.connect

        def timed_connect():
            start = perf_counter()
            try:
                return connect()
            finally:
                checkout_duration.observe(perf_counter() - start)
        pool.connect = timed_connect
        gauges.update(pool)

    time_checkouts(engine.pool)

    @event.listens_for(engine, "engine_disposed")
    def on_dispose(disposed_engine):
        time_checkouts(disposed_engine.pool)  # dispose() made a new pool; events moved by themselves

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, record):
        created.inc()

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection, record, proxy):
        gauges.update(engine.pool)

    @event.listens_for(engine, "checkin")
    def on_checkin(dbapi_connection, record):
        gauges.update(engine.pool, returning=True)

    @event.listens_for(engine, "invalidate")
    def on_invalidate(dbapi_connection, record, exception):
        invalidated.inc()

    @event.listens_for(engine, "before_cursor_execute")
    def before_execute(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault(_START_KEY, []).append(perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def after_execute(conn, cursor, statement, parameters, context, executemany):
        _observe(conn, statement)

    @event.listens_for(engine, "handle_error")
    def on_error(context):
        if context.connection is not None and context.statement is not None:
            _observe(context.connection, context.statement)

    def _observe(conn, statement: str) -> None:
        starts = conn.info.get(_START_KEY)
        if starts:
            query_duration[statement_type(statement)].observe(perf_counter() - starts.pop())


class _PoolGauges:
    def __init__(self, m: Metrics, name: str):
        self.size = m.db_pool_size.labels(name)
        self.checked_out = m.db_pool_checked_out.labels(name)
        self.overflow = m.db_pool_overflow.labels(name)
        self.checked_in = m.db_pool_checked_in.labels(name)

    def update(self, pool, returning: bool = False) -> None:
        if not all(callable(getattr(pool, attr, None)) for attr in ("size", "checkedout", "overflow", "checkedin")):
            return
        size, checked_out, overflow, checked_in = pool.size(), pool.checkedout(), pool.overflow(), pool.checkedin()
        if returning:
            # The checkin event fires before the pool takes the connection back. It then either
            # queues it (one more idle) or, when the queue is already full, closes it (one
            # less overflow); either way one less is checked out.
            checked_out -= 1
            if size == 0 or checked_in < size:
                checked_in += 1
            else:
                overflow -= 1
        self.size.set(size)
        self.checked_out.set(checked_out)
        self.overflow.set(max(0, overflow))  # QueuePool counts overflow from -size
        self.checked_in.set(checked_in)
