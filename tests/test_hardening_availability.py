"""Availability under a hostile client or a bad day: idle and stalled connections, a connection
cap below the file limit, logs that settle, Redis connections the server closed
(issue 18, "Availability")."""
from __future__ import annotations

import asyncio
import logging
import socket

import aiohttp
import pytest
from aiohttp import web

from vigil_exporter import server
from vigil_exporter.logs import FailureLog
from vigil_exporter.server import ConnectionGuard, Limits, listening


def app_with_a_big_answer() -> web.Application:
    body = b"x" * (4 << 20)

    async def big(request):
        return web.Response(body=body)

    async def small(request):
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_get("/big", big)
    app.router.add_get("/metrics", small)
    return app


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
        return True
    except (asyncio.TimeoutError, ConnectionError):
        return isinstance(reader.exception(), ConnectionError)


async def test_connections_that_send_nothing_are_closed():
    limits = Limits(idle_timeout=0.5)
    async with listening(app_with_a_big_answer(), "127.0.0.1", 0, shutdown_timeout=1,
                         limits=limits) as port:
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        half = await asyncio.open_connection("127.0.0.1", port)
        half[1].write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
        for reader, _ in silent + [half]:
            assert await closed_by_server(reader, timeout=3)


async def test_idle_sockets_beyond_the_cap_never_lock_out_a_scrape():
    """1,100 idle sockets used to exhaust the file limit; now the cap closes the least recently
    active ones and a scrape still gets through."""
    limits = Limits(max_connections=20, idle_timeout=30)
    async with listening(app_with_a_big_answer(), "127.0.0.1", 0, shutdown_timeout=1,
                         limits=limits) as port:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(60)]
        await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    assert response.status == 200
        still_open = 0
        for reader, writer in idle:
            try:
                data = await asyncio.wait_for(reader.read(1), 0.05)
                still_open += data != b""
            except asyncio.TimeoutError:
                still_open += 1
            writer.close()
        assert still_open <= limits.max_connections


async def test_a_client_that_never_reads_is_cut_off_and_does_not_hold_shutdown():
    limits = Limits(write_timeout=0.3)
    loop = asyncio.get_running_loop()
    async with listening(app_with_a_big_answer(), "127.0.0.1", 0, shutdown_timeout=3,
                         limits=limits) as port:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 50)  # pipelined, never read
        await asyncio.sleep(1.0)  # write_timeout and a sweep
        stopping = loop.time()
    assert loop.time() - stopping < 1.0  # nothing left for the shutdown to wait for
    sock.setblocking(False)
    with pytest.raises((ConnectionError, BlockingIOError, OSError)):
        while True:  # what the kernel buffered, then the reset
            if not sock.recv(1 << 20):
                raise ConnectionResetError
    sock.close()


def app_with_a_slow_answer(release: asyncio.Event,
                           entered: asyncio.Semaphore | None = None) -> web.Application:
    """GET /slow answers once `release` is set; each request releases `entered` on arrival."""
    async def slow(request):
        if entered is not None:
            entered.release()
        await release.wait()
        return web.Response(text="done")
    app = web.Application()
    app.router.add_get("/slow", slow)
    return app


async def sweeps(count: int) -> None:
    """Let the guard sweep `count` more times (its sweeps are scheduled every SWEEP_EVERY)."""
    await asyncio.sleep(count * server.SWEEP_EVERY + 0.01)


async def test_a_request_longer_than_the_idle_timeout_is_answered(monkeypatch):
    """The handler outlives idle_timeout several sweeps over: its connection is busy, not idle
    (it used to be aborted mid-request, the client getting a reset instead of its answer)."""
    monkeypatch.setattr(server, "SWEEP_EVERY", 0.02)
    release = asyncio.Event()
    async with listening(app_with_a_slow_answer(release), "127.0.0.1", 0, shutdown_timeout=1,
                         limits=Limits(idle_timeout=0.05)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await sweeps(10)  # 0.2 s: four idle timeouts
        release.set()
        answer = await asyncio.wait_for(reader.readuntil(b"done"), 5)
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert await closed_by_server(reader, timeout=3)  # idle again once answered
        writer.close()


async def test_the_cap_closes_an_idle_connection_not_one_with_a_request_in_flight():
    """The connection with a request in flight is the least recently active one: the cap used
    to close it, cutting its answer off."""
    release, entered = asyncio.Event(), asyncio.Semaphore(0)
    async with listening(app_with_a_slow_answer(release, entered), "127.0.0.1", 0,
                         shutdown_timeout=1,
                         limits=Limits(max_connections=2, idle_timeout=30)) as port:
        busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", port)
        busy_writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(entered.acquire(), 5)  # the request is in its handler
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)  # newer
        _, newest_writer = await asyncio.open_connection("127.0.0.1", port)  # over the cap
        assert await closed_by_server(idle_reader, timeout=3)
        release.set()
        answer = await asyncio.wait_for(busy_reader.readuntil(b"done"), 5)
        assert answer.startswith(b"HTTP/1.1 200 ")
        for writer in (busy_writer, idle_writer, newest_writer):
            writer.close()


