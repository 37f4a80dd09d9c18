"""aiohttp middleware.

`instrument_aiohttp` puts it first in the application's middlewares; when a runner starts the
application, it moves from there to around the application's request handler, which spares
every request aiohttp's machinery for running middlewares (see _around_handler).

The route label is the canonical template of the resource aiohttp's router already matched
(`request.match_info`); requests it did not match (404, 405, slash redirects of
`normalize_path_middleware`) are counted with route="unmatched". The middleware sends the
response itself (prepare + write_eof, which aiohttp then skips) so that the duration includes
sending it and the size is `response.body_length`: the bytes written to the connection,
streamed bodies, status line and headers included.

    app = web.Application()
    instrument_aiohttp(app, metrics)      # or middlewares=[aiohttp_middleware(metrics)]
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from functools import partial
from time import perf_counter

from aiohttp import web
from aiosignal import Signal
from multidict import istr

from ._http import (
    DEFAULT_EXCLUDE,
    METHOD_LABEL,
    OTHER_METHOD,
    UNMATCHED,
    HttpRecorder,
    exclusions,
    header_labels_reader,
)
from .context import tenant_var
from .exemplars import is_tracing_middleware
from .logging import REQUEST_ID_HEADER, accept_request_id, access_logger, log_access, new_request_id, request_id_var
from .metrics import Metrics, resolve

_REQUEST_ID = istr(REQUEST_ID_HEADER)


def aiohttp_middleware(metrics: Metrics | None = None, *, exclude_paths: Iterable = DEFAULT_EXCLUDE,
                       request_id: bool = True, access_log: bool | logging.Logger = False):
    """The middleware; put it first in `middlewares` so that it sees every other one's work.
    `access_log`: one JSON line per request (see logging.log_access)."""
    return _as_middleware(_request_observer(metrics, exclude_paths, request_id, access_log, request_id))


def _as_middleware(observe):
    @web.middleware
    def prometheus_middleware(request: web.Request, handler):
        return observe(handler, request)

    prometheus_middleware.observe = observe
    prometheus_middleware.recorder = observe.recorder  # for introspection: its cached label sets
    return prometheus_middleware


def _request_observer(metrics: Metrics | None, exclude_paths: Iterable, request_id: bool,
                      access_log: bool | logging.Logger, id_header: bool):
    """`observe(handler, request)`: serve `request` with `handler` and record it. The handler
    comes first so that `partial(observe, app._handle)` binds it positionally (see
    _around_handler). `id_header`: give the response the request id header (else an
    `on_response_prepare` receiver does)."""
    recorder = HttpRecorder(resolve(metrics))
    entries = recorder.entries
    labels = recorder.labels
    # every label from one header: read before the handler (istr: no case folding per request)
    header_labels = header_labels_reader(labels, lambda names: tuple(istr(name) for name in names))
    by_headers = None if labels is None else labels.by_headers
    span_ids = recorder.metrics.span_ids
    tenant_early = labels is not None and labels.tenant_index is not None
    in_flight_by_method = recorder.in_flight
    excluded_exact, excluded_prefixes, excluded_regex = exclusions(exclude_paths)
    access = access_logger(access_log)

    def resolve_route(method: str, route, status: int, extra: tuple):
        """The recorder of a route not in `entries` yet. aiohttp makes a new route object for
        each unmatched request (404, 405): those are keyed without it."""
        if route.resource is None:
            key = (method, None, status, extra)
            return entries.get(key) or recorder.resolve(key, method, UNMATCHED, status, extra=extra)
        return recorder.resolve((method, route, status, extra), method, _route_label(route), status, route, extra)

    # The request path is written for speed (see docs/performance.md): no helper calls that
    # can be inlined, children resolved once per label set, one call to record a request.
    async def observe(handler, request: web.Request):
        path = request.path
        if path in excluded_exact or (excluded_prefixes and path.startswith(excluded_prefixes)) or (
                excluded_regex is not None and excluded_regex(path)):
            return await handler(request)
        method = METHOD_LABEL.get(request.method, OTHER_METHOD)
        headers = request.headers
        if request_id:
            rid = headers.get(_REQUEST_ID)
            rid = new_request_id() if rid is None else accept_request_id(rid)
            request_id_var.set(rid)
        extra = ()
        if header_labels is not None:
            raw = header_labels(headers.get)
            extra, tenant = by_headers.get(raw) or labels.from_headers(raw)
            if tenant_early:
                tenant_var.set(tenant)
        elif tenant_early:
            tenant_var.set(labels.early(request, _source))
        in_flight = in_flight_by_method[method]
        serving = id(request)
        in_flight.add(serving)
        start = perf_counter()
        response = None
        status = 500
        try:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = exc
                raise
            except asyncio.TimeoutError:
                status = 504  # what aiohttp answers to a handler timing out
                raise
            finally:
                if response is not None:
                    status = response.status
                    if id_header:  # (too late for a response the handler sent itself: see _add_request_id)
                        response.headers[_REQUEST_ID] = rid
                    try:
                        await response.prepare(request)
                        await response.write_eof()
                    except ConnectionError:
                        pass  # the client left; aiohttp's own write after us handles and logs it
        finally:
            elapsed = perf_counter() - start
            in_flight.discard(serving)
            route = request.match_info.route
            if labels is not None and header_labels is None:
                extra = labels.read(request, _source)
            record = entries.get((method, route, status, extra)) or resolve_route(method, route, status, extra)
            sent = -1 if response is None else response.body_length
            record(elapsed, request.content.total_bytes, sent, None if span_ids is None else span_ids())
            if access is not None:
                log_access(access, rid if request_id else None, request.method, path, _route_label(route), status,
                           elapsed, request.content.total_bytes, sent)
            # No reset of the request id and tenant: aiohttp serves each request in a task of its
            # own so that context variables end with it (aiohttp issue 3406); the id also stays
            # set for aiohttp's own 500 after an escaped exception and its error log line.
        return response

    observe.recorder = recorder
    # the tenant of the request's context is read before the handler from a path parameter:
    # only a middleware sees the route matched by then
    observe.reads_route_early = labels is not None and labels.tenant_reads("path_param")
    return observe


def _route_label(route) -> str:
    return UNMATCHED if route.resource is None else route.resource.canonical


def _source(request: web.Request, kind: str, key: str):
    """A per-request label's raw value (see request_labels.py)."""
    if kind == "header":
        return request.headers.get(key)
    if kind == "path_param":
        return request.match_info.get(key)
    return request.get(key)


