"""The checks grafana/dashboard-linter makes, for our generated dashboards, in Python.

dashboard-linter cannot be installed here, so its rules that matter for Prometheus dashboards
are written again: a `datasource` variable, multi-select `job`/`instance` variables on that
datasource, title/description/unit/targets on every panel, every target on `$datasource`,
`$__rate_interval` as the window of rate()/irate(), `_total` counters only inside
rate()/irate()/increase(), and its target-job and target-instance rules: every selector carries
`job=~"$job"` and `instance=~"$instance"`. A recording rule summed above the instance (or a
series without those labels) cannot honour them; its panel says so in its description ("not
filtered by instance", "not filtered by job or instance"), which is where a reader of the
dashboard sees it. A raw metric has no such way out. Plus what Grafana needs to load the JSON
(uid, title, panels that do not overlap in the 24-column grid) and no `${DS_...}` datasource
placeholders left from an export. PromQL is only tokenised here; its syntax is checked by a
real Prometheus in the tests.
"""
from __future__ import annotations

import json
import re

from vigil_exporter.tools.promql import selectors

GRID_COLUMNS = 24

# Units Grafana knows (a subset of its value formats, as the linter enumerates them).
VALID_UNITS = frozenset("""
none short percent percentunit humidity dB hex0x hex sci locale
bytes decbytes bits decbits kbytes deckbytes mbytes decmbytes gbytes decgbytes
pps binBps Bps binbps bps KiBs KBs MiBs MBs GiBs GBs
ns µs ms s m h d dtdurationms dtdurations dthms dtdhms clockms clocks hertz
dateTimeAsIso dateTimeAsIsoNoDateIfToday dateTimeAsUS dateTimeFromNow dateTimeAsSystem
cps ops reqps rps wps iops cpm opm rpm wpm
currencyUSD currencyEUR currencyGBP bool bool_yes_no bool_on_off
""".split())

PANELS_WITH_UNITS = {"stat", "gauge", "bargauge", "table", "timeseries"}
RATE_FUNCTIONS = {"rate", "irate"}
COUNTER_FUNCTIONS = {"rate", "irate", "increase"}


def panels(dashboard: dict) -> list[dict]:
    """Every panel, including those nested in collapsed rows; rows themselves excluded."""
    out = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def targets(dashboard: dict):
    """(panel, target) for every Prometheus target of the dashboard."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


RATE_WINDOWS = ("$__rate_interval", "${__rate_interval}")
# an instant query (a table or stat over the dashboard's time range) may rate over the range
INSTANT_RATE_WINDOWS = (*RATE_WINDOWS, "$__range", "${__range}")


def check_expr(expr: str, instant: bool = False) -> list[str]:
    """Problems of one expression: rate windows and bare counters."""
    problems = []
    windows = INSTANT_RATE_WINDOWS if instant else RATE_WINDOWS
    try:
        found = selectors(expr)
    except ValueError as exc:
        return [str(exc)]
    for sel in found:
        if sel.range is not None and sel.function in RATE_FUNCTIONS \
                and sel.range not in windows:
            problems.append(f"{sel.function}() over [{sel.range}] instead of [$__rate_interval]")
        if sel.metric.endswith("_total") and not (
                sel.range is not None and sel.function in COUNTER_FUNCTIONS):
            problems.append(f"counter {sel.metric} used outside rate()/irate()/increase()")
    return problems


# The target-job and target-instance rules.
FILTER_LABELS = ("job", "instance")
# Series of Prometheus's own that carry the labels of whatever they describe, not of a target.
SYNTHETIC_SERIES = frozenset({"ALERTS", "ALERTS_FOR_STATE"})
_NOT_FILTERED = re.compile(r"not filtered by (job|instance)(?: or (job|instance))?", re.IGNORECASE)


def unfiltered_labels(description: str) -> set[str]:
    """The labels a panel's description says its queries are not filtered by."""
    return {label.lower() for match in _NOT_FILTERED.finditer(description or "")
            for label in match.groups() if label}


def check_filters(expr: str, unfiltered: set[str] = frozenset()) -> list[str]:
    """The target-job and target-instance rules on one expression: every selector matches
    `<label>=~"$<label>"`, except recording rules (and Prometheus's synthetic series) of a panel
    that declares the label unfiltered."""
    problems = []
    try:
        found = selectors(expr)
    except ValueError as exc:
        return [str(exc)]
    for sel in found:
        declarable = ":" in sel.metric or sel.metric in SYNTHETIC_SERIES
        for label in FILTER_LABELS:
            if sel.has(label, "=~", f"${label}") or (declarable and label in unfiltered):
                continue
            what = "recording rule" if ":" in sel.metric else "metric"
            problems.append(f'{what} {sel.metric or "{...}"} has no {label}=~"${label}" matcher'
                            + (f' (or a description saying "not filtered by {label}")'
                               if declarable else ""))
    return problems


def stale_unfiltered_claims(exprs: list[str], unfiltered: set[str]) -> list[str]:
    """Labels a description calls unfiltered although every selector of the panel filters them."""
    try:
        found = [sel for expr in exprs for sel in selectors(expr)]
    except ValueError:
        return []
    return sorted(label for label in unfiltered
                  if found and all(sel.has(label, "=~", f"${label}") for sel in found))


