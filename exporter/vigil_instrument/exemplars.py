"""Exemplars: the current OpenTelemetry trace and span ids on histogram observations.

When the OpenTelemetry API is installed (`pip install opentelemetry-api`, the SDK or an
auto-instrumentation sets up the tracing itself), the HTTP duration histogram and the agent,
tool, message and LLM duration histograms attach `{trace_id, span_id}` of the span current
when the observation is made, for sampled spans only (an unsampled trace cannot be opened).
Prometheus stores them when started with `--enable-feature=exemplar-storage`; they travel only
in the OpenMetrics format, which the `/metrics` handlers serve to scrapers that ask for it.

prometheus_client's multiprocess mode keeps no exemplars: with PROMETHEUS_MULTIPROC_DIR set,
none are exposed.
"""
from __future__ import annotations

from collections.abc import Callable

Exemplar = dict[str, str]


def span_exemplar_reader(enabled: bool | None = None) -> Callable[[], Exemplar | None] | None:
    """A function returning the current span's exemplar labels (or None), or None when
    exemplars are off: `enabled=False`, or None (automatic) without the OpenTelemetry API."""
    if enabled is False:
        return None
    try:
        from opentelemetry.trace import get_current_span
    except ImportError:
        if enabled:
            raise ImportError("exemplars=True needs the OpenTelemetry API: pip install opentelemetry-api") from None
        return None

    def current() -> Exemplar | None:
        context = get_current_span().get_span_context()
        if not context.trace_flags.sampled or not context.is_valid:
            return None
        return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}
    return current
