"""A tenant usage report: per UTC day, totals over a date range and the tenant's limits, read
from a Prometheus that runs the bundle's rules (docs/tenant-usage.md).

Each daily field is one range query with a one-day step, evaluated at the last millisecond of
every day over a one-day window, so that a day holds exactly its own samples. Today's row is
the day so far. Messages and API calls of a day are the exporter's `*_today` gauges, counted by
the database, where they exist, and the counter rollups of the bundle
(`tenant:vigil_tenant_*:increase_today`) otherwise; the LLM cost is the rollup of the cost
counter per tenant.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from vigil_exporter.prometheus_api import PrometheusAPI
from vigil_exporter.validation import parse_duration

DAY = 86400
MAX_DAYS = 366  # a range of at most a year, leap years included
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A tenant label value the report accepts: what the business queries and the instrumentation
# library produce, without quotes or backslashes to escape.
TENANT = re.compile(r"[^\"\\\n]{1,200}")
SELECTOR = "__tenant_selector__"


def _last(metric: str, matchers: str = "") -> str:
    return f"sum by (tenant) (last_over_time({metric}{{{SELECTOR}{matchers}}}[1d]))"


def _daily_count(gauge: str, rollup: str, matchers: str = "") -> str:
    """The database's own count of the day where the exporter has it, else the rollup."""
    return f"{_last(gauge, matchers)}\nor\n{_last(rollup, matchers)}"


# Field -> PromQL for the value of a day, per tenant; SELECTOR stands for the tenant matcher.
LEVELS = {  # the state at the end of the day
    "agents_count": _last("vigil_tenant_agents"),
    "active_agents_count": _last("vigil_tenant_agents_active"),
    "channels_count": _last("vigil_tenant_channels"),
    "active_channels_count": _last("vigil_tenant_channels_active"),
    "storage_used_bytes": _last("vigil_tenant_storage_bytes"),
}
FLOWS = {  # what happened during the day
    "messages_in_count": _daily_count("vigil_tenant_messages_today",
                                      "tenant:vigil_tenant_messages:increase_today",
                                      ', direction="in"'),
    "messages_out_count": _daily_count("vigil_tenant_messages_today",
                                       "tenant:vigil_tenant_messages:increase_today",
                                       ', direction="out"'),
    "api_calls_count": _daily_count("vigil_tenant_api_calls_today",
                                    "tenant:vigil_tenant_api_calls:increase_today"),
    "llm_cost_usd": _last("job_tenant:llm_cost_usd:increase_today"),
}
FIELDS = (*LEVELS, *FLOWS)
LIMITS = {  # the tenant's limits at the end of the range
    "max_agents": _last("vigil_tenant_agents_limit"),
    "max_channels": _last("vigil_tenant_channels_limit"),
    "max_messages_per_day": _last("vigil_tenant_messages_per_day_limit"),
    "max_api_calls_per_day": _last("vigil_tenant_api_calls_per_day_limit"),
    "max_storage_bytes": _last("vigil_tenant_storage_limit_bytes"),
    "concurrent_connections": _last("vigil_tenant_connections_limit"),
}
COUNTS = {"agents_count", "active_agents_count", "channels_count", "active_channels_count",
          "storage_used_bytes", "messages_in_count", "messages_out_count", "api_calls_count",
          *LIMITS}


class BadRequest(ValueError):
    """Input the report cannot answer; the message says what is wrong, for a 400 or exit 2."""


@dataclass(frozen=True)
class Request:
    start: date
    end: date
    tenant: str | None = None

    @classmethod
    def parse(cls, start: str | None, end: str | None, tenant: str | None = None,
              today: date | None = None) -> Request:
        today = today or utc_today()
        first, last = _date("start_date", start), _date("end_date", end)
        if first > last:
            raise BadRequest(f"start_date {first} is after end_date {last}")
        if last > today:
            raise BadRequest(f"end_date {last} is in the future (today is {today} UTC)")
        days = (last - first).days + 1
        if days > MAX_DAYS:
            raise BadRequest(f"the range covers {days} days, more than a year ({MAX_DAYS} days)")
        if tenant is not None and not TENANT.fullmatch(tenant):
            raise BadRequest("tenant_id must be 1 to 200 characters without quotes, "
                             "backslashes or newlines")
        return cls(first, last, tenant or None)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def _date(name: str, text: str | None) -> date:
    if not text:
        raise BadRequest(f"{name} is required, as YYYY-MM-DD")
    try:
        if not DATE.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name} must be a date as YYYY-MM-DD, got {text[:40]!r}") from None


