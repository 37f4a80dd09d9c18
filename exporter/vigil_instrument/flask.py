"""Flask: the WSGI middleware around `app.wsgi_app`, with Flask's matched rule as the route.

    app = Flask(__name__)
    instrument_flask(app, metrics)

The route label is the rule Flask matched, as written (`/items/<int:item_id>`, blueprint prefix
included); requests no rule matched (404, 405) are `route="unmatched"`.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from flask import Flask, Response, request

from ._http import DEFAULT_EXCLUDE
from .exposition import wsgi_metrics_app
from .metrics import Metrics, resolve
from .wsgi import WSGIMiddleware, route_matched


def _remember_route() -> None:
    """A before_request hook (first of all): Flask has matched the rule by then."""
    current = request._get_current_object()  # one context lookup, not one per attribute
    rule = current.url_rule
    if rule is not None:
        route_matched(current.environ, rule.rule, current.view_args)


def instrument_flask(app: Flask, metrics: Metrics | None = None, *, metrics_path: str | None = "/metrics",
                     exclude_paths: Iterable = DEFAULT_EXCLUDE, request_id: bool = True,
                     access_log: bool | logging.Logger = False) -> WSGIMiddleware:
    """Wrap `app.wsgi_app` (so `app` itself stays the object gunicorn loads), serve the
    exposition of `metrics` on `metrics_path` (None: not served) and return the middleware."""
    metrics = resolve(metrics)
    app.before_request_funcs.setdefault(None, []).insert(0, _remember_route)
    if metrics_path is not None:
        serve = wsgi_metrics_app(metrics)
        app.add_url_rule(metrics_path, "vigil_instrument_metrics",
                         lambda: Response.from_app(serve, request.environ))
    middleware = WSGIMiddleware(app.wsgi_app, metrics, exclude_paths=exclude_paths, request_id=request_id,
                                access_log=access_log)
    app.wsgi_app = middleware
    return middleware
