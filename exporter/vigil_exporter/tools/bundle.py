"""Build the Prometheus bundle: compile prometheus/*.libsonnet into the committed rule files.

    vigil bundle build            # write prometheus/generated/*.yml (and refresh the
                                  # group_eval_order of prometheus/tests/*.yml)
    vigil bundle build --check    # exit 1 if a committed file differs from a fresh build
    vigil bundle build --override my-config.yml --output /etc/prometheus/rules
                                  # your own build: `_config` merged with your file
    vigil bundle build --slos my-slos.yml --output /etc/prometheus/rules
                                  # ... with your service level objectives (docs/slos.md)
    vigil bundle build --override site.yml --site ./site
                                  # the whole site folder: rules, Alertmanager, dashboards
                                  # (docs/customising.md)

The rules are written in Jsonnet (the monitoring-mixin shape: `prometheus/mixin.libsonnet` =
config + alerts + rules); the YAML that Prometheus loads is generated from it with the `jsonnet`
package and committed, so Prometheus needs no build step. The output is deterministic: same
sources, same bytes.

Also here, for tests and tools that run Prometheus outside containers:
`local_prometheus_config()` derives a config from prometheus/prometheus.yml changing only the
addresses, and `metric_names_used_by_rules()` lists every metric name the rules read.
"""
from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from pathlib import Path, PurePosixPath

import yaml

from vigil_exporter.commandline import add_command, add_group
from vigil_exporter.config import ConfigError
from vigil_exporter.tools import checkout, generated
from vigil_exporter.tools.promql import metric_names_in
from vigil_exporter.validation import parse_duration


def prometheus_dir() -> Path:
    return checkout.root() / "prometheus"


def generated_dir() -> Path:
    """Where the committed rule files live."""
    return prometheus_dir() / "generated"


def prometheus_yml() -> Path:
    return prometheus_dir() / "prometheus.yml"


def unit_tests_dir() -> Path:
    """The promtool unit tests of the bundle."""
    return prometheus_dir() / "tests"


# Generated file -> the mixin field it renders.
OUTPUTS = {
    "recording_rules.yml": ("prometheusRules", "recording rules"),
    "alerts.yml": ("prometheusAlerts", "alerting rules"),
    "site_alerts.yml": ("prometheusSiteAlerts", "the site's own alerting rules (`siteAlerts`)"),
}

# Key order in the generated YAML, as people write rules; anything else follows, sorted.
GROUP_KEYS = ("name", "interval", "limit", "rules")
RULE_KEYS = ("record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations")
ANNOTATION_KEYS = ("summary", "description", "runbook_url", "dashboard_url")


def evaluate(overrides: dict | None = None) -> dict:
    """The mixin as data: {'config': _config, 'prometheusRules': ..., 'prometheusAlerts': ...}.

    `overrides` is merged into `_config` as a JSON merge patch (nested objects merge, so
    {"thresholds": {"cpuUsageRatio": 0.9}} changes one threshold), the same thing a Jsonnet
    user does with `_config+:: { thresholds+: {...} }`.
    """
    return json.loads(_evaluate(json.dumps(overrides or {}, sort_keys=True)))


def evaluate_config(overrides: dict | None = None) -> dict:
    """`_config` alone, with `overrides` merged as in evaluate(), without building any rule
    (so that the SLOs can be validated before the rules are generated from them)."""
    return json.loads(_evaluate(json.dumps(overrides or {}, sort_keys=True), "config"))["config"]


@functools.lru_cache(maxsize=8)
def _evaluate(overrides_json: str, fields: str = "all") -> str:
    """The mixin as JSON text; cached (the C++ Jsonnet's std.format is slow), callers get
    their own parsed copy. `fields`: "all", "config" (`_config` alone) or "site" (`_config`
    and the site's alerts, for checking them before the whole build)."""
    import _jsonnet  # the `jsonnet` package

    snippet = """
        local mixin = (import 'mixin.libsonnet') + {
          _config:: std.mergePatch(super._config, std.parseJson(std.extVar('overrides'))),
        };
        local fields = std.extVar('fields');
        {
          config: mixin._config,
        } + (if fields == 'config' then {} else {
          prometheusSiteAlerts: mixin.prometheusSiteAlerts,
        }) + (if fields != 'all' then {} else {
          prometheusRules: mixin.prometheusRules,
          prometheusAlerts: mixin.prometheusAlerts,
        })
    """
    return _jsonnet.evaluate_snippet(
        str(prometheus_dir() / "bundle.jsonnet"), snippet, jpathdir=[str(prometheus_dir())],
        ext_vars={"overrides": overrides_json, "fields": fields})


