"""A task cancelled while SQLite runs its statement, as a scheduler's stop, a timeout or SIGTERM
cancels one: what the shutdown tests need to put a real connection in that state."""
from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# About half a second of work for SQLite, started by the SQL function `running()`, ending on a
# row of the engine's file, so that the statement reads the file.
SLOW_SELECT = ("WITH RECURSIVE n(i) AS (SELECT coalesce(running(), 1) UNION ALL "
               "SELECT i + 1 FROM n WHERE i < 1000000) "
               "SELECT (SELECT count(*) FROM n), name FROM sqlite_master")


async def cancel_mid_statement(engine: AsyncEngine, *, write_first: str | None = None
                               ) -> asyncio.Task:
    """Run SLOW_SELECT on a connection of `engine` (after the `write_first` statement, in the
    same transaction, when given), cancel its task while SQLite runs it, and return that task.
    The caller keeps it: its CancelledError holds the statement's cursor, as a traceback kept by
    a log record or a failure report would."""
    running = threading.Event()

    async def query() -> None:
        async with engine.begin() as conn:
            if write_first:
                await conn.execute(text(write_first))
            driver = (await conn.get_raw_connection()).driver_connection
            await driver.create_function("running", 0, running.set)
            await conn.execute(text(SLOW_SELECT))

    task = asyncio.create_task(query())
    assert await asyncio.to_thread(running.wait, 10), "the statement did not start"
    task.cancel()
    await asyncio.wait({task})
    assert task.cancelled()
    return task


def write_seconds(path, sql: str, busy_timeout: float) -> float:
    """Seconds a write to the SQLite file took from a connection of its own (raises
    "database is locked" after `busy_timeout`)."""
    started = time.monotonic()
    conn = sqlite3.connect(path, timeout=busy_timeout)
    try:
        with conn:
            conn.execute(sql)
    finally:
        conn.close()
    return time.monotonic() - started
