"""Per-request labels on the HTTP families, declared once for every framework.

    labels = RequestLabels(
        tenant=[from_header("X-Tenant-ID"), from_path_param("tenant"), from_state("tenant")],  # first found
        auth_type=from_state("auth_type"),
        client=from_header("X-Client-Name"),
        max_values={"tenant": 200},
    )
    metrics = Metrics(request_labels=labels)        # aiohttp, ASGI and WSGI middlewares alike

Where a source is read:
- `from_header(name)`: the request header;
- `from_path_param(name)`: the matched route's parameter (aiohttp `match_info`, Starlette / FastAPI
  `scope["path_params"]`, Flask `view_args`, Django `resolver_match.kwargs`);
- `from_state(key)`: set by the application while it serves the request (aiohttp `request[key]`,
  Starlette `request.state.<key>`, WSGI `environ[key]`, i.e. Flask `request.environ`, Django
  `request.META`), read once the response is known.

Values are bounded by the `Metrics` object's `Cardinality` (cap + `other`, shared with the LLM
`tenant` and `agent` labels); `hash=True` records the first 8 hex characters of a salted
SHA-256 instead of the value. A label with no value is recorded as `none`. The labels go on
`http_requests_total`; `histograms=True` puts them on the three histograms too (a tenant
then multiplies every bucket of every route).

When the `tenant` label's value is known before the handler runs (a header or an aiohttp path
parameter), it is also the tenant of the request's context, so LLM calls made while serving it
are counted under it (see context.py).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .cardinality import Cardinality, hash_id
from .context import NONE

HASH_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Source:
    kind: str        # header | path_param | state
    key: str
    hash: bool = False


def from_header(name: str, *, hash: bool = False) -> Source:
    return Source("header", name, hash)


def from_path_param(name: str, *, hash: bool = False) -> Source:
    return Source("path_param", name, hash)


def from_state(key: str, *, hash: bool = False) -> Source:
    return Source("state", key, hash)


class RequestLabels:
    """The declaration: label name -> one source or several tried in order."""

    def __init__(self, *, max_values: Mapping[str, int | None] | None = None, histograms: bool = False,
                 **labels: Source | Sequence[Source]):
        if not labels:
            raise ValueError("RequestLabels needs at least one label, e.g. tenant=from_header('X-Tenant-ID')")
        reserved = {"method", "route", "status", "le"} & set(labels)
        if reserved:
            raise ValueError(f"request labels cannot be named {sorted(reserved)}: the HTTP families use them")
        self.sources: dict[str, tuple[Source, ...]] = {}
        for name, sources in labels.items():
            sources = (sources,) if isinstance(sources, Source) else tuple(sources)
            if not sources or not all(isinstance(s, Source) for s in sources):
                raise TypeError(f"request label {name!r}: give from_header(), from_path_param() or "
                                "from_state() sources")
            self.sources[name] = sources
        self.names = tuple(self.sources)
        self.max_values = dict(max_values or {})
        self.histograms = histograms

    def kinds(self) -> set[str]:
        return {source.kind for sources in self.sources.values() for source in sources}

    def bind(self, cardinality: Cardinality) -> BoundLabels:
        return BoundLabels(self, cardinality)


def values_reader(keys: Sequence) -> Callable[[Callable], tuple]:
    """`read(get)` -> `(get(key) for each key)` as a tuple; unrolled for up to three keys
    (`tuple(map(get, keys))` costs several times as much per request)."""
    keys = tuple(keys)
    if len(keys) == 1:
        (first,) = keys
        return lambda get: (get(first),)
    if len(keys) == 2:
        first, second = keys
        return lambda get: (get(first), get(second))
    if len(keys) == 3:
        first, second, third = keys
        return lambda get: (get(first), get(second), get(third))
    return lambda get: tuple([get(key) for key in keys])


class BoundLabels:
    """A declaration with its bounds, for the middlewares: each label's first raw value found
    is hashed (if asked; cached) and bounded (cap + `other`, cached by the limiter)."""

    def __init__(self, declaration: RequestLabels, cardinality: Cardinality):
        self.declaration = declaration
        self.names = declaration.names
        self.histograms = declaration.histograms
        self._plan = [(sources, cardinality.limiter(name)) for name, sources in declaration.sources.items()]
        self._salt = cardinality.id_salt
        self._hashes: dict[str, str] = {}
        self._lock = threading.Lock()
        self.tenant_index = self.names.index("tenant") if "tenant" in self.names else None
        # When each label has one source and it is a header, the middlewares read the raw
        # values of `headers` before the handler and look them up in `by_headers`:
        # raw values (str, bytes or None) -> (label values, the tenant for the context).
        single = [sources[0] for sources in declaration.sources.values() if len(sources) == 1]
        self.headers = tuple(source.key for source in single) if len(single) == len(self.names) and all(
            source.kind == "header" for source in single) else None
        self.by_headers: dict[tuple, tuple[tuple[str, ...], str | None]] = {}
        self._bounded: dict[tuple[str | None, ...], tuple[str, ...]] = {}  # found values -> label values

    def read(self, request, get: Callable[[object, str, str], object]) -> tuple[str, ...]:
        """The label values of `request`; `get(request, kind, key)` is the framework's reader
        of a source (None when absent)."""
        return self._bound(tuple(self._first(request, get, sources) for sources, _ in self._plan))

    def from_headers(self, raw: tuple) -> tuple[tuple[str, ...], str | None]:
        """(label values, tenant for the context) of the raw values of `self.headers` (the
        middlewares look `by_headers` up first: this is its miss)."""
        found = tuple(self._found(value, sources[0]) for value, (sources, _) in zip(raw, self._plan, strict=True))
        entry = self._bound(found), None if self.tenant_index is None else found[self.tenant_index]
        with self._lock:
            if len(self.by_headers) < HASH_CACHE_SIZE:
                self.by_headers[raw] = entry
        return entry

    def _bound(self, found: tuple[str | None, ...]) -> tuple[str, ...]:
        """The label values (bounded, `none` when absent) of each label's value found."""
        values = self._bounded.get(found)
        if values is None:
            values = tuple(NONE if value is None else limit(value) for value, (_, limit) in zip(found, self._plan))
            with self._lock:
                if len(self._bounded) < HASH_CACHE_SIZE:  # values past the caps are `other`: bounded anyway
                    self._bounded[found] = values
        return values

    def given(self, values: Mapping[str, object] | None) -> tuple[str, ...]:
        """The label values passed by name (`record_request(labels=...)`), bounded; `none` for
        a label not given."""
        values = values or {}
        unknown = set(values) - set(self.names)
        if unknown:
            raise ValueError(f"labels {sorted(unknown)} are not declared; the per-request labels are "
                             f"{list(self.names)}")
        return tuple(NONE if values.get(name) in (None, "") else limit(str(values[name]))
                     for name, (_, limit) in zip(self.names, self._plan))

    def early(self, request, get: Callable[[object, str, str], object]) -> str | None:
        """The tenant from the sources `get` can read before the handler runs, for the context."""
        if self.tenant_index is None:
            return None
        return self._first(request, get, self._plan[self.tenant_index][0])

    def tenant_reads(self, kind: str) -> bool:
        """Whether `early` reads a source of `kind` ("header", "path_param", "state")."""
        return self.tenant_index is not None and any(
            source.kind == kind for source in self._plan[self.tenant_index][0])

    def _first(self, request, get, sources) -> str | None:
        for source in sources:
            value = self._found(get(request, source.kind, source.key), source)
            if value is not None:
                return value
        return None

    def _found(self, raw, source: Source) -> str | None:
        """A source's raw value as a label value before bounding: None when absent or empty."""
        if raw is None or raw == "" or raw == b"":
            return None
        value = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
        return self._hash(value) if source.hash else value

    def _hash(self, value: str) -> str:
        hashed = self._hashes.get(value)
        if hashed is None:
            hashed = hash_id(value, self._salt)
            with self._lock:
                if len(self._hashes) < HASH_CACHE_SIZE:
                    self._hashes[value] = hashed
        return hashed
