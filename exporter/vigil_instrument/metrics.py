"""Every metric family of the instrumentation library, defined once and bound to one registry.

`Metrics(registry)` registers all families at once, or none: a second `Metrics` on the same
registry (or a clash with any other collector's names) raises `DuplicateMetricsError` instead of
silently recording into families nobody exposes. Create one per registry and pass it to the
middlewares and helpers; `default_metrics()` is the shared one on prometheus_client's REGISTRY:
the first `Metrics()` made there, which every helper and middleware given no `metrics=` uses.

Gauges that count things held right now (in-flight requests, running agents, open connections,
pool gauges) use `multiprocess_mode="livesum"`, so with PROMETHEUS_MULTIPROC_DIR the scrape
shows the sum over live workers. The four per-request HTTP families are recorded through
`http_recorder()` (see _fast.py for why); every other family is an ordinary prometheus_client
metric wrapped in a `Family`.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from numbers import Real

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, values

from ._fast import HttpSeries, incrementer, request_recorder
from .cardinality import Cardinality
from .exemplars import span_exemplar_reader, span_ids_reader
from .request_labels import RequestLabels

# Children cached per raw label tuple; past this many the cache stops growing (bounded memory
# even if a caller feeds unbounded values: they all resolve to "other" anyway).
CHILD_CACHE_SIZE = 10_000

HTTP_DURATION_BUCKETS = (.005, .01, .025, .05, .075, .1, .25, .5, .75, 1, 2.5, 5, 7.5, 10)
SIZE_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)
AGENT_BUCKETS = (.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TOOL_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)
LLM_BUCKETS = (.1, .25, .5, 1, 2, 4, 8, 15, 30, 60, 120)
TTFT_BUCKETS = (.05, .1, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10, 20)
CONTEXT_TOKEN_BUCKETS = (256, 1024, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 1048576)
MESSAGE_BUCKETS = (.0005, .001, .005, .01, .025, .05, .1, .25, .5, 1, 5)
DB_QUERY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
POOL_CHECKOUT_BUCKETS = (.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5, 30)
REDIS_BUCKETS = (.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1)


# The labels of the agent-to-agent message families, in the order record_agent_message passes them.
AGENT_PAIR_LABELS = ("source_agent", "target_agent")
MESSAGE_LABELS = (*AGENT_PAIR_LABELS, "message_type")


class DuplicateMetricsError(ValueError):
    pass


@dataclass(frozen=True)
class FamilySpec:
    name: str                  # as exposed: counters end in _total
    type: str                  # counter | gauge | histogram
    documentation: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None
    multiprocess_mode: str | None = None   # gauges


# Recorded once per request by the HTTP middlewares, through `Metrics.http_recorder()`.
HTTP_REQUEST_FAMILIES = (
    FamilySpec("http_requests_total", "counter", "HTTP requests by method, route template and status.",
               ("method", "route", "status")),
    FamilySpec("http_request_duration_seconds", "histogram", "HTTP request duration, response sent included.",
               ("method", "route"), HTTP_DURATION_BUCKETS),
    FamilySpec("http_request_size_bytes", "histogram", "HTTP request body bytes received.",
               ("method", "route"), SIZE_BUCKETS),
    FamilySpec("http_response_size_bytes", "histogram", "HTTP response bytes sent (streamed bodies included).",
               ("method", "route"), SIZE_BUCKETS),
)


def http_request_families(extra: tuple[str, ...] = (), histograms: bool = False) -> tuple[FamilySpec, ...]:
    """The per-request families with per-request labels added (see request_labels.py): on the
    counter, and on the histograms when asked for."""
    if not extra:
        return HTTP_REQUEST_FAMILIES
    counter, *rest = HTTP_REQUEST_FAMILIES
    families = [FamilySpec(counter.name, counter.type, counter.documentation, counter.labels + extra)]
    for spec in rest:
        labels = spec.labels + extra if histograms else spec.labels
        families.append(FamilySpec(spec.name, spec.type, spec.documentation, labels, spec.buckets))
    return tuple(families)


def multiprocess_mode() -> bool:
    """Whether prometheus_client stores values in PROMETHEUS_MULTIPROC_DIR files (decided when
    prometheus_client was imported)."""
    return getattr(values.ValueClass, "_multiprocess", False)


def checked_buckets(buckets: Mapping[str, Sequence[float]] | None) -> dict[str, tuple[float, ...]]:
    """`{histogram family name: upper bounds}`, validated: each a non-empty, strictly increasing
    list of finite numbers (a trailing +Inf is allowed and implied anyway)."""
    if buckets is None:
        return {}
    if not isinstance(buckets, Mapping):
        raise ValueError("buckets: expected {histogram family name: [upper bounds]}, e.g. "
                         "{'http_request_duration_seconds': [0.01, 0.1, 1]}")
    return {name: bucket_bounds(bounds, f"buckets[{name!r}]") for name, bounds in buckets.items()}


def bucket_bounds(bounds, where: str) -> tuple[float, ...]:
    """One histogram's upper bounds, validated (see `checked_buckets`)."""
    if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Sequence):
        raise ValueError(f"{where}: expected a list of upper bounds, got {bounds!r}")
    if not all(isinstance(bound, Real) and not isinstance(bound, bool) for bound in bounds):
        raise ValueError(f"{where}: upper bounds must be numbers, got {list(bounds)!r}")
    values = [float(bound) for bound in bounds]
    if values and values[-1] == math.inf:
        values.pop()
    if not values:
        raise ValueError(f"{where}: give at least one finite upper bound")
    if not all(math.isfinite(value) for value in values):
        raise ValueError(f"{where}: upper bounds must be finite (+Inf is implied), got {list(bounds)!r}")
    if any(later <= earlier for earlier, later in zip(values, values[1:])):
        raise ValueError(f"{where}: upper bounds must be strictly increasing, got {list(bounds)!r}")
    return tuple(values)


