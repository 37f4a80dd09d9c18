"""What the attacks of issue 18 do to a running `vigil serve`: idle sockets past the file limit,
a webhook flood, SIGTERM with hostile clients connected.

    python bench/attack_bench.py [--seconds 5] [--idle 1100] [--before DIR]

The exporter runs with an open-file limit of 1,024 (the usual default) and its collectors off,
so that only the HTTP side is measured. `--before DIR` runs the same attacks against the code
of another checkout (e.g. a worktree of the commit before the hardening) in the same run, as the
reference. Figures: scrapes of /metrics that got a 200 while the idle sockets were open and
their median latency, the exporter's log growth (bytes, lines, tracebacks), the webhook's
answers and what it wrote, and the seconds from SIGTERM to exit.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {"collectors": {"system": {"enabled": False}, "business": {"enabled": False},
                         "database": {"enabled": False}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _file_limit_1024() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


class Exporter:
    def __init__(self, checkout: Path, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.log_path = workdir / "exporter.log"
        config = workdir / "vigil.yml"
        config.write_text(json.dumps({**CONFIG, "alerts": {"log_file": str(workdir / "alerts.jsonl")}}))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")},
               "PYTHONPATH": str(checkout / "exporter")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vigil_exporter", "serve", "--config", str(config), "--listen",
             f"127.0.0.1:{self.port}"], cwd=workdir, env=env, stdout=subprocess.DEVNULL,
            stderr=self.log_path.open("wb"), preexec_fn=_file_limit_1024)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.get("/health/live", 1)[0] == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(self.log_path.read_text()[-2000:])

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, float]:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as r:
                r.read()
                return r.status, time.perf_counter() - started
        except urllib.error.HTTPError as exc:
            return exc.code, time.perf_counter() - started
        except OSError:
            return 0, time.perf_counter() - started

    def log_figures(self) -> tuple[int, int, int]:
        text = self.log_path.read_bytes()
        return len(text), text.count(b"\n"), text.count(b"Traceback")

    def stop_seconds(self) -> float:
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return float("inf")
        return time.monotonic() - started


def idle_flood(exporter: Exporter, count: int, seconds: float) -> dict:
    before = exporter.log_figures()
    sockets = []
    for _ in range(count):
        try:
            sockets.append(socket.create_connection(("127.0.0.1", exporter.port), timeout=2))
        except OSError:
            break
    scrapes = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        scrapes.append(exporter.get("/metrics"))
        time.sleep(0.1)
    for s in sockets:
        s.close()
    after = exporter.log_figures()
    ok = [latency for status, latency in scrapes if status == 200]
    return {"idle sockets opened": len(sockets), "scrapes ok": f"{len(ok)}/{len(scrapes)}",
            "scrape median ms": round(statistics.median(ok) * 1000, 1) if ok else None,
            "log bytes": after[0] - before[0], "log lines": after[1] - before[1],
            "tracebacks": after[2] - before[2]}


def webhook_flood(exporter: Exporter, clients: int, seconds: float) -> dict:
    body = json.dumps({"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": f"Fake{i}", "severity": "critical"},
         "annotations": {"summary": "x" * 200}, "startsAt": "2024-05-01T10:00:00Z"}
        for i in range(100)]}).encode()
    before = exporter.log_figures()
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client():
        while time.monotonic() < end:
            request = urllib.request.Request(f"http://127.0.0.1:{exporter.port}/alerts/webhook",
                                             data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=5) as r:
                    status = r.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = exporter.log_figures()
    alert_log = exporter.workdir / "alerts.jsonl"
    return {"answers": dict(sorted(statuses.items())),
            "alert log MB": round(alert_log.stat().st_size / 1e6, 1) if alert_log.exists() else 0,
            "exporter log MB": round((after[0] - before[0]) / 1e6, 2),
            "alerts counted": statuses.get(200, 0) * 100}


def sigterm_with_hostile_clients(exporter: Exporter) -> float:
    pipeliner = socket.create_connection(("127.0.0.1", exporter.port))
    pipeliner.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    pipeliner.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 400)
    idle = [socket.create_connection(("127.0.0.1", exporter.port)) for _ in range(200)]
    time.sleep(0.5)
    seconds = exporter.stop_seconds()
    for s in [pipeliner, *idle]:
        s.close()
    return round(seconds, 2)


def run(checkout: Path, args) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        exporter = Exporter(checkout, Path(directory))
        try:
            figures = {"idle flood": idle_flood(exporter, args.idle, args.seconds),
                       "webhook flood": webhook_flood(exporter, 4, args.seconds),
                       "SIGTERM to exit, s": sigterm_with_hostile_clients(exporter)}
        finally:
            if exporter.process.poll() is None:
                exporter.process.kill()
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--idle", type=int, default=1100)
    parser.add_argument("--before", type=Path, help="checkout to run as the reference")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))  # the attacker's side
    runs = {"this checkout": ROOT}
    if args.before:
        runs = {"before": args.before.resolve(), **runs}
    for name, checkout in runs.items():
        print(f"## {name} ({checkout})")
        for attack, figures in run(checkout, args).items():
            print(f"{attack}: {figures}")


if __name__ == "__main__":
    main()
