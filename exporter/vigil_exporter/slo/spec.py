"""Service level objectives as data: the schema of one SLO, the same for `_config.slos` in
prometheus/config.libsonnet and for an SLO file, and the checks that need the bundle's
configuration (bucket bounds, burn-rate alerts an objective would make impossible).

An SLO file, for teams that do not write Jsonnet (`vigil bundle build --slos FILE`):

    slos:
      checkout-availability:            # a new SLO
        selector: 'job="checkout"'
        sli: {kind: http-availability}
        objective: 99.9
      http-latency: {objective: 99.5}   # changes one field of a declared SLO
      agent-success: null               # removes one

Faults are reported like the exporter's configuration: file, key path, what was expected
(`vigil_exporter.validation`), as a ConfigError (exit code 2 in the bundle command).
"""
from __future__ import annotations

import re
from pathlib import Path

from vigil_exporter.config import ConfigError, read_yaml
from vigil_exporter.validation import (
    Errors,
    Float,
    Int,
    Object,
    Str,
    _hint,
    _show,
    json_faults,
    parse_duration,
)

CONFIG_SOURCE = "prometheus/config.libsonnet (_config.slos)"
KINDS = ("http-availability", "http-latency", "agent-success", "llm-success", "custom")
SEVERITIES = ("critical", "warning", "info")
NAME = r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*"
_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*'
MATCHERS = rf"{_MATCHER}(?:,{_MATCHER})*"
CUSTOM_FIELDS = ("total", "good", "bad")


class Matchers(Str):
    """PromQL label matchers, as inside the braces of a selector."""

    def __init__(self, default=None, help: str = ""):
        super().__init__(default, help, pattern=MATCHERS)
        self.expected = 'label matchers like job="api", route!="/health"'


def slo_schema() -> Object:
    """One SLO. Optional fields without a value here take `_config.sloDefaults`."""
    return Object({
        "description": Str(None, "What a good event is, for the alert descriptions (default: "
                                 "the kind's own words)."),
        "selector": Matchers(None, "Label matchers of the service's series, e.g. job=\"api\"; "
                                   "one SLO per job they match (default: serviceSelector)."),
        "sli": Object({
            "kind": Str(help="What a good event is.", choices=KINDS),
            "threshold": Float(None, "http-latency: seconds, a bucket bound of "
                                     "http_request_duration_seconds.", above=0),
            "matchers": Matchers(None, "Built-in kinds: more label matchers, e.g. "
                                       "route!=\"/api/export\"."),
            "total": Str(None, "custom: PromQL, all events per second over [$window]."),
            "good": Str(None, "custom: PromQL, good events per second over [$window]."),
            "bad": Str(None, "custom: PromQL, bad events per second over [$window] (instead "
                             "of good)."),
        }),
        "objective": Float(help="Percent of good events over the window, e.g. 99.9.",
                           above=0, below=100),
        "window": Str(None, "The SLO window (default 30d).", choices=("30d", "28d")),
        "alerting": Object({
            "fastBurn": Str(None, "Severity of SloFastBurn (default critical: pages).",
                            choices=SEVERITIES),
            "slowBurn": Str(None, "Severity of SloSlowBurn (default warning: a ticket).",
                            choices=SEVERITIES),
            "minBadEvents": Int(None, "No burn-rate alert with fewer bad events in its long "
                                      "window (default 5).", minimum=1),
        }),
    })


def read_file(path: str | Path, declared: dict) -> dict:
    """The `slos` mapping of an SLO file: name -> fields (merged into `declared`, the SLOs of
    the configuration, by the bundle), or None to remove a declared SLO. Raises ConfigError for
    a file that cannot be read or is not of that shape; check() validates the fields."""
    raw = read_yaml(path)
    if json_faults(raw):
        raise ConfigError(str(path), json_faults(raw))
    faults = [f"{key}: unknown key" + _hint(str(key), ["slos"]) for key in raw if key != "slos"]
    slos = raw.get("slos")
    if not isinstance(slos, dict):
        faults.append('slos: is required (a mapping of SLO names to their fields)'
                      if slos is None else f"slos: expected a mapping of names, got {_show(slos)}")
        slos = {}
    for name, fields in slos.items():
        if not _is_name(name):
            faults.append(f"slos.{name}: expected a name of lower-case letters, digits and "
                          "dashes")
        elif fields is None and name not in declared:
            faults.append(f"slos.{name}: no declared SLO of that name to remove"
                          + _hint(name, declared))
        elif fields is not None and not isinstance(fields, dict):
            faults.append(f"slos.{name}: expected a mapping (or null to remove it), "
                          f"got {_show(fields)}")
    if faults:
        raise ConfigError(str(path), faults)
    return slos


