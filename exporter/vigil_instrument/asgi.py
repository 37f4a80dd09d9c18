"""Pure ASGI middleware for FastAPI, Starlette or any ASGI app.

The route label is the template of the route the application's router matched, read from
`scope["route"]` once the app has run (Starlette and FastAPI put the matched route there). The
route table is never matched again and the raw path is never a label: requests the router did
not match (404, 405, slash redirects) are counted with route="unmatched".

The duration ends when the last body chunk has been sent, so background tasks that run after
it in the same ASGI call are not counted.

    app = FastAPI()
    app.add_middleware(PrometheusMiddleware, metrics=metrics)   # inside Starlette's error middleware
    instrument_starlette(app, metrics)                          # or around it: its 500 is tagged too
"""
from __future__ import annotations

import logging
from time import perf_counter

from ._http import METHOD_LABEL, OTHER_METHOD, UNMATCHED, HttpMiddleware
from .context import tenant_var
from .exemplars import is_tracing_middleware
from .logging import accept_request_id, log_access, new_request_id, request_id_var
from .metrics import Metrics

_REQUEST_ID = b"x-request-id"
log = logging.getLogger("vigil_instrument")


class PrometheusMiddleware(HttpMiddleware):
    @staticmethod
    def header_keys(names):
        return tuple(name.lower().encode("latin-1") for name in names)

    # The request path is written for speed (see docs/performance.md): no helper calls that
    # can be inlined, children resolved once per label set, one call to record a request.
    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or (path := scope["path"]) in self._excluded_exact or (
                self._excluded_prefixes and path.startswith(self._excluded_prefixes)) or (
                self._excluded_regex is not None and self._excluded_regex(path)):
            await self.app(scope, receive, send)
            return

        method = METHOD_LABEL.get(scope["method"], OTHER_METHOD)
        base_root = scope.get("root_path", "")
        status = 0
        sent = 0
        received = 0
        answered = 0.0  # when the last body chunk was sent: background tasks run after it
        id_header = None
        labels, header_labels, extra = self._labels, self._header_labels, ()
        if self.request_id or header_labels is not None:
            headers = scope["headers"]
            lookup = dict(headers)
            if len(lookup) != len(headers):  # a repeated header: the first one counts, as in Starlette
                lookup = dict(reversed(headers))
            headers = lookup
            if self.request_id:
                request_id = headers.get(_REQUEST_ID)
                request_id = new_request_id() if request_id is None else accept_request_id(request_id.decode("latin-1"))
                id_header = (_REQUEST_ID, request_id.encode())
                token = request_id_var.set(request_id)
            if header_labels is not None:
                raw = header_labels(headers.get)
                extra, tenant = labels.by_headers.get(raw) or labels.from_headers(raw)
                if self._tenant_early:
                    tenant_token = tenant_var.set(tenant)

        async def receive_counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def send_counted(message):
            nonlocal status, sent, answered
            kind = message["type"]
            if kind == "http.response.body":
                sent += len(message.get("body", b""))
                await send(message)
                if not message.get("more_body", False):
                    answered = perf_counter()
                return
            if kind == "http.response.start":
                status = message["status"]
                if id_header is not None:
                    response_headers = message.get("headers", ())
                    for name, _ in response_headers:  # (ASGI header names are lowercase)
                        if name == _REQUEST_ID:  # copied from an upstream: ours replaces it
                            response_headers = [header for header in response_headers if header[0] != _REQUEST_ID]
                            break
                    message["headers"] = [*response_headers, id_header]
            await send(message)

        if self._tenant_early and header_labels is None:
            tenant_token = tenant_var.set(labels.early(scope, _source))
        in_flight = self._in_flight[method]
        in_flight.add(send_counted)  # this request's own function: a token no other request has
        start = perf_counter()
        failed = False
        try:
            await self.app(scope, receive_counted, send_counted)
        except BaseException:
            failed = True
            raise
        finally:
            elapsed = (answered or perf_counter()) - start
            in_flight.discard(send_counted)
            if status == 0:  # the app raised before answering: the server answers 500
                status, sent = 500, -1
            route = scope.get("route")
            root = scope.get("root_path", "")
            if labels is not None and header_labels is None:
                extra = labels.read(scope, _source)
            if status == 405 or (route is None and root == base_root):
                key = (method, None, None, status, extra)
            else:  # routes may be unhashable; FastAPI names no route for a mount, only its root_path
                key = (method, None if route is None else id(route), root, status, extra)
            record = self._entries.get(key)
            if record is None:
                record = self.recorder.resolve(
                    key, method, _route_label(route, scope, base_root, status), status, route, extra)
            record(elapsed, received, sent, None if self._span_ids is None else self._span_ids())
            if self._access is not None:
                log_access(self._access, None if id_header is None else request_id, scope["method"],
                           path, _route_label(route, scope, base_root, status), status, elapsed,
                           received, sent)
            # The server logs an escaped exception after us, in this request's own task: keep
            # the id set so that its log line carries it.
            if id_header is not None and not failed:
                request_id_var.reset(token)
            if self._tenant_early:
                tenant_var.reset(tenant_token)


