"""Alerting test helpers: a real Alertmanager, the bundle's config pointed at local sinks, an HTTP
sink that records webhook requests, an aiosmtpd SMTP sink, and a threaded aiohttp server.

Everything listens on 127.0.0.1 with free ports; nothing leaves the machine.
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import yaml
from aiohttp import web

from tests.servers import Process, free_port, require, wait_for_port
from vigil_exporter.alerting.render import render_config
from vigil_exporter.alerting.timeutil import format_time, utc_now

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "alertmanager"
BUNDLE_CONFIG = BUNDLE / "alertmanager.yml"
FAST_TIMINGS = {"group_wait": "1s", "group_interval": "2s"}


def wait_until(predicate: Callable, timeout: float = 15.0, interval: float = 0.1, what: str = ""):
    """Poll `predicate` until it returns something truthy; return that, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


# ---- HTTP --------------------------------------------------------------------------------------

def http_json(method: str, url: str, body=None, timeout: float = 5.0):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = response.read()
    return json.loads(payload) if payload.strip() else None


class ThreadedServer:
    """Serve an aiohttp application from its own thread and event loop (for sync tests and for
    servers that a child process such as Alertmanager calls)."""

    def __init__(self, app: web.Application, port: int | None = None):
        self.app = app
        self.port = port or free_port()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def call(self, function: Callable):
        """Run `function()` on the server's loop (for state that lives there) and return it."""
        async def run():
            return function()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        if self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
            self._runner = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class WebhookSink(ThreadedServer):
    """Accepts any POST, records path, headers and body; stands in for Slack, pager, heartbeat."""

    def __init__(self, port: int | None = None):
        app = web.Application()
        app.router.add_post("/{path:.*}", self._record)
        super().__init__(app, port)
        self.requests: list[dict] = []
        self._lock = threading.Lock()

    async def _record(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        with self._lock:
            self.requests.append({"path": request.path, "headers": dict(request.headers),
                                  "body": body, "json": document, "time": time.time()})
        return web.Response(text="ok")

    def received(self, path: str | None = None) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if path is None or r["path"] == path]

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 15.0) -> dict:
        """The first recorded request for which `predicate(request)` holds."""
        return wait_until(lambda: next((r for r in self.received() if predicate(r)), None),
                          timeout, what="a webhook request")

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()


class SmtpSink:
    """A real SMTP server (aiosmtpd) that keeps every message; optional AUTH PLAIN."""

    def __init__(self, username: str | None = None, password: str | None = None):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.port = free_port()
        self.messages: list[dict] = []
        self.logins: list[str] = []
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                with sink._lock:
                    sink.messages.append({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                                          "message": message, "time": time.time()})
                return "250 OK"

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == username and auth_data.password.decode() == password
            if ok:
                with sink._lock:
                    sink.logins.append(auth_data.login.decode())
            return AuthResult(success=ok)

        # Only PLAIN: aiosmtpd's LOGIN prompt ("User Name") is not Alertmanager's "Username:".
        options = {"authenticator": authenticate, "auth_require_tls": False,
                   "auth_exclude_mechanism": ["LOGIN"]} if username else {}
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **options)

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def received(self) -> list[dict]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 15.0) -> dict:
        return wait_until(lambda: next((m for m in self.received() if predicate(m)), None),
                          timeout, what="an email")


def message_text(message) -> str:
    """Every text part of an email, decoded and joined."""
    return "\n".join(part.get_content() for part in message.walk()
                     if part.get_content_maintype() == "text")


# ---- Alertmanager ---------------------------------------------------------------------------