def check(config: dict, sources: dict[str, str] | None = None) -> None:
    """Validate every SLO of the bundle's configuration (`_config` with the SLO files merged);
    `sources` names the file each SLO came from (default: config.libsonnet). Raises
    ConfigError for the first source with faults, with all of its faults."""
    sources = sources or {}
    faults: dict[str, list[str]] = {}
    slos = config.get("slos")
    if not isinstance(slos, dict):
        raise ConfigError(CONFIG_SOURCE, [f"slos: expected a mapping of names, got {_show(slos)}"])
    for name, spec in slos.items():
        source = sources.get(name, CONFIG_SOURCE)
        faults.setdefault(source, []).extend(slo_faults(name, spec, config))
    for source in [*dict.fromkeys(sources.values()), CONFIG_SOURCE]:
        if faults.get(source):
            raise ConfigError(source, faults[source])


def slo_faults(name: str, spec, config: dict) -> list[str]:
    """Faults of one SLO: its schema, then what its kind needs, then what the bundle's windows
    and histograms allow."""
    path = f"slos.{name}"
    if not _is_name(name):
        return [f"{path}: expected a name of lower-case letters, digits and dashes"]
    errors = Errors()
    slo = slo_schema().validate(spec, path, errors)
    if errors.faults:
        return [str(f) for f in errors.faults]
    return _sli_faults(path, slo["sli"], config) + _objective_faults(path, slo, config)


def _sli_faults(path: str, sli: dict, config: dict) -> list[str]:
    path += ".sli"
    kind = sli["kind"]
    faults = []
    if kind == "custom":
        if sli["total"] is None:
            faults.append(f"{path}.total: is required for kind custom (PromQL over [$window])")
        if (sli["good"] is None) == (sli["bad"] is None):
            faults.append(f"{path}: kind custom needs one of good or bad, not both")
        faults += [f"{path}.{key}: expected PromQL with [$window] where the range goes, e.g. "
                   f'rate(requests_total{{job="api"}}[$window])'
                   for key in CUSTOM_FIELDS if sli[key] is not None and "$window" not in sli[key]]
        if sli["matchers"] is not None:
            faults.append(f"{path}.matchers: only for the built-in kinds (write the matchers "
                          "into the custom expressions)")
    else:
        faults += [f"{path}.{key}: only for kind custom" for key in CUSTOM_FIELDS
                   if sli[key] is not None]
    if kind == "http-latency":
        bounds = config["httpDurationBuckets"]
        if sli["threshold"] is None:
            faults.append(f"{path}.threshold: is required for kind http-latency (seconds, one "
                          f"of the bucket bounds {_numbers(bounds)})")
        elif sli["threshold"] not in bounds:
            faults.append(f"{path}.threshold: {sli['threshold']:g} is not a bucket bound of "
                          f"http_request_duration_seconds; the bounds are {_numbers(bounds)}")
    elif sli["threshold"] is not None:
        faults.append(f"{path}.threshold: only for kind http-latency")
    return faults


def _objective_faults(path: str, slo: dict, config: dict) -> list[str]:
    """An objective so low that a burn-rate alert would need more than all events to be bad."""
    if slo["objective"] <= 1:
        return [f"{path}.objective: {slo['objective']:g} is a percentage: {slo['objective']:g} % "
                f"of good events (did you mean {slo['objective'] * 100:g}?)"]
    window = parse_duration(slo["window"] or config["sloDefaults"]["window"])
    budget = 1 - slo["objective"] / 100
    alerts = config["sloBurnRateAlerts"]
    for alertname, pairs in (("SloFastBurn", alerts["fast"]), ("SloSlowBurn", alerts["slow"])):
        for pair in pairs:
            factor = pair["budgetShare"] * window / parse_duration(pair["long"])
            if factor * budget >= 1:
                lowest = 100 * (1 - 1 / factor)
                return [f"{path}.objective: {slo['objective']:g} leaves an error budget of "
                        f"{budget * 100:.3g}%, so {alertname} at {factor:.3g}× over "
                        f"{pair['long']} would need {factor * budget * 100:.3g}% of the events "
                        f"to be bad and could never fire: choose an objective above "
                        f"{lowest:.2f}"]
    return []


def _is_name(name) -> bool:
    return isinstance(name, str) and bool(re.fullmatch(NAME, name))


def _numbers(values) -> str:
    return ", ".join(f"{v:g}" for v in values)
