"""Your own metric families with the library's label bounds, and the `app_info` series.

    orders = custom_counter("orders_total", "Orders placed.", ["customer", "plan"],
                            max_values={"customer": 50}, metrics=metrics)
    orders.labels("acme", "pro").inc()          # the 51st customer is recorded as "other"
    set_app_info("1.4.2", commit="9f2c1e0", metrics=metrics)   # app_info{commit=..,version=..} 1

Label values pass through a cap with an `other` overflow, like the per-request labels: by
default the `Metrics` object's `Cardinality` (so a `tenant` label shares the tenant cap of the
HTTP and LLM families); `max_values` gives this family caps of its own (one number for every
label, or one per label). Families are registered in the `Metrics` object's registry and raise
`DuplicateMetricsError` on a name clash.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from prometheus_client import Gauge, Histogram

from .cardinality import LabelLimiter
from .metrics import DuplicateMetricsError, Family, FamilySpec, Metrics, _build, bucket_bounds, resolve

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_INFO_LABELS = 10
MAX_INFO_VALUE_CHARS = 128


def custom_counter(name: str, documentation: str, labels: Sequence[str] = (), *,
                   max_values: int | Mapping[str, int] | None = None, metrics: Metrics | None = None) -> Family:
    """A counter (`name` ends in `_total`) with bounded label values; `.labels(...).inc()`."""
    return _custom(FamilySpec(name, "counter", documentation, tuple(labels)), max_values, metrics)


def custom_gauge(name: str, documentation: str, labels: Sequence[str] = (), *,
                 max_values: int | Mapping[str, int] | None = None, multiprocess_mode: str = "livesum",
                 metrics: Metrics | None = None) -> Family:
    """A gauge with bounded label values; `multiprocess_mode` as prometheus_client's."""
    return _custom(FamilySpec(name, "gauge", documentation, tuple(labels), multiprocess_mode=multiprocess_mode),
                   max_values, metrics)


def custom_histogram(name: str, documentation: str, labels: Sequence[str] = (), *,
                     buckets: Sequence[float] | None = None, max_values: int | Mapping[str, int] | None = None,
                     metrics: Metrics | None = None) -> Family:
    """A histogram with bounded label values; `buckets` (validated), else prometheus_client's defaults."""
    bounds = Histogram.DEFAULT_BUCKETS[:-1] if buckets is None else bucket_bounds(buckets, f"{name}: buckets")
    return _custom(FamilySpec(name, "histogram", documentation, tuple(labels), tuple(bounds)), max_values, metrics)


def _custom(spec: FamilySpec, max_values, metrics: Metrics | None) -> Family:
    metrics = resolve(metrics)
    if spec.type == "counter" and not spec.name.endswith("_total"):
        raise ValueError(f"counter {spec.name!r}: name it with the _total suffix (a Prometheus convention)")
    unknown = set(max_values) - set(spec.labels) if isinstance(max_values, Mapping) else set()
    if unknown:
        raise ValueError(f"{spec.name}: max_values names {sorted(unknown)}, not labels of this family "
                         f"({list(spec.labels)})")
    limiters = [_limiter(metrics, label, max_values) for label in spec.labels]
    metric = _build(spec)
    try:
        metrics.registry.register(metric)
    except ValueError as exc:
        raise DuplicateMetricsError(f"{spec.name}: {exc}") from exc
    return Family(metric, spec.labels, limiters)


def _limiter(metrics: Metrics, label: str, max_values):
    """The shared limiter of `label`, or one of this family's own when it sets a cap."""
    cap = max_values.get(label) if isinstance(max_values, Mapping) else max_values
    if cap is None:
        return metrics.cardinality.limiter(label)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ValueError(f"max_values for label {label!r}: expected a positive whole number, got {cap!r}")
    return LabelLimiter(max_values=cap)


def set_app_info(version: str, *, namespace: str = "", metrics: Metrics | None = None, **labels: str) -> Gauge:
    """One series `<namespace>_app_info{version=..., <labels>} 1` (`app_info` without a
    namespace): the running version and build of the service, to join onto other series.
    At most 10 extra labels, values up to 128 characters; a later call replaces the series
    (in multiprocess mode the replaced one stays in this worker's file: call it once, at start-up)."""
    metrics = resolve(metrics)
    name = f"{namespace}_app_info" if namespace else "app_info"
    values = {"version": version, **labels}
    _check_info(name, values)
    names = tuple(sorted(values))
    gauge = metrics._app_info
    if gauge is not None and (gauge._name != name or gauge._labelnames != names):
        metrics.registry.unregister(gauge)
        gauge = None
    if gauge is None:
        gauge = Gauge(name, "The service's version and build; always 1.", names, registry=None,
                      multiprocess_mode="livemax")
        try:
            metrics.registry.register(gauge)
        except ValueError as exc:
            raise DuplicateMetricsError(f"{name}: {exc}") from exc
        metrics._app_info = gauge
    gauge.clear()
    gauge.labels(**values).set(1)
    return gauge


def _check_info(name: str, values: dict) -> None:
    if len(values) > MAX_INFO_LABELS + 1:
        raise ValueError(f"{name}: at most {MAX_INFO_LABELS} labels besides version, got {len(values) - 1}")
    for label, value in values.items():
        if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
            raise ValueError(f"{name}: {label!r} is not a valid label name")
        if not isinstance(value, str) or not value or len(value) > MAX_INFO_VALUE_CHARS:
            raise ValueError(f"{name}: label {label!r} needs a non-empty text of at most "
                             f"{MAX_INFO_VALUE_CHARS} characters, got {value!r}")
