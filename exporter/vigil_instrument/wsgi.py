"""WSGI middleware: the same HTTP families as aiohttp and ASGI, for Flask, Django or any WSGI app.

The duration runs until the server closes the response iterable (PEP 3333), so it includes
sending a streamed body, and the response size is the body bytes the app yielded. The request
size is `CONTENT_LENGTH` (0 for a chunked upload). The route label is the template the
framework matched, which its adapter leaves in the environ under `ROUTE_KEY` (`instrument_flask`,
`vigil_instrument.django.RouteMiddleware`); a request without one is `route="unmatched"`. The
middleware works in gunicorn's sync, threaded and gevent workers, and with
PROMETHEUS_MULTIPROC_DIR across worker processes like the other middlewares.

    app = WSGIMiddleware(app, metrics)      # a bare WSGI app: every request is "unmatched"
"""
from __future__ import annotations

from time import perf_counter

from ._http import METHOD_LABEL, OTHER_METHOD, UNMATCHED, HttpMiddleware
from .context import restore, tenant_var
from .logging import REQUEST_ID_HEADER, accept_request_id, log_access, new_request_id, request_id_var

ROUTE_KEY = "vigil_instrument.route"              # the matched route template
PATH_PARAMS_KEY = "vigil_instrument.path_params"  # the matched route's parameters
_LABELS_KEY = "vigil_instrument.labels"           # the request labels, when a tenant is declared
_REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"  # REQUEST_ID_HEADER in the environ
_REQUEST_ID_NAME = REQUEST_ID_HEADER.lower()


class WSGIMiddleware(HttpMiddleware):
    @staticmethod
    def header_keys(names):
        return tuple(_environ_key(name) for name in names)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path in self._excluded_exact or (self._excluded_prefixes and path.startswith(self._excluded_prefixes)) or (
                self._excluded_regex is not None and self._excluded_regex(path)):
            return self.app(environ, start_response)
        request = _Request(self, environ, METHOD_LABEL.get(environ.get("REQUEST_METHOD"), OTHER_METHOD),
                           start_response)
        try:
            request.body = self.app(environ, request.start_response)
        except BaseException:
            request.status, request.sent = 500, -1  # the server answers 500
            request.finish()
            raise
        return request

    def record(self, request: _Request) -> None:
        environ, method, status = request.environ, request.method, request.status
        route = environ.get(ROUTE_KEY)
        extra = request.extra
        if self._labels is not None and self._header_labels is None:
            extra = self._labels.read(environ, _source)
        key = (method, route, status, extra)
        entry = self._entries.get(key)
        if entry is None:
            entry = self.recorder.resolve(key, method, route or UNMATCHED, status, extra=extra)
        try:
            received = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            received = 0
        span_ids = self._span_ids
        elapsed = perf_counter() - request.started
        entry(elapsed, received, request.sent, None if span_ids is None else span_ids())
        if self._access is not None:
            log_access(self._access, request.request_id, environ.get("REQUEST_METHOD", ""),
                       environ.get("PATH_INFO", ""), route or UNMATCHED, status, elapsed, received, request.sent)


class _Request:
    """One request in flight, and the response iterable handed to the server: set up on entry,
    counting the body bytes the app yields, recorded once when the server closes it."""

    __slots__ = ("middleware", "environ", "method", "status", "sent", "started", "request_id", "body", "extra",
                 "_start_response", "_id_token", "_tenant_token", "_done")

    def __init__(self, middleware: WSGIMiddleware, environ: dict, method: str, start_response):
        self.middleware, self.environ, self.method = middleware, environ, method
        self._start_response = start_response
        self.status, self.sent, self._done, self.body, self.extra = 500, 0, False, (), ()
        self.request_id = self._id_token = self._tenant_token = None
        if middleware.request_id:
            request_id = environ.get(_REQUEST_ID_ENVIRON)
            self.request_id = new_request_id() if request_id is None else accept_request_id(request_id)
            self._id_token = request_id_var.set(self.request_id)
        header_labels = middleware._header_labels
        if header_labels is not None:
            raw = header_labels(environ.get)
            self.extra, tenant = middleware._labels.by_headers.get(raw) or middleware._labels.from_headers(raw)
            if middleware._tenant_early:
                self._tenant_token = tenant_var.set(tenant)
        elif middleware._tenant_early:
            environ[_LABELS_KEY] = middleware._labels
            self._tenant_token = tenant_var.set(middleware._labels.early(environ, _source))
        middleware._in_flight[method].add(self)
        self.started = perf_counter()

    def start_response(self, status: str, headers: list, exc_info=None):
        """The app's `start_response`: notes the status, gives the response the request id
        header (ours, also over one the app copied in from an upstream)."""
        self.status = int(status[:3])
        if self.request_id is not None:
            for name, _ in headers:
                if name.lower() == _REQUEST_ID_NAME:  # copied from an upstream: ours replaces it
                    headers = [header for header in headers if header[0].lower() != _REQUEST_ID_NAME]
                    break
            headers = [*headers, (REQUEST_ID_HEADER, self.request_id)]
        return self._start_response(status, headers, exc_info)

    def __iter__(self):
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.finish()

    def finish(self) -> None:
        if self._done:
            return
        self._done = True
        middleware = self.middleware
        try:
            middleware.record(self)
        finally:
            middleware._in_flight[self.method].discard(self)  # after recording: 0 in flight = all counted
            if self._tenant_token is not None:
                restore(tenant_var, self._tenant_token)
            if self._id_token is not None:
                restore(request_id_var, self._id_token)


def route_matched(environ: dict, template: str, params: dict | None) -> None:
    """What a framework adapter calls once its router has matched, before the view runs: the
    route label, and the path parameters (a tenant taken from one is then the context's for
    the view's LLM calls; the middleware restores the context when the request ends)."""
    environ[ROUTE_KEY] = template
    environ[PATH_PARAMS_KEY] = params
    labels = environ.get(_LABELS_KEY)
    if labels is not None and params:
        tenant_var.set(labels.early(environ, _source))


def _environ_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def _source(environ: dict, kind: str, key: str):
    """A per-request label's raw value (see request_labels.py)."""
    if kind == "header":
        return environ.get(_environ_key(key))
    if kind == "path_param":
        params = environ.get(PATH_PARAMS_KEY)
        return None if params is None else params.get(key)
    return environ.get(key)