def bundle_config(secrets_dir: Path, sink_url: str, log_receiver_url: str | None = None,
                  smtp_port: int | None = None, smtp_password: str = "test-password",
                  timings: dict | None = None) -> dict:
    """The repository's alertmanager.yml, deployed the documented way, aimed at local sinks.

    Webhook URLs come through `render_config` (VIGIL_AM_<RECEIVER>_URL: `<sink>/<receiver>`,
    vigil-log to `log_receiver_url` when given), the Slack URL and the SMTP password through
    their `*_file` settings, mail to the SMTP sink; `timings` replaces group_wait/group_interval
    wherever the tree sets them.
    """
    source = yaml.safe_load(BUNDLE_CONFIG.read_text())
    environ = {f"VIGIL_AM_{r['name'].upper().replace('-', '_')}_URL": f"{sink_url}/{r['name']}"
               for r in source["receivers"] if r.get("webhook_configs")}
    if log_receiver_url:
        environ["VIGIL_AM_VIGIL_LOG_URL"] = log_receiver_url
    config = yaml.safe_load(render_config(BUNDLE_CONFIG.read_text(), environ)[0])
    secrets_dir.mkdir(parents=True, exist_ok=True)
    (secrets_dir / "slack_api_url").write_text(f"{sink_url}/slack\n")
    # No trailing newline: Alertmanager 0.25 uses the password file's bytes as they are.
    (secrets_dir / "smtp_password").write_text(smtp_password)
    glob = config["global"]
    glob["slack_api_url_file"] = str(secrets_dir / "slack_api_url")
    glob["smtp_auth_password_file"] = str(secrets_dir / "smtp_password")
    glob["smtp_smarthost"] = f"127.0.0.1:{smtp_port or free_port()}"
    glob["smtp_require_tls"] = False
    config["templates"] = [str(BUNDLE / "templates" / "*.tmpl")]
    _apply_timings(config["route"], timings or FAST_TIMINGS)
    return config


def _apply_timings(route: dict, timings: dict, root: bool = True) -> None:
    for key, value in timings.items():
        if root or key in route:
            route[key] = value
    for child in route.get("routes", []):
        _apply_timings(child, timings, root=False)


class Alertmanager(Process):
    """`prometheus-alertmanager` on 127.0.0.1; single node unless `cluster_port` is given."""

    def __init__(self, workdir: Path, config: dict, port: int | None = None,
                 cluster_port: int | None = None, peers: tuple[str, ...] = (),
                 extra_args: tuple[str, ...] = ()):
        super().__init__("alertmanager", workdir)
        self.config = config
        self.port = port or free_port()
        self.cluster_port = cluster_port
        self.peers = peers
        self.extra_args = extra_args
        self.binary = require("prometheus-alertmanager")
        self.config_path = workdir / "alertmanager.yml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Alertmanager:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        cluster = [f"--cluster.listen-address=127.0.0.1:{self.cluster_port}",
                   f"--cluster.advertise-address=127.0.0.1:{self.cluster_port}",
                   *(f"--cluster.peer={peer}" for peer in self.peers)] \
            if self.cluster_port else ["--cluster.listen-address="]
        self.spawn([self.binary, f"--config.file={self.config_path}",
                    f"--storage.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    f"--web.external-url={self.url}", "--log.level=debug",
                    *cluster, *self.extra_args])
        wait_for_port(self.port, timeout=timeout)
        wait_until(self._ready, timeout, what=f"alertmanager ready:\n{self.log()[-2000:]}")
        return self

    def _ready(self) -> bool:
        if not self.running:
            raise RuntimeError(f"alertmanager exited:\n{self.log()[-4000:]}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def get(self, path: str):
        return http_json("GET", self.url + path)

    def wait_cluster(self, size: int, timeout: float = 30.0) -> None:
        """Until this node sees `size` peers and has settled (HA tests)."""
        def ready():
            cluster = self.get("/api/v2/status")["cluster"]
            return len(cluster.get("peers") or []) == size and cluster["status"] == "ready"
        wait_until(ready, timeout, what=f"a ready cluster of {size}")

    def post_alerts(self, alerts: list[dict]) -> None:
        http_json("POST", self.url + "/api/v2/alerts", alerts)

    def alerts(self, **query: str) -> list[dict]:
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return self.get("/api/v2/alerts" + (f"?{params}" if params else ""))

    def reload(self, config: dict | None = None) -> None:
        if config is not None:
            self.config = config
            self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        urllib.request.urlopen(urllib.request.Request(self.url + "/-/reload", method="POST"),
                               timeout=5).close()


def synthetic_alert(name: str, severity: str, area: str = "meta", minutes: float = 5,
                    **labels: str) -> dict:
    """An alert as Prometheus would post it, ending in `minutes` unless posted again."""
    now = utc_now()
    return {"labels": {"alertname": name, "severity": severity, "area": area, **labels},
            "annotations": {"summary": f"{name} test alert.",
                            "description": f"{name} ({severity}) on {labels.get('instance', '-')}.",
                            "runbook_url": f"https://runbooks.invalid/#{name.lower()}",
                            "dashboard_url": "http://grafana.invalid/d/vigil-overview"},
            "startsAt": format_time(now), "endsAt": format_time(now + timedelta(minutes=minutes)),
            "generatorURL": "http://prometheus.invalid/graph"}