def _day_end(day: date) -> float:
    """The last millisecond of a UTC day, as a Unix time."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
    return start + DAY - 0.001


def retention_days(prometheus: PrometheusAPI) -> float | None:
    """Prometheus's time retention in days, or None where it does not say (VictoriaMetrics,
    size-only retention)."""
    info = prometheus.runtime_info()
    text = str((info or {}).get("storageRetention", ""))
    for part in text.split(" or "):
        try:
            return parse_duration(part.strip()) / DAY
        except ValueError:
            continue
    return None


def build(prometheus: PrometheusAPI, request: Request, today: date | None = None,
          max_cells: int | None = None) -> dict:
    """The report as a JSON-ready dict. Raises BadRequest (range beyond retention, unknown
    tenant, more than `max_cells` tenant-days) and PrometheusError (Unreachable when nothing
    answers).

    The tenant-days are counted from the limits (one instant query per field) before the range
    queries, and again once those are in (a tenant gone before the end has no limits)."""
    today = today or utc_today()
    retention = retention_days(prometheus)
    if retention is not None and (today - request.start).days >= retention:
        oldest = today - timedelta(days=int(retention) - 1)
        raise BadRequest(f"start_date {request.start} is beyond the retention of Prometheus "
                         f"({retention:g} days): the oldest complete day is {oldest}")
    selector = f'tenant="{request.tenant}"' if request.tenant else 'tenant!=""'
    start, end = _day_end(request.start), _day_end(request.end)
    limits = {field: _instant(prometheus, expr.replace(SELECTOR, selector), min(end, _now()))
              for field, expr in LIMITS.items()}
    _check_size({t for values in limits.values() for t in values}, request, max_cells)
    daily = {field: _range(prometheus, expr.replace(SELECTOR, selector), start, end)
             for field, expr in {**LEVELS, **FLOWS}.items()}
    tenants = sorted({t for values in (*daily.values(), *limits.values()) for t in values})
    _check_size(tenants, request, max_cells)
    if request.tenant and request.tenant not in tenants:
        raise BadRequest(_unknown_tenant(prometheus, request.tenant))
    return {
        "start_date": request.start.isoformat(),
        "end_date": request.end.isoformat(),
        "tenants": [_tenant(t, request.days, daily, limits) for t in tenants],
    }


def _check_size(tenants, request: Request, max_cells: int | None) -> None:
    days = (request.end - request.start).days + 1
    if max_cells is not None and len(tenants) * days > max_cells:
        raise BadRequest(
            f"the report would hold {len(tenants)} tenants x {days} days = "
            f"{len(tenants) * days} tenant-days, more than {max_cells} "
            f"(usage.max_report_tenant_days): ask for one tenant (tenant_id) or for at most "
            f"{max(1, max_cells // max(1, len(tenants)))} days")


def _tenant(tenant: str, days: list[date], daily: dict, limits: dict) -> dict:
    rows = [{"date": day.isoformat(),
             **{field: _number(field, daily[field].get(tenant, {}).get(day)) for field in FIELDS}}
            for day in days]

    def known(field):
        return [row[field] for row in rows if row[field] is not None]
    return {
        "tenant_id": tenant,
        "days": rows,
        "totals": {field: _number(field, sum(known(field))) if known(field) else None
                   for field in FLOWS},
        "peaks": {field: max(known(field)) if known(field) else None for field in LEVELS},
        "limits": {field: _number(field, limits[field].get(tenant)) for field in LIMITS},
    }


def _number(field: str, value: float | None):
    if value is None:
        return None
    return int(round(value)) if field in COUNTS else round(value, 6)


def _range(prometheus: PrometheusAPI, expr: str, start: float, end: float) -> dict:
    """tenant -> {day: value}."""
    out: dict[str, dict[date, float]] = {}
    for series in prometheus.query_range(expr, start, end, DAY)["result"]:
        days = out.setdefault(series["metric"].get("tenant", ""), {})
        for at, value in series["values"]:
            days[datetime.fromtimestamp(float(at), timezone.utc).date()] = float(value)
    return out


def _instant(prometheus: PrometheusAPI, expr: str, at: float) -> dict:
    return {series["metric"].get("tenant", ""): float(series["value"][1])
            for series in prometheus.query(expr, at)["result"]}


def _unknown_tenant(prometheus: PrometheusAPI, tenant: str) -> str:
    known = sorted(series["metric"]["tenant"] for series in prometheus.query(
        'group by (tenant) (vigil_tenant_agents_limit{tenant!=""})')["result"])
    shown = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
    return (f"unknown tenant {tenant!r}: Prometheus has no usage of it in the range"
            + (f" (tenants now: {shown})" if known else ""))


def _now() -> float:
    return datetime.now(timezone.utc).timestamp()