class Family:
    """A metric with bounded label values and cached children.

    `labels(*values)` (or `labels(**values)`) applies the cardinality policy once per distinct
    raw tuple, then serves the prometheus_client child from a dict.
    """

    __slots__ = ("metric", "names", "_limiters", "_children", "_lock")

    def __init__(self, metric, labels: tuple[str, ...], limiters: Sequence[Callable[[str], str]]):
        self.metric = metric
        self.names = labels
        self._limiters = tuple(limiters)
        self._children: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def labels(self, *values, **by_name):
        if by_name:
            if values or set(by_name) != set(self.names):
                raise ValueError(f"{self.metric._name}: give the labels {list(self.names)}, "
                                 f"by position or all by name")
            values = tuple(by_name[name] for name in self.names)
        child = self._children.get(values)
        if child is None:
            child = self._resolve(values)
        return child

    def _resolve(self, values: tuple):
        if not self._limiters:
            return self.metric
        bounded = [limit(str(value)) for limit, value in zip(self._limiters, values, strict=True)]
        child = self.metric.labels(*bounded)
        with self._lock:
            if len(self._children) < CHILD_CACHE_SIZE:
                self._children[values] = child
        return child

    # Families without labels are used directly.
    def inc(self, amount: float = 1) -> None:
        self.metric.inc(amount)

    def dec(self, amount: float = 1) -> None:
        self.metric.dec(amount)

    def set(self, value: float) -> None:
        self.metric.set(value)

    def observe(self, value: float) -> None:
        self.metric.observe(value)


def _counter(name, doc, labels=()) -> FamilySpec:
    return FamilySpec(name, "counter", doc, tuple(labels))


def _gauge(name, doc, labels=(), mode="livesum") -> FamilySpec:
    return FamilySpec(name, "gauge", doc, tuple(labels), multiprocess_mode=mode)


def _histogram(name, doc, labels, buckets) -> FamilySpec:
    return FamilySpec(name, "histogram", doc, tuple(labels), tuple(buckets))


def _build(spec: FamilySpec):
    if spec.type == "counter":
        return Counter(spec.name, spec.documentation, spec.labels, registry=None)
    if spec.type == "gauge":
        return Gauge(spec.name, spec.documentation, spec.labels, registry=None,
                     multiprocess_mode=spec.multiprocess_mode)
    return Histogram(spec.name, spec.documentation, spec.labels, registry=None, buckets=spec.buckets)


