"""prometheus-client multiprocess mode: two real worker processes, one aggregated scrape."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from vigil_instrument import exposition_registry, mark_process_dead

ROOT = Path(__file__).resolve().parent.parent

# A worker serves `n` requests to /ok, then stays inside one /hold request and one agent
# execution until told to finish on stdin.
WORKER = r'''
import asyncio, sys
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from vigil_instrument import Metrics, PrometheusMiddleware, track_agent

metrics = Metrics(CollectorRegistry(), buckets={"http_request_duration_seconds": [0.125, 60]})
gate = asyncio.Event()

async def ok(request):
    return PlainTextResponse("ok")

async def hold(request):
    await gate.wait()
    return PlainTextResponse("held")

app = PrometheusMiddleware(Starlette(routes=[Route("/ok", ok), Route("/hold", hold)]), metrics)

async def call(path):
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "headers": [], "server": ("worker", 80), "client": ("c", 1)}
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        pass
    await app(scope, receive, send)

async def main():
    for _ in range(int(sys.argv[1])):
        await call("/ok")
    held = asyncio.create_task(call("/hold"))
    with track_agent("planner", metrics=metrics):
        await asyncio.sleep(0.01)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    gate.set()
    await held
    print("done", flush=True)

asyncio.run(main())
'''


def start_worker(requests: int, multiproc_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", WORKER, str(requests)], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_two_workers_aggregate_and_live_gauges_follow_live_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    first, second = start_worker(3, tmp_path), start_worker(5, tmp_path)
    try:
        for worker in (first, second):
            assert worker.stdout.readline().strip() == "ready"
        registry = exposition_registry()  # aggregates the directory, as /metrics does

        def sample(name, **labels):
            return registry.get_sample_value(name, labels)

        assert sample("http_requests_total", method="GET", route="/ok", status="200") == 8
        assert sample("http_request_duration_seconds_count", method="GET", route="/ok") == 8
        assert sample("http_requests_in_flight", method="GET") == 2
        assert sample("agents_running", agent="planner") == 2
        assert b'http_requests_in_flight{method="GET"} 2.0' in generate_latest(registry)

        first.stdin.write("\n")
        first.stdin.flush()
        assert first.stdout.readline().strip() == "done"
        assert first.wait(10) == 0
        mark_process_dead(first.pid)
        assert sample("http_requests_total", method="GET", route="/hold", status="200") == 1
        assert sample("http_requests_in_flight", method="GET") == 1
        assert sample("agents_running", agent="planner") == 1
        assert sample("agent_executions_total", agent="planner", status="success") == 1

        # A worker killed mid-request (a `uvicorn --workers` child, say) leaves its files
        # behind; nobody reports it, yet the next scrape drops its live gauges while its counters
        # stay in the totals.
        assert sample("http_request_duration_seconds_bucket", method="GET", route="/ok", le="0.125") == 8
        second.send_signal(signal.SIGKILL)
        second.wait(10)
        live_files = sorted(path.name for path in tmp_path.glob(f"gauge_live*_{second.pid}.db"))
        assert live_files
        assert sample("http_requests_in_flight", method="GET") is None  # no live worker left
        assert sample("agents_running", agent="planner") is None
        assert not list(tmp_path.glob(f"gauge_live*_{second.pid}.db"))
        assert sample("http_requests_total", method="GET", route="/ok", status="200") == 8
    finally:
        for worker in (first, second):
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def test_dead_worker_cleanup_spares_live_and_zombie_free_workers(tmp_path, monkeypatch):
    """Scrape-time clean-up removes only the live-gauge files of processes that are gone: a
    running worker keeps its share, a killed one not yet reaped (a zombie) loses it, and with
    `remove_dead_workers=False` nothing is removed."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    running, killed = start_worker(1, tmp_path), start_worker(2, tmp_path)
    try:
        for worker in (running, killed):
            assert worker.stdout.readline().strip() == "ready"
        killed.send_signal(signal.SIGKILL)
        os.waitid(os.P_PID, killed.pid, os.WEXITED | os.WNOWAIT)  # dead, still a zombie
        kept = exposition_registry(remove_dead_workers=False)
        assert kept.get_sample_value("http_requests_in_flight", {"method": "GET"}) == 2
        registry = exposition_registry()
        assert registry.get_sample_value("http_requests_in_flight", {"method": "GET"}) == 1
        assert registry.get_sample_value("agents_running", {"agent": "planner"}) == 1
        assert list(tmp_path.glob(f"gauge_livesum_{running.pid}.db"))
        assert registry.get_sample_value("http_requests_total", {"method": "GET", "route": "/ok",
                                                                 "status": "200"}) == 3
    finally:
        for worker in (running, killed):
            if worker.poll() is None:
                worker.kill()
            worker.wait()