def instrument_starlette(app, metrics: Metrics | None = None, **options) -> PrometheusMiddleware:
    """Put the middleware around a Starlette or FastAPI app's whole stack, outside Starlette's
    own error middleware (where `app.add_middleware` cannot reach): the 500 that Starlette sends
    for an unhandled exception then carries the request id and is counted like any response.
    `options`: those of `PrometheusMiddleware`. Call it before the app serves its first request."""
    if getattr(app, "middleware_stack", None) is not None:
        raise RuntimeError("instrument_starlette: the app has already started; call it before serving")
    middleware = PrometheusMiddleware(None, metrics, **options)
    build = app.build_middleware_stack

    def build_with_metrics():
        _warn_if_tracing_inside(app, middleware)
        middleware.app = build()
        return middleware
    app.build_middleware_stack = build_with_metrics
    return middleware


def _warn_if_tracing_inside(app, middleware: PrometheusMiddleware) -> None:
    """OpenTelemetry's ASGI middleware added with `app.add_middleware` ends up inside ours: its
    server span is over when a request is recorded, so the duration has no exemplar. Said once,
    when the app builds its stack."""
    traced = [entry.cls for entry in getattr(app, "user_middleware", ()) if is_tracing_middleware(entry.cls)]
    if traced and middleware.recorder.metrics.span_ids is not None:
        log.warning("instrument_starlette: %s was added with app.add_middleware, inside the metrics middleware: "
                    "HTTP durations get no exemplars. Wrap the app in it instead (outermost), or use "
                    "app.add_middleware(PrometheusMiddleware, ...) before adding it.", traced[0].__name__)


def _source(scope, kind: str, key: str):
    """A per-request label's raw value (see request_labels.py); path parameters and state are
    there once the application has run."""
    if kind == "header":
        name = key.lower().encode("latin-1")
        for header, value in scope["headers"]:
            if header == name:
                return value.decode("latin-1")
        return None
    if kind == "path_param":
        return scope.get("path_params", {}).get(key)
    state = scope.get("state")
    return None if state is None else state.get(key)


def _route_label(route, scope, base_root: str, status: int) -> str:
    # Mounts add their prefix to root_path; the route inside only knows its own path.
    root = scope.get("root_path", "")
    if status == 405 or (route is None and root == base_root):
        return UNMATCHED
    prefix = root[len(base_root):] if root.startswith(base_root) else root
    if route is None or _is_mount(route):  # FastAPI's router leaves scope["route"] unset for a mount
        return f"{prefix}/{{path}}"
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return prefix + template if template else UNMATCHED


def _is_mount(route) -> bool:
    try:
        from starlette.routing import Mount
    except ImportError:  # pragma: no cover - no Starlette, no Mount
        return False
    return isinstance(route, Mount)