class Metrics:
    """All service metric families (names per the Vigil contract), registered in `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None, cardinality: Cardinality | None = None,
                 request_labels: RequestLabels | None = None, exemplars: bool | None = None,
                 buckets: Mapping[str, Sequence[float]] | None = None):
        self.registry = REGISTRY if registry is None else registry
        self.cardinality = cardinality or Cardinality()
        # buckets: {histogram family name: upper bounds}, replacing that family's defaults
        self.buckets = checked_buckets(buckets)
        # exemplars: None = when the OpenTelemetry API is installed (see exemplars.py)
        self.span_ids = span_ids_reader(exemplars)  # () -> (trace id, span id) or None; None when off
        self.exemplar = span_exemplar_reader(exemplars)  # () -> labels or None; None when off
        self._collectors: list = []
        self._specs: list[FamilySpec] = []
        self._app_info = None      # set_app_info()'s gauge
        self._manual_http = None   # record_request()'s cache of children
        f = self._family

        # HTTP. Per-request families live in compact storage (see _fast.HttpSeries), except in
        # multiprocess mode, where values must go through prometheus_client's files.
        self.request_labels = None
        extra, on_histograms = (), False
        if request_labels is not None:
            self.cardinality.set_default_caps(request_labels.max_values)
            self.request_labels = request_labels.bind(self.cardinality)
            extra, on_histograms = request_labels.names, request_labels.histograms
        http_families = tuple(self._with_buckets(spec) for spec in http_request_families(extra, on_histograms))
        in_flight = _gauge("http_requests_in_flight", "HTTP requests being served now.", ("method",))
        self._http_extra_on_histograms = on_histograms
        self._http_series = None
        self._http_families = None
        self.http_in_flight = None  # the gauge in multiprocess mode; else counted by _http_series
        if multiprocess_mode():
            self._http_families = [f(spec) for spec in http_families]
            self.http_in_flight = f(in_flight)
        else:
            self._http_series = HttpSeries(http_families, on_histograms, in_flight)
            self._collectors.extend(self._http_series.collectors())
            self._specs.extend((*http_families, in_flight))

        # Agents, messages, tools, LLM calls, caches
        self.agent_executions = f(_counter(
            "agent_executions_total", "Agent executions by status (success|error).", ("agent", "status")))
        self.agent_duration = f(_histogram(
            "agent_execution_duration_seconds", "Agent execution duration.", ("agent",), AGENT_BUCKETS))
        self.agent_errors = f(_counter(
            "agent_errors_total", "Failed agent executions by exception type.", ("agent", "error_type")))
        self.agents_running = f(_gauge("agents_running", "Agent executions running now.", ("agent",)))
        self.agent_messages = f(_counter("agent_messages_total", "Agent-to-agent messages.", MESSAGE_LABELS))
        self.agent_message_size = f(_histogram(
            "agent_message_size_bytes", "Agent-to-agent message size.", MESSAGE_LABELS, SIZE_BUCKETS))
        self.agent_message_context = f(_histogram(
            "agent_message_context_tokens", "Context carried by an agent-to-agent message, in tokens.",
            AGENT_PAIR_LABELS, CONTEXT_TOKEN_BUCKETS))
        self.agent_message_retries = f(_counter(
            "agent_message_retries_total", "Retries to deliver agent-to-agent messages.", MESSAGE_LABELS))
        self.agent_message_errors = f(_counter(
            "agent_message_errors_total", "Agent-to-agent messages that failed, by exception type.",
            (*AGENT_PAIR_LABELS, "error_type")))
        self.agent_message_duration = f(_histogram(
            "agent_message_processing_duration_seconds", "Time to process one agent message.",
            ("message_type",), MESSAGE_BUCKETS))
        self.tool_executions = f(_counter(
            "tool_executions_total", "Tool executions by status (success|error).", ("tool", "status")))
        self.tool_duration = f(_histogram(
            "tool_execution_duration_seconds", "Tool execution duration.", ("tool",), TOOL_BUCKETS))
        # LLM calls. Counters carry the (bounded) tenant and agent the call was made for.
        self.llm_requests = f(_counter(
            "llm_requests_total", "LLM requests by status (success|error), tenant and agent.",
            ("provider", "model", "status", "tenant", "agent")))
        self.llm_errors = f(_counter(
            "llm_errors_total",
            "Failed LLM requests by class (rate_limit|timeout|server|content_filter|other).",
            ("provider", "model", "error_class")))
        self.llm_retries = f(_counter("llm_retries_total", "LLM request retries.", ("provider", "model")))
        self.llm_duration = f(_histogram(
            "llm_request_duration_seconds", "LLM request duration.", ("provider", "model"), LLM_BUCKETS))
        self.llm_time_to_first_token = f(_histogram(
            "llm_time_to_first_token_seconds", "Time from the request to the first streamed token.",
            ("provider", "model"), TTFT_BUCKETS))
        self.llm_streaming_duration = f(_histogram(
            "llm_streaming_duration_seconds", "Time from the first streamed token to the end of the stream.",
            ("provider", "model"), LLM_BUCKETS))
        self.llm_tokens = f(_counter(
            "llm_tokens_total",
            "LLM tokens by type (prompt|cached|completion|reasoning, disjoint), tenant and agent.",
            ("provider", "model", "type", "tenant", "agent")))
        self.llm_cost = f(_counter(
            "llm_cost_usd_total", "LLM cost in USD from the configured price table, by tenant and agent.",
            ("provider", "model", "tenant", "agent")))
        self.cache_hits = f(_counter("cache_hits_total", "Cache hits.", ("cache",)))
        self.cache_misses = f(_counter("cache_misses_total", "Cache misses.", ("cache",)))

        # Auth
        self.auth_logins = f(_counter(
            "auth_logins_total", "Logins by provider and outcome (success|failure).", ("provider", "outcome")))
        self.auth_token_refreshes = f(_counter(
            "auth_token_refreshes_total", "Token refreshes by provider and outcome.", ("provider", "outcome")))
        self.auth_failed_attempts = f(_counter(
            "auth_failed_attempts_total", "Failed authentication attempts by reason.", ("reason",)))
        self.auth_api_keys_created = f(_counter("auth_api_keys_created_total", "API keys created."))
        self.auth_api_keys_revoked = f(_counter("auth_api_keys_revoked_total", "API keys revoked."))
        self.auth_requests = f(_counter(
            "auth_requests_total", "Requests by authentication type (jwt|api_key|none).", ("auth_type",)))
        self.auth_principal_requests = None
        if self.cardinality.identities:
            self.auth_principal_requests = f(_counter(
                "auth_requests_by_principal_total",
                "Requests by authentication type and hashed user / API-key id (opt-in).",
                ("auth_type", "principal")))

        # Connections and queues
        self.websocket_connections = f(_gauge("websocket_connections", "WebSocket connections open now."))
        self.websocket_messages = f(_counter(
            "websocket_messages_total", "WebSocket messages by direction (in|out).", ("direction",)))
        # A queue is usually shared (Redis list, broker): the latest reading wins, not the sum.
        self.queue_depth = f(_gauge("queue_depth", "Items waiting in a queue.", ("queue",),
                                    mode="livemostrecent"))

        # SQLAlchemy pool and queries (same names as the exporter's pool gauges, label `pool`)
        self.db_pool_size = f(_gauge("vigil_db_pool_size", "Configured size of the service's pool.", ("pool",)))
        self.db_pool_checked_out = f(_gauge(
            "vigil_db_pool_checked_out", "Pool connections in use.", ("pool",)))
        self.db_pool_overflow = f(_gauge(
            "vigil_db_pool_overflow", "Pool connections beyond its size.", ("pool",)))
        self.db_pool_checked_in = f(_gauge(
            "vigil_db_pool_checked_in", "Idle connections kept in the pool.", ("pool",)))
        self.db_pool_checkout_duration = f(_histogram(
            "vigil_db_pool_checkout_duration_seconds", "Time to get a connection from the pool.",
            ("pool",), POOL_CHECKOUT_BUCKETS))
        self.db_pool_connections_created = f(_counter(
            "vigil_db_pool_connections_created_total", "New DBAPI connections opened by the pool.", ("pool",)))
        self.db_pool_invalidations = f(_counter(
            "vigil_db_pool_invalidations_total", "Pool connections invalidated.", ("pool",)))
        self.db_query_duration = f(_histogram(
            "vigil_db_query_duration_seconds",
            "Query duration by statement type (SELECT|INSERT|UPDATE|DELETE|other).",
            ("pool", "statement"), DB_QUERY_BUCKETS))

        # Redis client
        self.redis_operations = f(_counter(
            "redis_client_operations_total", "Redis commands by status (success|error).",
            ("client", "command", "status")))
        self.redis_duration = f(_histogram(
            "redis_client_operation_duration_seconds", "Redis command round trip.",
            ("client", "command"), REDIS_BUCKETS))
        self.redis_connections_active = f(_gauge(
            "redis_client_connections_active", "Connections checked out of the client's pool.", ("client",)))

        self._check_bucket_names()
        self._register()
        if self.registry is REGISTRY:
            _adopt_as_default(self)

    def current_exemplar(self) -> dict[str, str] | None:
        """The exemplar for an observation made now (None without exemplars or a sampled span)."""
        return None if self.exemplar is None else self.exemplar()

    def in_flight_counters(self, methods: Sequence[str]) -> dict:
        """Per method label, the requests in flight: `.add(request)` when one starts,
        `.discard(request)` when it ends (a set; the gauge's child in multiprocess mode)."""
        if self._http_series is not None:
            return self._http_series.in_flight(methods)
        return {method: _GaugeAsSet(self.http_in_flight.labels(method)) for method in methods}

    def http_recorder(self, method: str, route: str, status: int,
                      extra: tuple[str, ...] = ()) -> Callable[..., None]:
        """`record(seconds, bytes received, bytes sent or -1, span_ids=None)` for one request
        label set; `extra`: the per-request label values, already bounded; `span_ids`: what
        `self.span_ids()` returned."""
        method, route, status = (self.cardinality.limiter(name)(str(value)) for name, value in
                                 (("method", method), ("route", route), ("status", status)))
        if self._http_series is not None:
            return self._http_series.recorder(method, route, status, extra)
        requests, *histograms = (family.metric for family in self._http_families)
        on_histograms = extra if self._http_extra_on_histograms else ()
        return request_recorder(requests.labels(method, route, status, *extra),
                                *(histogram.labels(method, route, *on_histograms) for histogram in histograms))

    def families(self) -> list[FamilySpec]:
        """Every family this object registered, e.g. to generate documentation."""
        return list(self._specs)

    def _family(self, spec: FamilySpec) -> Family:
        spec = self._with_buckets(spec)
        metric = _build(spec)
        self._collectors.append(metric)
        self._specs.append(spec)
        return Family(metric, spec.labels, [self.cardinality.limiter(name) for name in spec.labels])

    def _with_buckets(self, spec: FamilySpec) -> FamilySpec:
        bounds = self.buckets.get(spec.name)
        return spec if bounds is None or spec.type != "histogram" else replace(spec, buckets=bounds)

    def _check_bucket_names(self) -> None:
        histograms = {spec.name for spec in self._specs if spec.type == "histogram"}
        unknown = sorted(set(self.buckets) - histograms)
        if unknown:
            raise ValueError(f"buckets: {unknown} {'is' if len(unknown) == 1 else 'are'} not a histogram "
                             f"family of the instrumentation library; expected one of {sorted(histograms)}")

    def _register(self) -> None:
        done = []
        try:
            for collector in self._collectors:
                self.registry.register(collector)
                done.append(collector)
        except ValueError as exc:
            for collector in done:
                self.registry.unregister(collector)
            raise DuplicateMetricsError(
                f"{exc}. The instrumentation metrics are already registered in this registry: "
                "create one Metrics per registry and pass it around (or use default_metrics())."
            ) from exc


class _GaugeAsSet:
    """A gauge child counting like the in-flight sets: +1 on add, -1 on discard."""

    def __init__(self, child):
        self._inc = incrementer(child)

    def add(self, _request) -> None:
        self._inc(1)

    def discard(self, _request) -> None:
        self._inc(-1)


_default: Metrics | None = None
_default_lock = threading.RLock()


def _adopt_as_default(metrics: Metrics) -> None:
    """The first `Metrics` registered in the default REGISTRY is the default one: helpers and
    middlewares given no `metrics=` then record into it, not into a second set of families
    (which the registry would refuse, at request time)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = metrics


def default_metrics() -> Metrics:
    """The process-wide `Metrics` on prometheus_client's default REGISTRY: the one the
    application made there (`Metrics()`), else one made on first use."""
    with _default_lock:
        if _default is None:
            Metrics()  # adopts itself as the default
        return _default


def resolve(metrics: Metrics | None) -> Metrics:
    return default_metrics() if metrics is None else metrics