def render(overrides: dict | None = None, sources: dict[str, str] | None = None,
           source: str = "overrides", validated: bool = False) -> dict[str, str]:
    """File name -> the YAML text of each generated file. The customisation (`source`: where
    it came from; unless `validated` says the caller did it) and the SLOs (`sources`: SLO name
    -> its file) are validated first: a wrong one raises ConfigError, as does a site alert that
    promtool cannot parse."""
    from vigil_exporter.slo.spec import check

    if overrides and not validated:
        validate(overrides, source)
    check(evaluate_config(overrides), sources)
    mixin = evaluate(overrides)
    return {name: _rule_file(name, mixin) for name in OUTPUTS}


def _rule_file(name: str, mixin: dict) -> str:
    field, what = OUTPUTS[name]
    groups = [_ordered_group(g) for g in mixin[field]["groups"]]
    header = (f"# Vigil monitoring bundle {mixin['config']['bundleVersion']}: {what}.\n"
              "# Generated by `vigil bundle build` from prometheus/*.libsonnet: do not edit.\n"
              "# Customise the bundle by overriding `_config` (see prometheus/README.md).\n")
    return header + yaml.dump({"groups": groups}, Dumper=_Dumper, sort_keys=False,
                              width=1_000_000, allow_unicode=True)


def validate(overrides: dict, source: str) -> None:
    """Raise ConfigError for a customisation with faults (vigil_exporter.tools.customisation):
    against the defaults of `_config`, the bundle's alerts and Alertmanager's receivers; then
    the site alerts, built alone, through promtool."""
    from vigil_exporter.tools import customisation

    customisation.check(overrides, source, evaluate_config(), alert_names(), receivers())
    if overrides.get("siteAlerts"):
        site_only = json.loads(_evaluate(json.dumps(overrides, sort_keys=True), "site"))
        customisation.check_expressions(_rule_file("site_alerts.yml", site_only), source,
                                        overrides["siteAlerts"])


