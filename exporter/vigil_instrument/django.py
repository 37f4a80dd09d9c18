"""Django: the WSGI middleware around the WSGI application, and a Django middleware that tells
it the route Django resolved.

    # wsgi.py
    from django.core.wsgi import get_wsgi_application
    from vigil_instrument.django import instrument_django
    application = instrument_django(get_wsgi_application(), metrics)

    # settings.py
    MIDDLEWARE = ["vigil_instrument.django.RouteMiddleware", ...]

    # urls.py
    urlpatterns = [path("metrics", metrics_view(metrics)), ...]

The route label is the matched URL pattern with its includes (`/api/items/<int:item_id>/`);
requests no pattern matched, or answered before the view (an APPEND_SLASH redirect), are
`route="unmatched"`.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from ._http import DEFAULT_EXCLUDE
from .exposition import wsgi_metrics_app
from .metrics import Metrics, resolve
from .wsgi import WSGIMiddleware, route_matched


class RouteMiddleware:
    """Leaves the resolved route in the WSGI environ (Django's `request.META` is that dict)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        if match is not None and match.route is not None:
            route_matched(request.META, "/" + match.route.lstrip("^/"), view_kwargs)
        return None


def metrics_view(metrics: Metrics | None = None):
    """A Django view serving the exposition: `path("metrics", metrics_view(metrics))`."""
    from django.http import HttpResponse

    serve = wsgi_metrics_app(resolve(metrics))

    def view(request):
        captured = {}

        def start_response(status, headers, exc_info=None):
            captured.update(headers)
        body = b"".join(serve(request.META, start_response))
        response = HttpResponse(body, content_type=captured.pop("Content-Type"))
        if "Content-Encoding" in captured:
            response["Content-Encoding"] = captured["Content-Encoding"]
        return response
    return view


def instrument_django(application, metrics: Metrics | None = None, *,
                      exclude_paths: Iterable = DEFAULT_EXCLUDE, request_id: bool = True,
                      access_log: bool | logging.Logger = False) -> WSGIMiddleware:
    """The WSGI application wrapped in the middleware; add `RouteMiddleware` to MIDDLEWARE."""
    return WSGIMiddleware(application, metrics, exclude_paths=exclude_paths, request_id=request_id,
                          access_log=access_log)