def _tag(response: web.StreamResponse) -> None:
    """Give `response` the request id header: the id of the request's log lines, also over
    one a handler copied in from an upstream."""
    rid = request_id_var.get()
    if rid is not None:
        response.headers[_REQUEST_ID] = rid


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    _tag(response)


class _Done:
    """An awaitable that is already done."""
    __slots__ = ()

    def __await__(self):
        return iter(())


_DONE = _Done()


class _RequestIdSignal(Signal):
    """An application's `on_response_prepare` signal, holding `_add_request_id` among its
    receivers. aiohttp sends it for every response; when `_add_request_id` is its one receiver
    (the usual case), `send` tags the response itself and runs no coroutine, which spares each
    request 2.4 kIr of aiohttp's general dispatch (docs/performance.md)."""
    __slots__ = ()

    def send(self, request, response):
        if len(self) == 1 and self[0] is _add_request_id:
            _tag(response)
            return _DONE
        return Signal.send(self, request, response)


def _give_request_ids(app: web.Application) -> None:
    """Add `_add_request_id` to `app.on_response_prepare`, in a `_RequestIdSignal` that takes
    the signal's place (and its receivers) if this aiohttp keeps it where it did when this
    was written."""
    signal = app.on_response_prepare
    if type(signal) is Signal and getattr(app, "_on_response_prepare", None) is signal:
        fast = _RequestIdSignal(app)
        fast.extend(signal)
        object.__setattr__(app, "_on_response_prepare", fast)
        signal = fast
    signal.append(_add_request_id)


def instrument_aiohttp(app: web.Application, metrics: Metrics | None = None, *,
                       exclude_paths: Iterable = DEFAULT_EXCLUDE, request_id: bool = True,
                       access_log: bool | logging.Logger = False):
    """Put the middleware first in `app` (after OpenTelemetry's tracing middleware, if there is
    one), and give responses that handlers prepare themselves (streaming, SSE) the request id
    header too. When a runner starts `app`, the middleware moves around the application's
    request handler if it can (see _around_handler). Returns the middleware."""
    if app.pre_frozen:  # started, or added to a parent as a sub-application
        raise RuntimeError("instrument_aiohttp: the application is frozen (it has started, or it was added "
                           "with add_subapp); call it before either")
    # the request id header: the on_response_prepare receiver gives it to every response
    middleware = _as_middleware(_request_observer(metrics, exclude_paths, request_id, access_log, False))
    app.middlewares.insert(_after_tracing(app.middlewares), middleware)
    app.on_startup.append(partial(_around_handler, observe=middleware.observe))
    if request_id:
        _give_request_ids(app)
    return middleware


async def _around_handler(app: web.Application, observe) -> None:
    """At start-up, move a first middleware out of `app.middlewares` to wrap the handler
    aiohttp's server calls for every request (`Application._handle`, as Sentry's aiohttp
    integration does): aiohttp's machinery for running any middleware at all costs a quarter
    of what ours did as a middleware (docs/performance.md). It sees the same: every other
    middleware's work, the router's 404 and 405, the exceptions that escape. It stays a
    middleware in a sub-application (frozen when added to its parent, whose handler serves its
    requests), in an application frozen before it started, behind another middleware (such as
    OpenTelemetry's, whose span must be current when a request is recorded), or when the
    tenant of the request's context comes from a path parameter (not matched before the
    handler)."""
    middlewares, handle = app.middlewares, getattr(app, "_handle", None)
    if (handle is None or app.pre_frozen or not middlewares or observe.reads_route_early
            or getattr(middlewares[0], "observe", None) is not observe):
        return  # (no `_handle`: an aiohttp release that renamed it keeps the middleware)
    del middlewares[0]
    # aiohttp's server takes `app._handle` when the runner makes it, after start-up; an
    # attribute of this application only (in dev mode aiohttp warns of any attribute set)
    object.__setattr__(app, "_handle", partial(observe, handle))


def _after_tracing(middlewares) -> int:
    """Where the middleware goes: first, except that OpenTelemetry's aiohttp middleware
    (`AioHttpServerInstrumentor` puts it first, or an application lists it) stays outside it:
    the server span it starts must be current when a request is recorded, for its ids to
    become the duration's exemplar."""
    position = 0
    for index, middleware in enumerate(middlewares):
        if is_tracing_middleware(middleware):
            position = index + 1
    return position
