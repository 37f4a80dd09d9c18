"""Serving an aiohttp application until SIGTERM or SIGINT: the one way `vigil serve` and the demo
service listen."""
from __future__ import annotations

import asyncio
import signal
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@asynccontextmanager
async def listening(app: web.Application, host: str, port: int, *, shutdown_timeout: float,
                    ssl_context: ssl.SSLContext | None = None,
                    max_field_size: int = 8190) -> AsyncIterator[int]:
    """Serve `app` on host:port inside the block; yield the port bound (port 0 picks one).
    Leaving the block gives open requests `shutdown_timeout` seconds, then closes everything."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout,
                           max_field_size=max_field_size, max_line_size=max_field_size)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def until_stopped(stop: asyncio.Event | None = None) -> None:
    """Return on SIGTERM or SIGINT, or when `stop` is set."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