def test_missing_or_empty_directory_is_logged_not_silent(tmp_path, monkeypatch, caplog):
    directory = tmp_path / "vigil-metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    with caplog.at_level("WARNING", logger="vigil_instrument"):
        registry = exposition_registry()
        assert "imported before" in caplog.text  # this test process: prometheus_client came first
        assert generate_latest(registry) == b""
        assert generate_latest(registry) == b""
        assert caplog.text.count("does not exist") == 1  # once per problem, not per scrape
        directory.mkdir()
        assert generate_latest(registry) == b""
        assert "holds no worker files" in caplog.text


GUNICORN_HOLD_APP = r'''
import os, threading
from flask import Flask
from vigil_instrument import Metrics, instrument_flask

app = Flask("hold")
forever = threading.Event()

@app.get("/hold")
def hold():
    with open(os.environ["HOLDER_PID_FILE"], "w") as out:
        out.write(str(os.getpid()))
    forever.wait()        # until the test kills this worker

instrument_flask(app, Metrics())
'''


def test_gunicorn_worker_killed_mid_request_leaves_no_in_flight_behind(tmp_path):
    """A real gunicorn with two sync workers and no hooks: one worker is SIGKILLed while it
    serves a request; gunicorn replaces it, and the next scrapes stop counting its request."""
    from vigil_exporter.tools.stack.process import free_port

    (tmp_path / "holdapp.py").write_text(GUNICORN_HOLD_APP)
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    pid_file = tmp_path / "holder.pid"
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc), "PYTHONPATH": f"{tmp_path}:{ROOT}",
           "HOLDER_PID_FILE": str(pid_file)}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
                               "--chdir", str(tmp_path), "holdapp:app"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def in_flight() -> float | None:
        body = httpx.get(url + "/metrics", timeout=5).text
        values = [s.value for f in text_string_to_metric_families(body) for s in f.samples
                  if s.name == "http_requests_in_flight" and s.labels.get("method") == "GET"]
        return sum(values) if values else None

    def until(check, what: str) -> None:
        deadline = time.monotonic() + 20
        while not check():
            assert time.monotonic() < deadline and server.poll() is None, f"timed out waiting for {what}"
            time.sleep(0.05)

    try:
        until(lambda: _answers(url), "gunicorn to listen")
        holder = threading.Thread(target=_get_quietly, args=(url + "/hold",), daemon=True)
        holder.start()
        until(lambda: pid_file.exists() and pid_file.read_text(), "a worker to hold /hold")
        assert in_flight() == 1             # served by the other worker
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        until(lambda: in_flight() in (None, 0), "the killed worker's in-flight request to go")
        holder.join(10)
    finally:
        server.terminate()
        server.wait(10)


def _answers(url: str) -> bool:
    try:
        httpx.get(url + "/metrics", timeout=1)
        return True
    except httpx.TransportError:
        return False


def _get_quietly(url: str) -> None:
    try:
        httpx.get(url, timeout=30)
    except httpx.HTTPError:
        pass  # the worker serving it is killed


# --- FastAPI on several uvicorn workers: under gunicorn (the docs' setup) and `uvicorn --workers`

