"""The customisation file of the bundle: one mapping merged into `_config` (a JSON merge
patch), validated like the exporter's configuration before any rule is built.

    # site.yml                                  (docs/customising.md)
    thresholds: {cpuUsageRatio: 0.9}            # settings: any key of _config, same shape
    forDurations: {SystemCpuUsageHigh: 15m}
    disabledAlerts: [AgentLatencyHigh]          # the bundle's alerts you turn off
    siteAlerts:                                 # your own, written to site_alerts.yml
      CheckoutErrorsHigh:
        metric: job:http_requests_errors:ratio_rate5m
        operator: ">"
        threshold: 0.05
        for: 10m
        severity: critical
        summary: Checkout answers errors.
        runbookUrl: https://wiki.example.com/runbooks/checkout
        channels: [pager]

The schema of the settings is derived from the defaults in prometheus/config.libsonnet, so a
new knob is validated the day it is added: an unknown key is a fault with a "did you mean", a
value of the wrong type names what is expected. `siteAlerts`, `disabledAlerts` and the channels
are checked against the bundle's alerts and Alertmanager's receivers; `slos` against
vigil_exporter.slo.spec; the site alerts' PromQL by promtool once they are built. A fault is a
ConfigError: file, key path, what was expected (exit 2 in `vigil bundle build`).

A Jsonnet file (`.jsonnet`, `.libsonnet`) that evaluates to the same mapping is read the same
way, for teams that compute their settings.
"""
from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from vigil_exporter.config import ConfigError, read_yaml
from vigil_exporter.slo.spec import SEVERITIES, Matchers
from vigil_exporter.validation import (
    Bool,
    DurationText,
    Errors,
    Field,
    Float,
    List,
    Map,
    Object,
    Str,
    _hint,
    _join,
    _show,
    json_faults,
)

OPERATORS = (">", ">=", "<", "<=", "==", "!=")
PROMTOOL_TIMEOUT = 60.0  # seconds for `promtool check rules` on the site alerts
ALERT_NAME = r"[A-Z][A-Za-z0-9]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
# A name in `<setting>Overrides`: letters, digits, `_`, `-` and `.` (escaped in regexes).
OVERRIDE_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
# Labels the bundle sets on every alert, from the alert's own fields.
RESERVED_LABELS = ("alertname", "severity", "area")
# Keys of _config holding something other than a setting.
READ_ONLY = {
    "bundleVersion": "the bundle's own version, not a setting",
    "httpDurationBuckets": "the bucket bounds of vigil_instrument's histogram, not a setting",
}
# Settings that existed once, and where their job went (CHANGELOG.md).
REMOVED = {
    "thresholds.httpErrorRatio": "the http-availability SLO replaced it: "
                                 "slos.http-availability.objective (docs/slos.md)",
    "thresholds.httpLatencyP95Seconds": "the http-latency SLO replaced it: "
                                        "slos.http-latency.sli.threshold (docs/slos.md)",
    "thresholds.httpMinRequestsPerSecond": "the SLOs' low-traffic guard replaced it: "
                                           "sloDefaults.alerting.minBadEvents (docs/slos.md)",
    "forDurations.HttpErrorRatioHigh": "SloFastBurn and SloSlowBurn replaced the alert",
    "forDurations.HttpLatencyHigh": "SloFastBurn and SloSlowBurn replaced the alert",
}


class Anything(Field):
    """A value checked elsewhere (the SLOs: vigil_exporter.slo.spec)."""

    def validate(self, value, path, errors):
        return value


class Number(Float):
    def __init__(self, default=None, help: str = "", unit: str = ""):
        super().__init__(default, help)
        self.expected = "a number >= 0" + (f" ({unit})" if unit else "")

    def validate(self, value, path, errors):
        result = super().validate(value, path, errors)
        if result is not None and result < 0:
            return self.fail(value, path, errors)
        return result


