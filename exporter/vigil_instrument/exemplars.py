"""Exemplars: the current OpenTelemetry trace and span ids on histogram observations.

When the OpenTelemetry API is installed (`pip install opentelemetry-api`, the SDK or an
auto-instrumentation sets up the tracing itself), the HTTP duration histogram and the agent,
tool, message and LLM duration histograms attach `{trace_id, span_id}` of the span current
when the observation is made, for sampled spans only (an unsampled trace cannot be opened).
Prometheus stores them when started with `--enable-feature=exemplar-storage`; they travel only
in the OpenMetrics format, which the `/metrics` handlers serve to scrapers that ask for it.

The HTTP middlewares read the ids as two integers (`span_ids_reader`) and keep them so; they
are formatted as hex only when a scraper asks for OpenMetrics. Reading them goes straight to
the context variable behind OpenTelemetry's default runtime context, which is what
`get_current_span()` ends up reading, without its four calls and two property reads; with
another runtime context (OTEL_PYTHON_CONTEXT) or a release that changes those internals,
the public API is used.

prometheus_client's multiprocess mode keeps no exemplars: with PROMETHEUS_MULTIPROC_DIR set,
none are exposed.
"""
from __future__ import annotations

from collections.abc import Callable

Exemplar = dict[str, str]
SpanIds = tuple[int, int]  # (trace id, span id)
_SAMPLED = 0x01            # W3C trace-flags bit


def is_tracing_middleware(middleware) -> bool:
    """Whether a framework middleware (a class or function) is OpenTelemetry's: it must wrap the
    metrics middleware, so that its server span is current when a request is recorded."""
    return (getattr(middleware, "__module__", None) or "").startswith("opentelemetry.")


def span_ids_reader(enabled: bool | None = None) -> Callable[[], SpanIds | None] | None:
    """A function returning the current sampled span's (trace id, span id), or None when no
    sampled span is current; None itself when exemplars are off: `enabled=False`, or None
    (automatic) without the OpenTelemetry API."""
    if enabled is False:
        return None
    try:
        from opentelemetry.trace import get_current_span
    except ImportError:
        if enabled:
            raise ImportError("exemplars=True needs the OpenTelemetry API: pip install opentelemetry-api") from None
        return None

    def public() -> SpanIds | None:
        context = get_current_span().get_span_context()
        if not context.trace_flags.sampled or not context.is_valid:
            return None
        return context.trace_id, context.span_id
    return _direct_reader(public) or public


def as_exemplar(ids: SpanIds) -> Exemplar:
    trace_id, span_id = ids
    return {"trace_id": format(trace_id, "032x"), "span_id": format(span_id, "016x")}


def span_exemplar_reader(enabled: bool | None = None) -> Callable[[], Exemplar | None] | None:
    """Like `span_ids_reader`, with the ids formatted as exemplar labels (for prometheus_client's
    `observe(value, exemplar)`)."""
    ids_of = span_ids_reader(enabled)
    if ids_of is None:
        return None

    def current() -> Exemplar | None:
        ids = ids_of()
        return None if ids is None else as_exemplar(ids)
    return current


def _direct_reader(public: Callable[[], SpanIds | None]) -> Callable[[], SpanIds | None] | None:
    """The fast reader, if this OpenTelemetry API keeps the current span where it did when this
    was written (checked once, here): else None."""
    try:
        from contextvars import ContextVar

        from opentelemetry.context import _RUNTIME_CONTEXT
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context
        from opentelemetry.trace.propagation import _SPAN_KEY
        current_context = _RUNTIME_CONTEXT._current_context
        probe = SpanContext(3, 5, False, TraceFlags(_SAMPLED))
        trace_id, span_id, _, flags, _, valid = probe  # SpanContext is a tuple of these six
        stored = set_span_in_context(NonRecordingSpan(probe)).get(_SPAN_KEY)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    if (type(_RUNTIME_CONTEXT) is not ContextVarsRuntimeContext or not isinstance(current_context, ContextVar)
            or (trace_id, span_id, flags & _SAMPLED, valid) != (3, 5, _SAMPLED, True)
            or stored.get_span_context() is not probe):
        return None
    get_context = current_context.get

    def direct() -> SpanIds | None:
        span = get_context().get(_SPAN_KEY)
        if span is None:
            return None
        try:
            trace_id, span_id, _, flags, _, valid = span.get_span_context()
        except (AttributeError, TypeError, ValueError):  # not an OpenTelemetry span
            return public()
        return (trace_id, span_id) if valid and flags & _SAMPLED else None
    return direct
