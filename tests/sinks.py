"""Stand-ins for what cannot run here (Slack, a pager, a heartbeat service, a mail server): an
HTTP sink that records webhook requests, an aiosmtpd SMTP sink, and the threaded aiohttp server
they (and in-process receivers) run on. Every real server comes from the stack's components
(vigil_exporter.tools.stack); fixtures are in conftest.py.

Everything listens on 127.0.0.1 with free ports; nothing leaves the machine.
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import time
from collections.abc import Callable

from aiohttp import web

from vigil_exporter.tools.stack.process import free_port, wait_for


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
        return wait_for(lambda: next((r for r in self.received() if predicate(r)), None),
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
        return wait_for(lambda: next((m for m in self.received() if predicate(m)), None),
                        timeout, what="an email")


def message_text(message) -> str:
    """Every text part of an email, decoded and joined."""
    return "\n".join(part.get_content() for part in message.walk()
                     if part.get_content_maintype() == "text")
