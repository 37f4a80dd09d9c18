"""SIGTERM stops `vigil serve` within 5 s in every state: a client pipelining requests it never
reads, a flood of wrong passwords against a costly bcrypt hash (issue 18, "Availability"); a
password bcrypt refuses is a 401 with the configured headers ("Web config and auth")."""
from __future__ import annotations

import base64
import json
import signal
import socket
import threading
import time

import bcrypt

from vigil_exporter.tools.stack.process import wait_until

STOP_WITHIN = 5.0
QUIET = {"collectors": {"system": {"enabled": False}, "business": {"enabled": False},
                        "database": {"enabled": False}}}

# 400 series with long labels from the embedded SQLite database
BIG = {"collectors": {"system": {"enabled": False}, "business": {
    "default_queries": False, "queries": [{
        "name": "vigil_test_wide", "help": "Wide.", "labels": ["label"],
        "sql": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) "
               "SELECT i AS value, printf('%0200d', i) AS label FROM n"}]}}}


def stop_seconds(exporter) -> float:
    started = time.monotonic()
    exporter.process.send_signal(signal.SIGTERM)
    assert wait_until(lambda: not exporter.running, timeout=15), "still running after 15 s"
    return time.monotonic() - started


def test_sigterm_with_a_client_that_pipelines_and_never_reads(start_exporter):
    # a /metrics body over aiohttp's 64 KiB write limit, so that answering waits for the client
    exporter = start_exporter(BIG)
    assert len(exporter.text("/metrics")) > 65536
    sock = socket.create_connection(("127.0.0.1", exporter.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 400)
    time.sleep(0.5)  # the exporter is now blocked writing to it
    try:
        seconds = stop_seconds(exporter)
        print(f"stopped in {seconds:.2f}s")
        assert seconds < STOP_WITHIN
    finally:
        sock.close()


def test_sigterm_during_a_wrong_password_flood(start_exporter, tmp_path):
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=12)).decode()
    web_config = tmp_path / "web.yml"
    web_config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    exporter = start_exporter(QUIET, args=("--web.config.file", str(web_config)),
                              ready_path="/health/live")
    stop = threading.Event()
    wrong = "Basic " + base64.b64encode(b"prometheus:wrong").decode()
    request = f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {wrong}\r\n\r\n".encode()

    def flood():
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", exporter.port), timeout=1) as s:
                    s.sendall(request * 20)
                    s.recv(1024)
            except OSError:
                pass

    # 48 clients: more checks than the old shared executor (6 threads) could drain in 5 s
    threads = [threading.Thread(target=flood, daemon=True) for _ in range(48)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        seconds = stop_seconds(exporter)
        print(f"stopped in {seconds:.2f}s")
        assert seconds < STOP_WITHIN
    finally:
        stop.set()
        for thread in threads:
            thread.join(2)
    assert "Traceback" not in exporter.log()


async def test_a_password_over_72_bytes_is_a_401_not_a_500(tmp_path):
    from aiohttp.test_utils import TestClient, TestServer

    from vigil_exporter.app import make_app
    from vigil_exporter.config import load
    from vigil_exporter.webconfig import WebConfig

    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4))
    path = tmp_path / "vigil.yml"
    path.write_text(json.dumps(QUIET))
    app = make_app(load(path, environ={}), WebConfig(users={"prometheus": hashed},
                                                     headers={"X-Frame-Options": "deny"}))
    async with TestClient(TestServer(app)) as client:
        token = base64.b64encode(b"prometheus:" + b"p" * 100).decode()
        response = await client.get("/metrics", headers={"Authorization": f"Basic {token}"})
        assert response.status == 401
        # the configured security headers are on the refusal too
        assert response.headers["X-Frame-Options"] == "deny"