def docs_block(marker: str) -> str:
    """The python block of docs/instrumentation.md that contains `marker`."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "instrumentation.md").read_text(), re.DOTALL)
    (block,) = [block for block in blocks if marker in block]
    return block


# The docs' FastAPI example as written, plus two routes for the test.
SERVICE_ROUTES = r'''
import asyncio, os


@app.get("/pid")
async def pid() -> int:
    return os.getpid()


@app.get("/hold")
async def hold() -> None:
    with open(os.environ["HOLDER_PID_FILE"], "w") as out:
        out.write(str(os.getpid()))
    await asyncio.Event().wait()  # until the test kills this worker
'''

ASGI_SERVERS = {
    "gunicorn": ["-m", "gunicorn", "-c", "gunicorn.conf.py", "service:app", "--workers", "2",
                 "--worker-class", "uvicorn_worker.UvicornWorker", "--bind"],
    "uvicorn": ["-m", "uvicorn", "service:app", "--workers", "2", "--no-access-log", "--host", "127.0.0.1",
                "--port"],
}


@pytest.mark.parametrize("server_name", sorted(ASGI_SERVERS))
def test_fastapi_workers_share_one_exposition_and_forget_a_killed_one(tmp_path, server_name):
    """The docs' FastAPI example and gunicorn.conf.py on two uvicorn workers: every scrape, whichever
    worker answers it, counts both workers' requests; a worker SIGKILLed inside a request
    (gunicorn's `child_exit` hook, or uvicorn's supervisor that has none) stops being counted in
    flight while its requests stay in the totals."""
    from vigil_exporter.tools.stack.process import free_port

    (tmp_path / "service.py").write_text(docs_block("app.add_route(\"/metrics\", asgi_metrics_app())") + SERVICE_ROUTES)
    (tmp_path / "gunicorn.conf.py").write_text(docs_block("# gunicorn.conf.py"))
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    pid_file = tmp_path / "holder.pid"
    port = free_port()
    address = f"127.0.0.1:{port}" if server_name == "gunicorn" else str(port)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc), "PYTHONPATH": f"{tmp_path}:{ROOT}",
           "HOLDER_PID_FILE": str(pid_file)}
    log = tmp_path / "server.log"  # a file, not a pipe nobody reads while the server runs
    with log.open("wb") as output:
        server = subprocess.Popen([sys.executable, *ASGI_SERVERS[server_name], address], cwd=tmp_path, env=env,
                                  stdout=subprocess.DEVNULL, stderr=output)
    url = f"http://127.0.0.1:{port}"

    def until(check, what: str) -> None:
        deadline = time.monotonic() + 20
        while not check():
            assert time.monotonic() < deadline and server.poll() is None, f"timed out waiting for {what}"
            time.sleep(0.05)

    def scrape() -> dict[str, float]:
        """Requests to /pid and requests in flight, from one scrape (a new connection: any worker)."""
        samples = [s for f in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=5).text)
                   for s in f.samples]
        return {"served": sum(s.value for s in samples if s.name == "http_requests_total"
                              and s.labels["route"] == "/pid"),
                "in_flight": sum(s.value for s in samples if s.name == "http_requests_in_flight")}

    try:
        until(lambda: _answers(url), f"{server_name} to listen")
        pids, sent = set(), 0
        while len(pids) < 2 or sent < 20:  # a new connection each time, until both workers served some
            pids.add(httpx.get(f"{url}/pid", timeout=5).json())
            sent += 1
            assert sent < 500, "one worker served everything"
        until(lambda: all(scrape()["served"] == sent for _ in range(6)), "every scrape to count both workers")

        holder = threading.Thread(target=_get_quietly, args=(url + "/hold",), daemon=True)
        holder.start()
        until(lambda: pid_file.exists() and pid_file.read_text(), "a worker to hold /hold")
        assert scrape()["in_flight"] == 1
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        until(lambda: scrape() == {"served": sent, "in_flight": 0}, "the killed worker's request to leave the gauge")
        holder.join(10)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.returncode not in (0, -signal.SIGTERM):
            print(log.read_text(errors="replace")[-3000:])