def alert_names() -> set[str]:
    """The alerts of the bundle (the committed alerts.yml)."""
    path = generated_dir() / "alerts.yml"
    return set(_alert_names(path, path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _alert_names(path: Path, mtime_ns: int) -> frozenset[str]:
    groups = load_yaml(path.read_text())["groups"]
    return frozenset(rule["alert"] for group in groups for rule in group["rules"])


def receivers() -> list[str]:
    """The receivers of alertmanager/alertmanager.yml, which site alerts may name."""
    config = yaml.safe_load((checkout.root() / "alertmanager" / "alertmanager.yml").read_text())
    return [receiver["name"] for receiver in config.get("receivers") or []]


def build_rules(check: bool = False, directory: Path | None = None,
                overrides: dict | None = None, sources: dict[str, str] | None = None,
                source: str = "overrides", validated: bool = False,
                tests: Path | None = None) -> list[Path]:
    """Write the generated files; return those that changed.

    With check=True nothing is written, and the returned files are those whose committed
    content differs from a fresh build (stale or missing). A build into the checkout's own
    prometheus/generated/ also refreshes the unit tests' `group_eval_order`
    (unit_test_eval_orders), `tests` being their directory.
    """
    rendered = render(overrides, sources, source, validated)
    files: dict[Path, str] = {}
    if directory is None:
        files.update(unit_test_eval_orders(rendered, tests))
    directory = Path(directory) if directory else generated_dir()
    files.update({directory / name: text for name, text in rendered.items()})
    return generated.sync(files, check)


_EVAL_ORDER = re.compile(r"^group_eval_order:\n(?:[ \t]+- .*\n)*", re.MULTILINE)


def unit_test_eval_orders(rendered: dict[str, str], directory: Path | None = None
                          ) -> dict[Path, str]:
    """The promtool unit tests whose `group_eval_order` lists every group of the rule files
    they load, in file order, recording rules first. Without an order promtool evaluates the
    groups at random (an alert may not see a rule recorded in the same step), so every test
    file names them all, and a new group would otherwise mean editing every file. Rule files of
    the build come from `rendered` (generated name -> text), others from disk; the rest of each
    test file is left as written."""
    directory = Path(directory) if directory else unit_tests_dir()
    group_names = functools.cache(_group_names)  # rule files are shared by every test file
    out = {}
    for path in sorted(directory.glob("*.yml")):
        text = path.read_text(encoding="utf-8")
        found = _EVAL_ORDER.search(text)
        if not found:
            continue
        names = []
        for entry in _rule_files(text):
            name = PurePosixPath(entry).name
            source = rendered.get(name) if PurePosixPath(entry).parent.name == "generated" \
                else None
            if source is None:
                source = (path.parent / entry).read_text(encoding="utf-8")
            names += group_names(source)
        block = "group_eval_order:\n" + "".join(f"  - {name}\n" for name in names)
        out[path] = text[:found.start()] + block + text[found.end():]
    return out


_TESTS_KEY = re.compile(r"^tests:", re.MULTILINE)


def _rule_files(test_file: str) -> list[str]:
    """The `rule_files` of a promtool test file, read from the text before its `tests:` (the
    series of the tests are most of the file and not needed here)."""
    found = _TESTS_KEY.search(test_file)
    head = test_file[:found.start()] if found else test_file
    return (load_yaml(head) or {}).get("rule_files") or []


def _group_names(rule_file: str) -> tuple[str, ...]:
    return tuple(group["name"] for group in (load_yaml(rule_file) or {}).get("groups") or [])


def load_yaml(text: str):
    """yaml.safe_load through libyaml when PyYAML has it (about 10x faster on rule files)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def register(subparsers) -> None:
    """`vigil bundle build`: the same as `python -m vigil_exporter.tools.bundle`."""
    commands = add_group(subparsers, "bundle", help="build the Prometheus rules from the Jsonnet "
                                                    "sources (from a checkout)")
    _build_arguments(add_command(commands, "build", run, help="write prometheus/generated/*.yml"))


def _build_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a generated file is stale")
    parser.add_argument("--override", metavar="FILE", type=Path,
                        help="the customisation file: YAML (or JSON, or Jsonnet) merged into "
                             "`_config`, e.g. {thresholds: {cpuUsageRatio: 0.9}}, with "
                             "disabledAlerts and siteAlerts; see docs/customising.md")
    parser.add_argument("--slos", metavar="FILE", type=Path,
                        help="YAML file of service level objectives (`slos:`), merged into "
                             "`_config.slos`; see docs/slos.md")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--output", metavar="DIR", type=Path,
                       help="directory of the generated rule files (default prometheus/generated)")
    where.add_argument("--site", metavar="DIR", type=Path,
                       help="write the whole site folder: DIR/prometheus/generated/*.yml, "
                            "DIR/alertmanager/ and DIR/grafana/dashboards/, which `vigil stack "
                            "up --site` and compose (VIGIL_SITE) load")


def main(argv: list[str] | None = None) -> int:
    from vigil_exporter.extras import MissingExtra

    parser = argparse.ArgumentParser(prog="python -m vigil_exporter.tools.bundle",
                                     description=__doc__.split("\n\n")[0])
    _build_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except MissingExtra as exc:
        print(exc, file=sys.stderr)
        return 2


def run(args) -> int:
    from vigil_exporter.extras import require
    from vigil_exporter.tools import customisation, site

    require("_jsonnet", "bundle", "vigil bundle build")
    source = str(args.override) if args.override else "overrides"
    try:
        overrides = customisation.read(args.override) if args.override else None
        if overrides:
            validate(overrides, source)
        overrides, sources = _with_slo_file(overrides, args.override, args.slos)
        if args.site:
            changed = site.build(args.site, overrides, sources, source, check=args.check,
                                 validated=True)
        else:
            changed = build_rules(check=args.check, directory=args.output, overrides=overrides,
                                  sources=sources, source=source, validated=True)
        root = checkout.root()
    except checkout.NotACheckout as exc:
        print(f"vigil bundle build: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    here = Path.cwd()
    for path in changed:
        rel = next((path.relative_to(base) for base in (root, here) if path.is_relative_to(base)),
                   path)
        print(f"{'stale' if args.check else 'wrote'}: {rel}")
    if args.check and changed:
        print("the site folder is stale: build it again" if args.site else
              "run `vigil bundle build` and commit the result", file=sys.stderr)
        return 1
    return 0


def _with_slo_file(overrides: dict | None, override_file: Path | None,
                   slo_file: Path | None) -> tuple[dict | None, dict[str, str]]:
    """The overrides with the SLO file's SLOs merged in, and which file each SLO came from."""
    sources = {name: str(override_file) for name in (overrides or {}).get("slos") or {}}
    if slo_file is None:
        return overrides, sources
    from vigil_exporter.slo.spec import read_file

    slos = read_file(slo_file, evaluate_config(overrides)["slos"])
    overrides = dict(overrides or {})
    overrides["slos"] = {**(overrides.get("slos") or {}), **slos}
    sources.update({name: str(slo_file) for name in slos})
    return overrides, sources


# ---- YAML ---------------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (the PromQL of long expressions)."""


def _str_representer(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def _ordered(mapping: dict, keys: tuple[str, ...]) -> dict:
    first = [k for k in keys if k in mapping]
    return {k: mapping[k] for k in first + sorted(set(mapping) - set(first))}


def _ordered_group(group: dict) -> dict:
    group = _ordered(group, GROUP_KEYS)
    rules = []
    for rule in group["rules"]:
        rule = _ordered(rule, RULE_KEYS)
        if "labels" in rule:
            rule["labels"] = dict(sorted(rule["labels"].items()))
        if "annotations" in rule:
            rule["annotations"] = _ordered(rule["annotations"], ANNOTATION_KEYS)
        rules.append(rule)
    group["rules"] = rules
    return group


# ---- Reading the generated rules ------------------------------------------------------------

def load_groups(directory: Path | None = None) -> list[dict]:
    """Every rule group of the generated files (recording rules first)."""
    directory = Path(directory) if directory else generated_dir()
    groups = []
    for name in OUTPUTS:
        groups += load_yaml((directory / name).read_text())["groups"]
    return groups


def recorded_names(groups: list[dict] | None = None) -> set[str]:
    groups = load_groups() if groups is None else groups
    return {r["record"] for g in groups for r in g["rules"] if "record" in r}


def metric_names_used_by_rules(groups: list[dict] | None = None) -> dict[str, list[str]]:
    """Metric name -> the rules (record or alert names) that read it, for every name that no
    rule records: what the scraped targets must expose."""
    groups = load_groups() if groups is None else groups
    recorded = recorded_names(groups)
    used: dict[str, list[str]] = {}
    for group in groups:
        for rule in group["rules"]:
            for name in sorted(metric_names_in(rule["expr"]) - recorded):
                used.setdefault(name, []).append(rule.get("record") or rule["alert"])
    return dict(sorted(used.items()))


# ---- Prometheus outside containers ---------------------------------------------------------

def local_prometheus_config(targets: dict[str, list[str]], alertmanagers: list[str],
                            rules_dir: Path | str | None = None, *,
                            scrape_interval: str | None = None,
                            evaluation_interval: str | None = None) -> dict:
    """prometheus/prometheus.yml with only the addresses changed, for a Prometheus run locally.

    targets: job name -> addresses ("127.0.0.1:9477"); the scrape jobs not named are dropped,
    since nothing listens at their compose address. alertmanagers: addresses of Alertmanager
    (empty: no alerting section). rule_files become absolute paths, into `rules_dir` when given
    (a directory holding files of the generated names, e.g. built with overrides), else into
    prometheus/. Intervals change only when asked (short intervals for tests).
    """
    config = yaml.safe_load(prometheus_yml().read_text())
    unknown = set(targets) - {job["job_name"] for job in config["scrape_configs"]}
    if unknown:
        raise ValueError(f"no scrape job named {sorted(unknown)} in {prometheus_yml()}")
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] not in targets:
            continue
        static = job.get("static_configs") or [{}]
        job["static_configs"] = [{**static[0], "targets": list(targets[job["job_name"]])}]
        jobs.append(job)
    config["scrape_configs"] = jobs

    if alertmanagers:
        manager = config["alerting"]["alertmanagers"][0]
        static = manager.get("static_configs") or [{}]
        manager["static_configs"] = [{**static[0], "targets": list(alertmanagers)}]
        config["alerting"]["alertmanagers"] = [manager]
    else:
        config.pop("alerting", None)

    def rule_file(entry: str) -> str:
        if rules_dir is not None:
            return str(Path(rules_dir).resolve() / Path(entry).name)
        return str((prometheus_dir() / entry).resolve())

    config["rule_files"] = [rule_file(entry) for entry in config.get("rule_files", [])]
    if scrape_interval:
        config["global"]["scrape_interval"] = scrape_interval
        timeout = config["global"].get("scrape_timeout")
        if timeout and parse_duration(timeout) > parse_duration(scrape_interval):
            config["global"]["scrape_timeout"] = scrape_interval
    if evaluation_interval:
        config["global"]["evaluation_interval"] = evaluation_interval
    return config


if __name__ == "__main__":
    sys.exit(main())
