"""Recording one HTTP request cheaply: the counter and three histograms in one call.

prometheus_client's `inc()`/`observe()` validate the child, walk the buckets in Python and
update one locked value object each; per request that was most of the middleware's cost, and it
grew with the number of routes as their value objects competed for the CPU caches. Two paths:

- single process: `HttpSeries` keeps the four families in compact arrays, one lock, and the
  requests in flight in a set per method, exposed through collectors;
- multiprocess mode (values must live in prometheus_client's mmap files): `request_recorder`
  updates the children's own value objects directly, with a bisect for the bucket, falling back
  to the public methods if a prometheus_client release renames those internals.

Both expose exactly what the public API would (tests/test_instrument_metrics.py checks).
"""
from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable
from functools import partial
from itertools import accumulate
from time import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from .exemplars import as_exemplar

INF = float("inf")


def incrementer(child) -> Callable[[float], None]:
    """`inc(amount)` of a counter or gauge child (negative amounts allowed for gauges)."""
    value = getattr(child, "_value", None)
    return value.inc if callable(getattr(value, "inc", None)) else child.inc


def _histogram_parts(child):
    """(sum inc, bucket incs, upper bounds) of a histogram child, or None."""
    try:
        parts = child._sum.inc, [bucket.inc for bucket in child._buckets], list(child._upper_bounds)
    except AttributeError:
        return None
    return parts if len(parts[1]) == len(parts[2]) and parts[2][-1] == INF else None


def request_recorder(requests, duration, request_size, response_size) -> Callable[[float, int, int], None]:
    """`record(seconds, bytes received, bytes sent)` for one label set; sent < 0 means no
    response was seen (its size is not observed)."""
    parts = [_histogram_parts(child) for child in (duration, request_size, response_size)]
    count = incrementer(requests)
    if None in parts:
        def record_slow(seconds: float, received: int, sent: int, span_ids=None) -> None:
            count(1)
            duration.observe(seconds)
            request_size.observe(received)
            if sent >= 0:
                response_size.observe(sent)
        return record_slow

    (d_sum, d_buckets, d_bounds), (q_sum, q_buckets, q_bounds), (r_sum, r_buckets, r_bounds) = parts

    # Multiprocess mode: prometheus_client keeps no exemplars there, so `span_ids` is ignored.
    def record(seconds: float, received: int, sent: int, span_ids=None, bisect=bisect_left) -> None:
        count(1)
        d_sum(seconds)
        d_buckets[bisect(d_bounds, seconds)](1)  # first bucket whose bound >= the value
        q_sum(received)
        q_buckets[bisect(q_bounds, received)](1)
        if sent >= 0:
            r_sum(sent)
            r_buckets[bisect(r_bounds, sent)](1)
    return record


