"""What the aiohttp, ASGI and WSGI middlewares share: label bounds, path exclusion, cached children."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Hashable, Iterable

from .logging import access_logger
from .metrics import CHILD_CACHE_SIZE, Metrics, resolve
from .request_labels import BoundLabels, values_reader

STANDARD_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
METHOD_LABEL = {method: method for method in STANDARD_METHODS}
OTHER_METHOD = "other"
UNMATCHED = "unmatched"
# Exact paths, and /health's subpaths: a prefix "/health*" would also skip /healthplans/{id}.
DEFAULT_EXCLUDE = ("/metrics", "/health", "/health/*")


def exclusions(patterns: Iterable[str | re.Pattern]) -> tuple[frozenset[str], tuple[str, ...], Callable | None]:
    """(exact paths, prefixes, regex matcher or None) from `exclude_paths`: a path, a prefix
    ending in `*` (`/static/*`), or a compiled regular expression that must match the whole
    path (`re.compile(r"/tenants/[^/]+/ping")`). The middlewares test
    `path in exact or (prefixes and path.startswith(prefixes)) or (regex and regex(path))` inline."""
    if isinstance(patterns, (str, re.Pattern)):
        patterns = (patterns,)  # one given alone, not a list
    patterns = tuple(patterns)
    bad = [p for p in patterns if not isinstance(p, (str, re.Pattern))]
    if bad:
        raise ValueError(f"exclude_paths: expected paths ('/metrics'), prefixes ('/static/*') or compiled "
                         f"regular expressions (re.compile(r'/internal/.*')), got {bad[0]!r}")
    texts = [p for p in patterns if isinstance(p, str)]
    regexes = tuple(p for p in patterns if isinstance(p, re.Pattern))
    if not regexes:
        matcher = None
    elif len(regexes) == 1:
        matcher = regexes[0].fullmatch
    else:
        def matcher(path: str) -> bool:
            return any(regex.fullmatch(path) for regex in regexes)
    return (frozenset(p for p in texts if not p.endswith("*")),
            tuple(p[:-1] for p in texts if p.endswith("*")), matcher)


class HttpRecorder:
    """Pre-resolved children per (method, route key, status), so that a request costs one dict
    lookup and the metric updates themselves."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics
        self.labels = metrics.request_labels  # BoundLabels or None
        # per method label: .add(request) when it starts, .discard(request) when it ends
        self.in_flight = metrics.in_flight_counters((*STANDARD_METHODS, OTHER_METHOD))
        self.entries: dict[Hashable, Callable[[float, int, int], None]] = {}
        self._route_refs: list = []

    def resolve(self, key: Hashable, method: str, route: str, status: int, route_object=None,
                extra: tuple[str, ...] = ()):
        """`record(seconds, bytes received, bytes sent or -1)` for `key`. Middlewares look
        `entries` up themselves and call this only on a miss. Keys may hold `id(route_object)`;
        the object is kept alive here so that its id stays unique. `extra`: the per-request
        label values."""
        entry = self.metrics.http_recorder(method, route, status, extra)
        if len(self.entries) < CHILD_CACHE_SIZE:
            self.entries[key] = entry
            if route_object is not None:
                self._route_refs.append(route_object)
        return entry


def header_labels_reader(labels: BoundLabels | None, header_keys: Callable) -> Callable | None:
    """`read(headers.get)` -> the raw values of the per-request label headers, or None unless
    every label comes from one header (see BoundLabels.headers); `header_keys(names)`: how the
    framework's request holds those headers."""
    if labels is None or labels.headers is None:
        return None
    return values_reader(header_keys(labels.headers))


class HttpMiddleware:
    """The settings of the ASGI and WSGI middlewares, kept as the attributes their request path
    reads (the aiohttp middleware, a closure, keeps the same in locals)."""

    def __init__(self, app, metrics: Metrics | None = None, *, exclude_paths: Iterable = DEFAULT_EXCLUDE,
                 request_id: bool = True, access_log: bool | logging.Logger = False):
        self.app = app
        self.recorder = HttpRecorder(resolve(metrics))
        self._entries, self._in_flight = self.recorder.entries, self.recorder.in_flight
        self._labels = self.recorder.labels
        # every per-request label from one header: read before the app runs (see BoundLabels)
        self._header_labels = header_labels_reader(self._labels, self.header_keys)
        self._span_ids = self.recorder.metrics.span_ids
        self._tenant_early = self._labels is not None and self._labels.tenant_index is not None
        self._excluded_exact, self._excluded_prefixes, self._excluded_regex = exclusions(exclude_paths)
        self.request_id = request_id
        self._access = access_logger(access_log)

    @staticmethod
    def header_keys(names: tuple[str, ...]) -> tuple:
        """How this framework's request holds the headers `names`."""
        return names