# ---- dashboard checks --------------------------------------------------------------------

def _variable(dashboard: dict, name: str) -> dict | None:
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("name") == name:
            return var
    return None


def _is_templated(ds) -> bool:
    return isinstance(ds, dict) and ds.get("uid") in ("$datasource", "${datasource}")


def overlaps(panel_list: list[dict]) -> list[tuple[str, str]]:
    boxes = [(p.get("title", "?"), p["gridPos"]) for p in panel_list]
    found = []
    for i, (title_a, a) in enumerate(boxes):
        for title_b, b in boxes[i + 1:]:
            if (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
                    and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]):
                found.append((title_a, title_b))
    return found


def lint(dashboard: dict) -> list[str]:
    """Every problem of one dashboard, as readable strings (empty: it passes)."""
    problems: list[str] = []
    name = dashboard.get("uid") or dashboard.get("title") or "?"

    def problem(text: str) -> None:
        problems.append(f"{name}: {text}")

    for key in ("uid", "title", "panels", "templating", "schemaVersion"):
        if not dashboard.get(key):
            problem(f"missing {key}")
    if "${DS_" in json.dumps(dashboard):
        problem("contains an export-style ${DS_...} datasource placeholder")

    variables = dashboard.get("templating", {}).get("list", [])
    ds_vars = [v for v in variables if v.get("type") == "datasource"]
    if len(ds_vars) != 1 or ds_vars[0].get("name") != "datasource" \
            or ds_vars[0].get("query") != "prometheus":
        problem("needs exactly one Prometheus datasource variable, named `datasource`")
    elif ds_vars[0].get("label") != "Data source":
        problem("the datasource variable should be labelled 'Data source'")
    for var_name in ("job", "instance"):
        var = _variable(dashboard, var_name)
        if var is None:
            problem(f"missing the `{var_name}` variable")
            continue
        if var.get("type") != "query" or not _is_templated(var.get("datasource")):
            problem(f"`{var_name}` should be a query on $datasource")
        if not var.get("multi") or var.get("allValue") != ".+":
            problem(f"`{var_name}` should be multi-select with allValue '.+'")
        if var.get("label") != var_name.title():
            problem(f"`{var_name}` should be labelled {var_name.title()!r}")
    for var in variables:
        if var.get("type") == "query" and not _is_templated(var.get("datasource")):
            problem(f"variable `{var.get('name')}` does not use $datasource")

    all_panels = dashboard.get("panels", [])
    for panel in all_panels:
        pos = panel.get("gridPos") or {}
        if not all(isinstance(pos.get(k), int) for k in ("x", "y", "w", "h")):
            problem(f"panel {panel.get('title')!r} has no complete gridPos")
        elif pos["x"] < 0 or pos["w"] < 1 or pos["x"] + pos["w"] > GRID_COLUMNS:
            problem(f"panel {panel.get('title')!r} leaves the {GRID_COLUMNS}-column grid")
    if not problems:
        for a, b in overlaps(all_panels):
            problem(f"panels {a!r} and {b!r} overlap")
    ids = [p.get("id") for p in all_panels]
    if len(set(ids)) != len(ids):
        problem("panel ids are not unique")

    for panel in panels(dashboard):
        title = panel.get("title")
        where = f"panel {title!r}"
        if not title:
            problem(f"a {panel.get('type')} panel has no title")
        if not panel.get("description"):
            problem(f"{where} has no description")
        if panel.get("type") in PANELS_WITH_UNITS:
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
            if unit not in VALID_UNITS:
                problem(f"{where} has no or an unknown unit: {unit!r}")
        if not _is_templated(panel.get("datasource")):
            problem(f"{where} does not use the $datasource variable")
        if not panel.get("targets"):
            problem(f"{where} has no targets")
        unfiltered = unfiltered_labels(panel.get("description", ""))
        for label in stale_unfiltered_claims(
                [t.get("expr", "") for t in panel.get("targets", [])], unfiltered):
            problem(f"{where} says it is not filtered by {label}, but every selector is")
        for target in panel.get("targets", []):
            ref = target.get("refId")
            if not _is_templated(target.get("datasource")):
                problem(f"{where} target {ref} does not use the $datasource variable")
            expr = target.get("expr", "")
            if not expr.strip():
                problem(f"{where} target {ref} has no expression")
            for text in check_expr(expr, instant=bool(target.get("instant"))) \
                    + check_filters(expr, unfiltered):
                problem(f"{where} target {ref}: {text}")
    return problems


# ---- variables ------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def expand(expr: str, values: dict[str, str]) -> str:
    """Replace Grafana variables with concrete values (`values` by name without the `$`).
    Variables not in `values` become `.+`, the allValue of every multi-select variable."""
    def sub(match: re.Match) -> str:
        var = match.group(1) or match.group(2) or match.group(3)
        return values.get(var, ".+")
    return _VAR.sub(sub, expr)


def variable_names(expr: str) -> set[str]:
    return {m.group(1) or m.group(2) or m.group(3) for m in _VAR.finditer(expr)}