class Ratio(Float):
    def __init__(self, default=None, help: str = ""):
        super().__init__(default, help)
        self.expected = "a ratio from 0 to 1 (0.9 for 90 %)"

    def validate(self, value, path, errors):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 1 < value <= 100:
            return errors.add(path, f"expected {self.expected}, got {value:g} (did you mean "
                                    f"{value / 100:g}?)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            return self.fail(value, path, errors)
        return float(value)


# ---- reading ----------------------------------------------------------------------------------

def read(path: str | Path) -> dict:
    """The file's mapping: YAML (or JSON), or Jsonnet evaluated with the checkout on its path."""
    path = Path(path)
    if path.suffix not in (".jsonnet", ".libsonnet"):
        raw = read_yaml(path)
        faults = json_faults(raw)
        if faults:
            raise ConfigError(str(path), faults)
        return raw
    import json

    import _jsonnet

    from vigil_exporter.tools import checkout

    root = checkout.root()
    try:
        raw = json.loads(_jsonnet.evaluate_file(str(path), jpathdir=[str(root),
                                                                       str(root / "prometheus")]))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "cannot evaluate"
        raise ConfigError(str(path), [f"not valid Jsonnet: {first}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), [f"expected a mapping at the top level, got {_show(raw)}"])
    return raw


# ---- the schema -------------------------------------------------------------------------------

def settings_schema(defaults: dict, given: dict | None = None) -> Object:
    """`_config` as a schema: every default's key with a field of its kind; `slos`, `siteAlerts`
    and `disabledAlerts` with their own. Keys come in the order of `given` (the file), so faults
    are reported in the file's order."""
    areas = tuple(defaults["areaDashboards"])
    own = dict(
        slos=Anything(None),
        disabledAlerts=List(Str(help="An alert of the bundle."), None,
                            help="The bundle's alerts left out of alerts.yml."),
        siteAlerts=Map(site_alert_schema(areas), None, key_pattern=ALERT_NAME,
                       help="The site's own alerts, by CamelCase name (site_alerts.yml)."),
    )
    fields = {key: own.get(key) or _field(key, defaults[key], (given or {}).get(key))
              for key in _in_order(defaults, given)}
    return Object(fields)


def _in_order(defaults: dict, given) -> list[str]:
    first = [key for key in given if key in defaults] if isinstance(given, dict) else []
    return first + [key for key in defaults if key not in first]


def _field(key: str, default, given=None) -> Field:
    """The field that a default value of `_config` stands for."""
    if isinstance(default, bool):
        return Bool(None)
    if isinstance(default, (int, float)):
        if key.endswith("Ratio") and 0 <= default <= 1:   # a share (not e.g. fragmentation)
            return Ratio(None)
        return Number(unit="seconds" if key.endswith("Seconds") else "")
    if isinstance(default, str):
        if key.endswith("Selector") or key.endswith("Selectors"):
            return Matchers(None)
        if key.endswith("Pattern"):
            return Str(None, pattern=r"[^%]*%s[^%]*")
        if DurationText().pattern.fullmatch(default):
            return DurationText(None)
        return Str(None)
    if isinstance(default, list):
        return List(_field(key, default[0]) if default else Str(None), None)
    if isinstance(default, dict):
        given = given if isinstance(given, dict) else {}
        return Object({k: _overrides_field(k, default) or _field(k, default[k], given.get(k))
                       for k in _in_order(default, given)}, default=None)
    return Anything(None)


def _overrides_field(key: str, siblings: dict) -> Field | None:
    """`<setting>Overrides` beside `<setting>`: its value per name (a tenant's own budget),
    empty by default, so the schema comes from the setting. A name is a label value that
    PromQL takes as written, in a matcher and in a regular expression."""
    setting = key.removesuffix("Overrides")
    if setting == key or setting not in siblings:
        return None
    return Map(_field(setting, siblings[setting]), None, key_pattern=OVERRIDE_NAME)


def site_alert_schema(areas: tuple[str, ...]) -> Object:
    return Object({
        "expr": Str(None, "PromQL whose result is the failing series (or metric, operator "
                          "and threshold)."),
        "metric": Str(None, "PromQL compared with `threshold` by `operator`, e.g. a recording "
                            "rule."),
        "operator": Str(None, "How `metric` is compared.", choices=OPERATORS),
        "threshold": Float(None, "The value `metric` is compared with."),
        "for": DurationText(None, "How long the condition must hold (default: fires at once)."),
        "severity": Str(help="critical pages, warning opens a ticket, info is logged.",
                        choices=SEVERITIES),
        "area": Str(None, "Routing and dashboard link of that area (default application).",
                    choices=areas),
        "summary": Str(help="One sentence, ending with a period."),
        "description": Str(None, "Templated text (default: the summary and the value)."),
        "runbookUrl": Str(help="What to do when it fires.", pattern=r"https?://\S+"),
        "labels": Map(Str(), None, "More labels (not alertname, severity or area).",
                      key_pattern=LABEL_NAME),
        "channels": List(Str(), None, "Receivers of alertmanager.yml that get it instead of "
                                      "the routing by severity and area."),
        "enabled": Bool(None, "false keeps it out of the rules."),
    })


def _expression_faults(alert: dict, path: str, errors: Errors) -> None:
    comparison = [key for key in ("metric", "operator", "threshold") if alert[key] is not None]
    if alert["expr"] is not None and comparison:
        errors.add(path, f"give expr, or metric with operator and threshold, not both "
                         f"(has expr and {', '.join(comparison)})")
    elif alert["expr"] is None and len(comparison) < 3:
        missing = [key for key in ("metric", "operator", "threshold") if key not in comparison]
        errors.add(path, "give expr, or metric with operator and threshold (missing "
                         f"{', '.join(missing)})")
    for label in sorted(set(alert["labels"] or {}) & set(RESERVED_LABELS)):
        errors.add(f"{path}.labels.{label}", "is set by the bundle: use the alert's own field"
                   if label != "alertname" else "is the alert's name: the key of siteAlerts")


def _cross_checks(value: dict, errors: Errors, alert_names: set[str],
                  receivers: list[str]) -> None:
    """What the schema cannot see: names of the bundle's alerts and Alertmanager's receivers,
    and each site alert's expression (checked even when other keys have faults)."""
    for i, name in enumerate(value["disabledAlerts"] or []):
        if name not in alert_names:
            errors.add(f"disabledAlerts[{i}]", f'no alert of the bundle is named "{name}"'
                       + _hint(name, alert_names))
    for name, alert in (value["siteAlerts"] or {}).items():
        if alert is None:
            continue
        _expression_faults(alert, f"siteAlerts.{name}", errors)
        if name in alert_names:
            errors.add(f"siteAlerts.{name}", "is the name of an alert of the bundle: choose "
                       "another name (or change the bundle's through its settings)")
        for i, channel in enumerate(alert["channels"] or []):
            if channel not in receivers:
                errors.add(f"siteAlerts.{name}.channels[{i}]",
                           f'no receiver "{channel}" in alertmanager/alertmanager.yml (they are '
                           f'{", ".join(receivers)})' + _hint(channel, receivers))


# ---- checking -----------------------------------------------------------------------------------

def check(overrides: dict, source: str, defaults: dict, alert_names: set[str],
          receivers: list[str]) -> None:
    """Raise ConfigError with every fault of a customisation (the SLOs aside)."""
    errors = Errors()
    _nulls(overrides, "", errors)
    for key in sorted(set(overrides) & set(READ_ONLY)):
        errors.add(key, READ_ONLY[key])
    settings = _without_removed_site_alerts(
        {k: v for k, v in overrides.items() if k not in READ_ONLY}, defaults, errors)
    value = settings_schema(defaults, settings).validate(settings, "", errors)
    _cross_checks(value, errors, alert_names, receivers)
    faults = [_explained(fault.path, fault.message, defaults) for fault in errors.faults]
    if faults:
        raise ConfigError(source, list(dict.fromkeys(faults)))


def _without_removed_site_alerts(settings: dict, defaults: dict, errors: Errors) -> dict:
    """`siteAlerts: {Name: null}` removes a site alert that `_config` declares (in Jsonnet)."""
    site = settings.get("siteAlerts")
    if not isinstance(site, dict):
        return settings
    declared = defaults.get("siteAlerts") or {}
    for name in [name for name, spec in site.items() if spec is None and name not in declared]:
        errors.add(f"siteAlerts.{name}", "null removes a site alert of _config, and none has "
                   "that name" + _hint(str(name), declared))
    return {**settings, "siteAlerts": {n: spec for n, spec in site.items() if spec is not None}}


def _nulls(value: dict, path: str, errors: Errors) -> None:
    """null removes a key in a merge patch: only SLOs and site alerts may be removed."""
    for key, item in value.items():
        sub = _join(path, key)
        if item is None and not path.startswith(("slos", "siteAlerts")):
            errors.add(sub, "null would remove a setting the bundle needs: give a value")
        elif isinstance(item, dict) and key not in ("slos", "siteAlerts"):
            _nulls(item, sub, errors)


def _explained(path: str, message: str, defaults: dict) -> str:
    """A fault, with where a removed key went, or where a key given at the wrong level lives."""
    if message.startswith("unknown key"):
        key = path.rpartition(".")[2]
        removed = REMOVED.get(path) or next((f"{old}: {why}" for old, why in REMOVED.items()
                                             if _hint(key, [old.rpartition(".")[2]])), None)
        if removed:
            message = f"unknown key; {removed}"
        elif "did you mean" not in message:
            leaves = _leaf_paths(defaults)
            close = difflib.get_close_matches(key, list(leaves), n=1, cutoff=0.6)
            message += f' (did you mean "{leaves[close[0]]}"?)' if close else ""
    return f"{path}: {message}" if path else message


def _leaf_paths(defaults: dict, prefix: str = "") -> dict[str, str]:
    """Last key -> full path of every nested setting, for a key given at the wrong level."""
    out = {}
    for key, value in defaults.items():
        path = _join(prefix, key)
        if isinstance(value, dict) and key not in ("slos", "siteAlerts"):
            out.update(_leaf_paths(value, path))
        elif prefix:
            out.setdefault(key, path)
    return out


def check_expressions(text: str, source: str, site_alerts: dict) -> None:
    """promtool's verdict on the built site_alerts.yml: a rule that does not parse is a fault
    of `siteAlerts.<name>.expr` (or `.metric`). Without promtool, nothing is checked."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return
    with tempfile.TemporaryDirectory(prefix="vigil-site-") as directory:
        path = Path(directory) / "site_alerts.yml"
        path.write_text(text)
        try:
            done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                                  text=True, timeout=PROMTOOL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ConfigError(source, [f"siteAlerts: promtool check rules did not answer within "
                                       f"{PROMTOOL_TIMEOUT:g} s; nothing was built"]) from None
    if done.returncode == 0:
        return
    faults = []
    for line in (done.stdout + done.stderr).splitlines():
        match = re.search(r'rule \d+, "([^"]+)": (.*)', line)
        if match:
            name = match.group(1)
            key = "metric" if "metric" in (site_alerts.get(name) or {}) else "expr"
            faults.append(f"siteAlerts.{name}.{key}: promtool: {match.group(2)}")
    raise ConfigError(source, faults or [f"promtool check rules: {done.stderr.strip()}"])
