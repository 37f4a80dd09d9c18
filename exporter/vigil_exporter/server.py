"""Serving an aiohttp application until SIGTERM or SIGINT: the one way `vigil serve` and the demo
service listen.

Every connection goes through a `ConnectionGuard`, so that no client can take the process's
file descriptors or its shutdown hostage:
- at most `max_connections` are open at once, below the open-file limit (raised to fit when the
  hard limit allows); a new connection over the cap closes the least recently active one
  without a request in flight (the new one itself when every other is busy), so a pile of idle
  sockets cannot lock Prometheus out and no answer is cut off;
- a connection without a request in flight that has shown no activity (bytes read, a request
  ended, a stalled write resumed) for `idle_timeout` is closed (one that never sends a
  request, a slow-loris header, a keep-alive connection nobody uses); a request in flight is
  busy from the moment its handler starts until it returns, however long it takes;
- a connection whose client does not read what it is sent for `write_timeout` is aborted (a
  client that pipelines requests and never reads the answers);
- on SIGTERM, open requests get `shutdown_timeout` seconds in all, then every connection is
  aborted: the process stops in shutdown_timeout plus the collectors' own close.
- running out of file descriptors anyway (other parts of the process hold some) is logged once
  per episode, without a traceback per failed accept().
"""
from __future__ import annotations

import asyncio
import logging
import resource
import signal
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from vigil_exporter.logs import FailureLog
from vigil_exporter.validation import Duration, Int, Object

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# File descriptors kept for everything but client connections: database and Redis pools, the
# alert log, logs, Python's own.
RESERVED_FDS = 128
MIN_CONNECTIONS = 16
SWEEP_EVERY = 0.5  # seconds between checks of idle and stalled connections

log = logging.getLogger("vigil.server")


# The keys of the configuration's web section that limit what one client may hold.
LIMITS_SCHEMA = {
    "max_field_size": Int(8190, "Largest request header line accepted.", minimum=1024),
    "max_connections": Int(512, "Client connections open at once; a new one beyond closes the "
                                "least recently active without a request in flight. Lowered "
                                "to fit the open-file limit.", minimum=1),
    "idle_timeout": Duration("60s", "A connection that sends nothing for this long is closed "
                                    "(before, between or inside requests); not while its "
                                    "request is being handled."),
    "write_timeout": Duration("10s", "A connection whose client reads nothing of its answer for "
                                     "this long is closed."),
}
_DEFAULT = Object(LIMITS_SCHEMA).default_value()


class ListenError(OSError):
    """The listening socket could not be bound (address in use, not local, not allowed): the
    listen address is at fault, unlike any other OSError while serving."""


@dataclass(frozen=True)
class Limits:
    """What one client may hold: the LIMITS_SCHEMA keys of the configuration's web section."""

    max_connections: int = _DEFAULT["max_connections"]
    idle_timeout: float = _DEFAULT["idle_timeout"]
    write_timeout: float = _DEFAULT["write_timeout"]
    max_field_size: int = _DEFAULT["max_field_size"]

    @classmethod
    def from_config(cls, web_section: dict) -> Limits:
        return cls(**{key: web_section[key] for key in LIMITS_SCHEMA})


@asynccontextmanager
async def listening(app: web.Application, host: str, port: int, *, shutdown_timeout: float,
                    ssl_context: ssl.SSLContext | None = None,
                    limits: Limits | dict | None = None) -> AsyncIterator[int]:
    """Serve `app` on host:port inside the block; yield the port bound (port 0 picks one).
    Leaving the block gives open requests `shutdown_timeout` seconds, then closes everything."""
    if isinstance(limits, dict):
        limits = Limits.from_config(limits)
    limits = limits or Limits()
    guard = ConnectionGuard(limits)
    app.middlewares.insert(0, guard.middleware)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout,
                           keepalive_timeout=limits.idle_timeout,
                           max_field_size=limits.max_field_size,
                           max_line_size=limits.max_field_size)
    await runner.setup()
    guard.start()
    try:
        site = GuardedSite(runner, guard, host, port, ssl_context=ssl_context)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await _stop(runner, guard, shutdown_timeout)


async def _stop(runner: web.AppRunner, guard: ConnectionGuard, shutdown_timeout: float) -> None:
    """aiohttp waits `shutdown_timeout` more than once (the server, then each connection);
    bound the whole, then abort whatever is still open and let the cleanup finish."""
    guard.abort_stalled()
    cleanup = asyncio.ensure_future(runner.cleanup())
    try:
        await asyncio.wait_for(asyncio.shield(cleanup), shutdown_timeout)
    except asyncio.TimeoutError:
        guard.abort_all()
        await cleanup
    finally:
        guard.stop()