class HttpSeries:
    """The per-request HTTP families in compact storage (single-process mode).

    Each (method, route) owns one list of floats holding the sum and per-bucket counts of the
    three histograms, each (method, route, status) one more for its request count: a request
    updates two lists under one lock instead of seven value objects, which keeps its cost flat
    as routes are added. Lists, not arrays: CPython specialises list item reads and writes, and
    an `array` item update costs about three times the instructions. Exemplars are kept as the span's
    raw ids and formatted at scrape time. Requests in flight are members of a set per method
    (adding and discarding are atomic, no lock), counted at scrape time.
    """

    def __init__(self, specs, extra_on_histograms: bool = False, in_flight_spec=None):
        self._counter, *self._histograms = specs
        self._in_flight_spec = in_flight_spec
        self._extra_on_histograms = extra_on_histograms
        self._bounds = [tuple(spec.buckets) + (INF,) for spec in self._histograms]
        self._offsets = []  # index of each histogram's sum; its buckets follow
        size = 0
        for bounds in self._bounds:
            self._offsets.append(size)
            size += 1 + len(bounds)
        self._size = size
        self._lock = threading.Lock()
        self._groups: dict[tuple[str, ...], list[float]] = {}   # (method, route[, per-request labels])
        self._counts: dict[tuple[str, ...], list[float]] = {}   # (method, route, status[, per-request labels])
        # group -> per duration bucket, the latest ((trace id, span id), value, timestamp) or None
        self._exemplars: dict[tuple[str, ...], list] = {}
        self._in_flight: dict[str, set] = {}

    def in_flight(self, methods) -> dict[str, set]:
        """The in-flight set of each method label; from the first call on, the gauge shows
        every method given (0 when none is in flight), as a labelled gauge child would."""
        with self._lock:
            for method in methods:
                self._in_flight.setdefault(method, set())
            return dict(self._in_flight)

    def recorder(self, method: str, route: str, status: str,
                 extra: tuple[str, ...] = ()) -> Callable[..., None]:
        group_key = (method, route, *extra) if self._extra_on_histograms else (method, route)
        with self._lock:
            group = self._groups.get(group_key)
            if group is None:
                group = self._groups[group_key] = [0.0] * self._size
                self._exemplars[group_key] = [None] * len(self._bounds[0])
            count = self._counts.setdefault((method, route, status, *extra), [0.0])
        acquire, release, exemplars = self._lock.acquire, self._lock.release, self._exemplars[group_key]
        (d_bounds, q_bounds, r_bounds), (d, q, r) = self._bounds, self._offsets
        d_first, q_first, r_first = d + 1, q + 1, r + 1  # each histogram's first bucket
        empty_body = q_first + bisect_left(q_bounds, 0)  # most requests have none: no search

        def record(seconds: float, received: int, sent: int, span_ids=None, bisect=bisect_left, time=time) -> None:
            bucket = bisect(d_bounds, seconds)  # first bucket whose bound >= value
            acquire()
            try:
                count[0] += 1.0
                group[d] += seconds
                group[d_first + bucket] += 1.0
                if received:
                    group[q] += received
                    group[q_first + bisect(q_bounds, received)] += 1.0
                else:
                    group[empty_body] += 1.0
                if sent >= 0:
                    group[r] += sent
                    group[r_first + bisect(r_bounds, sent)] += 1.0
            finally:
                release()
            if span_ids is not None:  # the latest one per duration bucket (one atomic store)
                exemplars[bucket] = (span_ids, seconds, time())
        return record

    def collectors(self) -> list:
        """One collector per family, to register."""
        views = [_FamilyView(self._counter, self._collect_requests)] + [
            _FamilyView(spec, partial(self._collect_histogram, index)) for index, spec in enumerate(self._histograms)]
        if self._in_flight_spec is not None:
            views.append(_FamilyView(self._in_flight_spec, self._collect_in_flight))
        return views

    def _collect_in_flight(self):
        with self._lock:
            counts = [(method, len(requests)) for method, requests in self._in_flight.items()]
        family = _empty_family(self._in_flight_spec)
        for method, value in counts:
            family.add_metric((method,), value)
        return family

    def _collect_requests(self):
        with self._lock:
            counts = [(labels, value[0]) for labels, value in self._counts.items()]
        family = _empty_family(self._counter)
        for labels, value in counts:
            family.add_metric(labels, value)
        return family

    def _collect_histogram(self, index: int):
        spec, bounds, start = self._histograms[index], self._bounds[index], self._offsets[index]
        with self._lock:
            groups = [(labels, values[start:start + 1 + len(bounds)])
                      for labels, values in self._groups.items()]
            exemplars = {labels: list(by_bucket) for labels, by_bucket in self._exemplars.items()} if index == 0 else {}
        family = _empty_family(spec)
        les = [floatToGoString(bound) for bound in bounds]
        for labels, (total, *buckets) in groups:
            cumulative = list(zip(les, accumulate(buckets)))
            by_bucket = exemplars.get(labels)
            if by_bucket and any(by_bucket):
                cumulative = [(le, value, None if kept is None else Exemplar(as_exemplar(kept[0]), *kept[1:]))
                              for (le, value), kept in zip(cumulative, by_bucket)]
            family.add_metric(labels, cumulative, total)
        return family


class _FamilyView:
    """The registry's handle on one family of an `HttpSeries`. `_labelnames` mirrors
    prometheus_client's metric objects for tools that introspect a registry."""

    def __init__(self, spec, render: Callable):
        self._spec = spec
        self._render = render
        self._labelnames = spec.labels

    def describe(self):
        return [_empty_family(self._spec)]

    def collect(self):
        return [self._render()]


_FAMILIES = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}


def _empty_family(spec):
    return _FAMILIES[spec.type](spec.name, spec.documentation, labels=spec.labels)
