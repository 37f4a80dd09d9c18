"""`vigil slo status`: every SLO's state, read from a Prometheus that runs the bundle's rules.

The SLOs are found from their recorded series (prometheus/lib/slo.libsonnet), whatever declared
them: `slo:objective:ratio` (objective and window), `job_slo:error_budget_remaining:ratio`,
`job_slo:sli_error:ratio_rate<w>` for every recorded window, the time the budget has left,
and the SloFastBurn / SloSlowBurn alerts pending or firing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from vigil_exporter.prometheus_api import PrometheusAPI
from vigil_exporter.validation import format_duration, parse_duration

ALERTS = ("SloFastBurn", "SloSlowBurn")
ERROR_RATIO = "job_slo:sli_error:ratio_rate"


class NoSlos(Exception):
    """Prometheus answers but has no SLO series: one line for the user."""


@dataclass
class Slo:
    slo: str
    job: str
    objective: float
    window: str
    budget_remaining: float | None = None
    budget_time_left_seconds: float | None = None
    error_ratios: dict[str, float] = field(default_factory=dict)   # window -> bad / all
    alerts: list[dict] = field(default_factory=list)               # {alertname, state, severity}

    @property
    def budget(self) -> float:
        return 1 - self.objective

    @property
    def sli(self) -> float | None:
        """Good events out of all over the SLO window."""
        if self.budget_remaining is None:
            return None
        return 1 - (1 - self.budget_remaining) * self.budget

    @property
    def burn_rates(self) -> dict[str, float]:
        """Window -> error ratio / budget, for the alert windows (not the SLO window)."""
        return {w: ratio / self.budget for w, ratio in self.error_ratios.items()
                if w != self.window}

    def as_json(self) -> dict:
        return {"slo": self.slo, "job": self.job, "objective": self.objective,
                "window": self.window, "sli": self.sli,
                "error_budget_remaining": self.budget_remaining,
                "error_budget_time_left_seconds": self.budget_time_left_seconds,
                "burn_rates": self.burn_rates, "alerts": self.alerts}


def collect(prometheus: PrometheusAPI) -> list[Slo]:
    """Every SLO and job Prometheus records, sorted by SLO and job. Raises PrometheusError when
    a query gets no answer, NoSlos when there is nothing to show."""
    def query(expr: str) -> list[dict]:
        return prometheus.query(expr)["result"]

    objectives = {r["metric"]["slo"]: (_value(r), r["metric"].get("window", "?"))
                  for r in query("slo:objective:ratio")}
    if not objectives:
        raise NoSlos(f"{prometheus.url}: no SLO series (slo:objective:ratio): does this "
                     "Prometheus load the Vigil rules with SLOs?")
    slos: dict[tuple[str, str], Slo] = {}

    def slo_of(metric: dict) -> Slo | None:
        name = metric.get("slo")
        if name not in objectives:
            return None
        key = (name, metric.get("job", ""))
        if key not in slos:
            slos[key] = Slo(name, key[1], *objectives[name])
        return slos[key]

    for r in query("job_slo:error_budget_remaining:ratio"):
        if (slo := slo_of(r["metric"])) is not None:
            slo.budget_remaining = _value(r)
    for r in query("job_slo:error_budget_time_left:seconds"):
        if (slo := slo_of(r["metric"])) is not None:
            slo.budget_time_left_seconds = _value(r)
    for r in query(f'{{__name__=~"{ERROR_RATIO}.+"}}'):
        if (slo := slo_of(r["metric"])) is not None:
            slo.error_ratios[r["metric"]["__name__"].removeprefix(ERROR_RATIO)] = _value(r)
    for r in query(f'ALERTS{{alertname=~"{"|".join(ALERTS)}"}}'):
        if (slo := slo_of(r["metric"])) is not None:
            labels = r["metric"]
            slo.alerts.append({"alertname": labels["alertname"], "state": labels["alertstate"],
                               "severity": labels.get("severity", "")})
    for slo in slos.values():
        slo.error_ratios = dict(sorted(slo.error_ratios.items(),
                                       key=lambda item: parse_duration(item[0])))
        slo.alerts.sort(key=lambda a: (ALERTS.index(a["alertname"]), a["state"]))
    return [slos[key] for key in sorted(slos)]


def format_table(slos: list[Slo]) -> str:
    windows = sorted({w for slo in slos for w in slo.burn_rates}, key=parse_duration)
    header = ["SLO", "JOB", "OBJECTIVE", "SLI", "BUDGET LEFT", "GONE IN",
              *(f"BURN {w}" for w in windows), "ALERT"]
    rows = [header]
    for slo in slos:
        burns = slo.burn_rates
        rows.append([
            slo.slo, slo.job, f"{_percent(slo.objective)} / {slo.window}", _percent(slo.sli),
            _percent(slo.budget_remaining, 1), _duration(slo.budget_time_left_seconds, slo.window),
            *(_number(burns.get(w)) for w in windows),
            ", ".join(f"{a['alertname']} {a['state']} ({a['severity']})" for a in slo.alerts) or "-",
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {2, 3, 4, 5, *range(6, 6 + len(windows))}
    return "\n".join("  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                               for i, cell in enumerate(row)).rstrip() for row in rows)


def _value(result: dict) -> float | None:
    value = float(result["value"][1])
    return None if math.isnan(value) else value


def _percent(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    text = f"{value * 100:.{digits}f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "%"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _duration(seconds: float | None, window: str) -> str:
    if seconds is None:
        return "-"
    if seconds >= parse_duration(window):
        return f">={window}"
    return format_duration(60 * round(seconds / 60)) if seconds >= 60 else f"{seconds:.0f}s"