class GuardedSite(web.TCPSite):
    """TCPSite whose connections go through the guard."""

    def __init__(self, runner: web.AppRunner, guard: ConnectionGuard, *args, **kwargs):
        super().__init__(runner, *args, **kwargs)
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                self._guard.wrap(self._runner.server), self._host, self._port,
                ssl=self._ssl_context, backlog=self._backlog,
                reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        except OSError as exc:
            raise ListenError(exc.errno, exc.strerror or str(exc)) from exc


class GuardedProtocol(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol and tells the guard what the client does."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard):
        self.inner, self.guard = inner, guard
        self.transport: asyncio.Transport | None = None
        self.last_active = 0.0
        self.requests_in_flight = 0
        self.paused_since: float | None = None

    @property
    def busy(self) -> bool:
        return self.requests_in_flight > 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.last_active = self.guard.now()
        self.guard.opened(self)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.last_active = self.guard.now()
        self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.paused_since = self.guard.now()
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.paused_since = None
        self.last_active = self.guard.now()  # the client reads: a long answer is progressing
        self.inner.resume_writing()

    def connection_lost(self, exc) -> None:
        self.guard.closed(self)
        self.inner.connection_lost(exc)

    def abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


class ConnectionGuard:
    """Caps, times out and aborts client connections (see the module doc)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.max_connections = fit_file_limit(limits.max_connections)
        self.connections: dict[GuardedProtocol, None] = {}  # oldest first
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._at_capacity = False
        self._previous_handler = None
        self.exhaustion = FailureLog(log)

    def now(self) -> float:
        return self._loop.time() if self._loop else 0.0

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], GuardedProtocol]:
        return lambda: GuardedProtocol(factory(), self)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._previous_handler = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self._exception_handler)
        self._schedule()

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._loop is not None:
            self._loop.set_exception_handler(self._previous_handler)

    def opened(self, conn: GuardedProtocol) -> None:
        self.exhaustion.recovered("accept")
        self.connections[conn] = None
        if len(self.connections) > self.max_connections:
            if not self._at_capacity:
                self._at_capacity = True
                log.warning("connection limit reached (%d open): closing the least recently "
                            "active connections (web.max_connections)", self.max_connections)
            least_active = min((c for c in self.connections if not c.busy),
                               key=lambda c: c.last_active)  # at least `conn`, not busy yet
            least_active.abort()
            self.connections.pop(least_active, None)
        elif self._at_capacity and len(self.connections) <= self.max_connections // 2:
            self._at_capacity = False
            log.info("connections back under half the limit (%d open)", len(self.connections))

    def closed(self, conn: GuardedProtocol) -> None:
        self.connections.pop(conn, None)

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        """Marks the connection busy while a request is handled (the outermost middleware)."""
        conn = request.transport.get_protocol() if request.transport else None
        if not isinstance(conn, GuardedProtocol):
            return await handler(request)
        conn.requests_in_flight += 1
        try:
            return await handler(request)
        finally:
            conn.requests_in_flight -= 1
            conn.last_active = self.now()  # the answer is written from now on

    def abort_stalled(self) -> None:
        """Abort connections whose client does not read (they could never finish)."""
        for conn in list(self.connections):
            if conn.paused_since is not None:
                conn.abort()

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()

    def _schedule(self) -> None:
        self._sweeper = self._loop.call_later(SWEEP_EVERY, self._sweep)

    def _sweep(self) -> None:
        now = self.now()
        for conn in list(self.connections):
            stalled = conn.paused_since is not None and \
                now - conn.paused_since > self.limits.write_timeout
            idle = conn.paused_since is None and not conn.busy and \
                now - conn.last_active > self.limits.idle_timeout
            if stalled or idle:
                conn.abort()
        self._schedule()

    def _exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """accept() failing for lack of file descriptors: one line per episode."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and "accept" in context.get("message", ""):
            self.exhaustion.failed("accept", f"cannot accept connections: {exc.strerror or exc} "
                                        f"({len(self.connections)} client connections open)")
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)


def fit_file_limit(wanted: int) -> int:
    """The connection cap that fits the open-file limit: the soft limit is raised toward the
    hard one when needed (as Go programs do), else the cap is lowered, with a warning."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < needed:
        fitted = max(MIN_CONNECTIONS, soft - RESERVED_FDS)
        log.warning("web.max_connections %d does not fit the open-file limit %d: serving at "
                    "most %d connections", wanted, soft, fitted)
        return fitted
    return wanted


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