async def test_when_every_connection_is_busy_the_new_one_is_closed():
    release, entered = asyncio.Event(), asyncio.Semaphore(0)
    async with listening(app_with_a_slow_answer(release, entered), "127.0.0.1", 0,
                         shutdown_timeout=1,
                         limits=Limits(max_connections=2, idle_timeout=30)) as port:
        busy = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        for _, writer in busy:
            writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in busy:
            await asyncio.wait_for(entered.acquire(), 5)
        newest_reader, newest_writer = await asyncio.open_connection("127.0.0.1", port)
        assert await closed_by_server(newest_reader, timeout=3)
        release.set()
        for reader, writer in busy:
            assert (await asyncio.wait_for(reader.readuntil(b"done"), 5)).startswith(
                b"HTTP/1.1 200 ")
            writer.close()
        newest_writer.close()


def test_the_cap_fits_the_open_file_limit():
    import subprocess
    import sys
    script = ("import resource; from vigil_exporter.server import fit_file_limit\n"
              "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))\n"
              "print(fit_file_limit(10_000), fit_file_limit(100))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.split() == [str(256 - 128), "100"], result.stderr


async def test_running_out_of_descriptors_is_logged_once_per_episode(caplog):
    guard = ConnectionGuard(Limits())
    guard.start()
    try:
        loop = asyncio.get_running_loop()
        context = {"message": "socket.accept() out of system resource",
                   "exception": OSError(24, "Too many open files")}
        with caplog.at_level(logging.INFO, logger="vigil.server"):
            for _ in range(1000):
                loop.call_exception_handler(context)
        lines = [r for r in caplog.records if "accept" in r.getMessage()]
        assert len(lines) == 1 and "Too many open files" in lines[0].getMessage()
        assert lines[0].exc_info is None
    finally:
        guard.stop()


# ------------------------------------------------------------------ logs that settle

def test_a_failure_whose_message_changes_is_logged_once_per_outage(caplog):
    failures = FailureLog(logging.getLogger("vigil.test"))
    with caplog.at_level(logging.INFO, logger="vigil.test"):
        for i in range(100):  # PostgreSQL at max_connections alternates two texts
            failures.failed("database main", "too many clients" if i % 2 else
                            "remaining connection slots are reserved")
        failures.recovered("database main")
        failures.failed("database main", "too many clients")
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO", "WARNING"]


async def test_a_job_slower_than_its_interval_warns_once(caplog):
    from vigil_exporter.collectors.base import Job
    from vigil_exporter.scheduler import Scheduler

    async def slow():
        await asyncio.sleep(0.35)
        return []

    scheduler = Scheduler([])
    job = Job("slow", "query", interval=0.1, timeout=5, run=slow)
    scheduler.jobs = [job]
    with caplog.at_level(logging.INFO, logger="vigil.scheduler"):
        scheduler.start()
        await asyncio.sleep(1.2)
        await scheduler.stop()
    assert job.skipped >= 5
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]


# ------------------------------------------------------------------ Redis

@pytest.mark.parametrize("closed_by", ["CLIENT KILL", "idle timeout", "restart"])
async def test_a_pooled_redis_connection_the_server_closed_is_replaced_at_once(redis_isolated,
                                                                               closed_by):
    import redis.asyncio as aioredis

    from vigil_exporter.collectors.redis import RedisCollector
    from vigil_exporter.validation import Errors

    config = RedisCollector.config_schema.validate(
        {"instances": {"main": {"url": redis_isolated.url}}}, "", Errors())
    collector = RedisCollector(config)
    admin = aioredis.Redis.from_url(redis_isolated.url)
    try:
        assert _up(await collector.collect()) == 1.0
        if closed_by == "CLIENT KILL":
            await admin.client_kill_filter(_type="normal", skipme=True)
        elif closed_by == "restart":
            redis_isolated.stop()
            redis_isolated.start()  # same port; the pooled connection is now dead
        else:
            await admin.config_set("timeout", 1)
            await asyncio.sleep(2.5)  # Redis checks idle clients a few times a second
        assert _up(await collector.collect()) == 1.0
    finally:
        await admin.aclose()
        await collector.close()


def _up(families) -> float:
    return next(f for f in families if f.name == "vigil_redis_up").samples[0].value
