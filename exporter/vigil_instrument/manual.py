"""`record_request()`: one HTTP request recorded by hand, for frameworks without a middleware
here (Tornado, a custom server, a queue consumer answering over HTTP).

    started = time.perf_counter()
    ...                                            # serve the request
    record_request("/items/{item_id}", time.perf_counter() - started, 200, method="GET",
                   request_size=0, response_size=512, labels={"tenant": "acme"}, metrics=metrics)

It records the same families as the middlewares (`http_requests_total` and the duration,
request and response size histograms) with the same bounds: the route, method and status
labels are capped, an unknown method is `other`, and `labels` are the declared per-request
labels (`RequestLabels`), each capped; a declared label not given is `none`. Pass a route
template, never a raw path. The in-flight gauge is not touched (the request is over).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real

from ._http import METHOD_LABEL, OTHER_METHOD, HttpRecorder
from .metrics import Metrics, resolve


def record_request(route: str, seconds: float, status: int, *, method: str = "GET", request_size: int = 0,
                   response_size: int | None = None, labels: Mapping[str, object] | None = None,
                   metrics: Metrics | None = None) -> None:
    """Record one finished request; `response_size=None`: no response size is observed."""
    metrics = resolve(metrics)
    if not isinstance(route, str) or not route:
        raise ValueError(f"record_request: route must be a non-empty route template, got {route!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, Real) or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"record_request: seconds must be a finite number >= 0, got {seconds!r}")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"record_request: status must be an HTTP status code (100-599), got {status!r}")
    for name, size in (("request_size", request_size), ("response_size", response_size)):
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ValueError(f"record_request: {name} must be a whole number of bytes >= 0, got {size!r}")
    if labels and metrics.request_labels is None:
        raise ValueError("record_request: labels given, but the Metrics object declares no per-request "
                         "labels (Metrics(request_labels=RequestLabels(...)))")
    extra = () if metrics.request_labels is None else metrics.request_labels.given(labels)
    method = METHOD_LABEL.get(method.upper(), OTHER_METHOD) if isinstance(method, str) else OTHER_METHOD
    recorder = metrics._manual_http
    if recorder is None:
        recorder = metrics._manual_http = HttpRecorder(metrics)
    key = (method, route, status, extra)
    record = recorder.entries.get(key)
    if record is None:
        record = recorder.resolve(key, method, route, status, extra=extra)
    record(float(seconds), request_size, -1 if response_size is None else response_size,
           None if metrics.span_ids is None else metrics.span_ids())
