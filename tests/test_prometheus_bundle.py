"""The Prometheus bundle, offline: fresh generated YAML, promtool, rule conventions, coverage.

What mixtool's lint would check (it cannot be installed here) is written out as tests, and so
is what promtool cannot check by itself: that every alert has a firing and a quiet unit test
and that every recording rule has an expression test.
"""
from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import vigil_exporter
from vigil_exporter.tools import bundle, promql
from vigil_exporter.validation import parse_duration

ROOT = Path(__file__).resolve().parent.parent
PROM = ROOT / "prometheus"
TESTS_DIR = PROM / "tests"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
CHANGELOG = ROOT / "CHANGELOG.md"

SEVERITIES = {"critical", "warning", "info"}
AREAS = {"meta", "exporter", "system", "database", "redis", "business", "application", "slo"}
# Alerts about everything at once (no label identifies a failing thing).
GLOBAL_ALERTS = {"Watchdog", "LlmCostPerHourOverBudget", "LlmCostTodayOverBudget"}
# Alerts that can never be quiet.
ALWAYS_FIRING = {"Watchdog"}
# Alerts with one rule per service level objective (told apart by their `slo` label).
PER_SLO_ALERTS = {"SloFastBurn", "SloSlowBurn"}
# Alerts that open the tenant dashboard on their tenant.
PER_TENANT_LINKED = {"TenantCapacityRunningOut", "TenantDailyQuotaRunningOut", "TenantLlmCostOverBudget"}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is not installed: run the test command from README.md"
    return path


# The evaluated mixin, on first use (seconds of Jsonnet: not at collection, which every worker of
# the parallel runner does).
@functools.cache
def mixin() -> dict:
    return bundle.evaluate()


def evaluated_config() -> dict:
    return mixin()["config"]


GROUPS = bundle.load_groups()
ALERTS = [rule for group in GROUPS for rule in group["rules"] if "alert" in rule]
RECORDS = [rule for group in GROUPS for rule in group["rules"] if "record" in rule]
UNIT_TESTS = sorted(TESTS_DIR.glob("*_test.yml"))
UNIT_SPECS = {path: yaml.safe_load(path.read_text()) for path in UNIT_TESTS}


def _cases():
    """(file, test group, alert test case) for every alert_rule_test."""
    for path, spec in UNIT_SPECS.items():
        for test in spec["tests"]:
            for case in test.get("alert_rule_test") or []:
                yield path, test, case


# ---- generated files ------------------------------------------------------------------------

def test_generated_files_are_fresh():
    stale = bundle.build_rules(check=True)
    assert not stale, f"stale: {stale}; run `vigil bundle build` and commit the result"


def test_build_refreshes_the_group_order_of_the_unit_tests(tmp_path):
    """A stale group_eval_order fails `--check` and a build rewrites it; the rest of the file
    stays as written."""
    source = TESTS_DIR / "meta_test.yml"
    stale = tmp_path / source.name
    stale.write_text(source.read_text().replace("  - vigil-redis.rules\n", "", 1))
    assert stale.read_text() != source.read_text()
    assert bundle.build_rules(check=True, tests=tmp_path) == [stale]
    assert bundle.build_rules(tests=tmp_path) == [stale]
    assert stale.read_text() == source.read_text()


def test_a_new_rule_group_reaches_every_unit_test_without_editing_it():
    rendered = bundle.render()
    recording = yaml.safe_load(rendered["recording_rules.yml"])
    recording["groups"].append({"name": "vigil-new.rules", "rules": []})
    orders = bundle.unit_test_eval_orders({**rendered, "recording_rules.yml": yaml.dump(recording)})
    assert set(orders) == set(UNIT_TESTS)
    for path, text in orders.items():
        order = yaml.safe_load(text)["group_eval_order"]
        recorded = [g["name"] for g in recording["groups"]]
        assert order[:len(recorded)] == recorded, path.name   # recording rules first, new one last
        assert yaml.safe_load(text)["tests"] == UNIT_SPECS[path]["tests"]


def test_build_is_deterministic():
    first = bundle.render()
    bundle._evaluate.cache_clear()
    assert bundle.render() == first


def test_check_mode_reports_a_stale_file(tmp_path):
    assert bundle.main(["--output", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(bundle.OUTPUTS)
    (tmp_path / "alerts.yml").write_text("groups: []\n")
    assert bundle.build_rules(check=True, directory=tmp_path) == [tmp_path / "alerts.yml"]
    assert bundle.main(["--check", "--output", str(tmp_path)]) == 1


def test_headers_carry_the_bundle_version():
    for name in bundle.OUTPUTS:
        first = (bundle.generated_dir() / name).read_text().splitlines()[0]
        version = evaluated_config()["bundleVersion"]
        assert first.startswith(f"# Vigil monitoring bundle {version}:"), first


def test_versions_agree():
    """One version for the package and the bundle, and the changelog names it."""
    version = evaluated_config()["bundleVersion"]
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?", version), version
    assert version == vigil_exporter.__version__
    released = re.findall(r"^## \[(\d+\.\d+\.\d+[^\]]*)\]", CHANGELOG.read_text(), re.M)
    assert released and released[0] == version, f"newest CHANGELOG entry {released[:1]}"
    assert re.search(r"renam\w+.*breaking|breaking.*renam", CHANGELOG.read_text(),
                     re.I | re.S), "CHANGELOG must say that renames are breaking changes"


def test_overrides_merge_into_config(tmp_path):
    rendered = bundle.render({"thresholds": {"cpuUsageRatio": 0.95},
                              "forDurations": {"RedisDown": "15s"},
                              "exporterSelector": 'job="exp"'})
    alerts = {r["alert"]: r for g in yaml.safe_load(rendered["alerts.yml"])["groups"]
              for r in g["rules"]}
    assert alerts["SystemCpuUsageHigh"]["expr"] == 'vigil_system_cpu_usage_ratio{job="exp"} > 0.95'
    assert alerts["SystemCpuUsageHigh"]["annotations"]["description"].endswith("above 95%.")
    assert alerts["SystemMemoryUsageHigh"]["expr"].endswith("> 0.85")  # untouched sibling
    assert alerts["RedisDown"]["for"] == "15s"
    assert 'absent(up{job="exp"})' in alerts["TargetAbsent"]["expr"]


# ---- promtool -------------------------------------------------------------------------------

def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_promtool_check_config():
    result = _run("check", "config", str(PROM / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules():
    files = [str(bundle.generated_dir() / name) for name in bundle.OUTPUTS]
    result = _run("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- conventions (mixtool lint) -------------------------------------------------------------

@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: r["alert"])
def test_alert_conventions(rule):
    name, labels, notes = rule["alert"], rule["labels"], rule["annotations"]
    assert re.fullmatch(r"(?:[A-Z][a-z0-9]+)+", name), f"{name} is not CamelCase"
    assert labels.get("severity") in SEVERITIES
    assert labels.get("area") in AREAS
    assert set(notes) == {"summary", "description", "runbook_url", "dashboard_url"}
    summary, description = notes["summary"], notes["description"]
    assert "{{" not in summary and "$" not in summary, "summary must be static"
    assert summary.endswith("."), "summary must end with a period"
    assert summary[0].isupper()
    assert "{{ $value" in description, "description must show the value"
    if name not in GLOBAL_ALERTS:
        assert "$labels." in description, "description must name the failing thing"
    bundle_config = evaluated_config()
    assert notes["runbook_url"] == bundle_config["runbookUrlPattern"] % name.lower()
    uid = bundle_config["dashboardUids"][bundle_config["areaDashboards"][labels["area"]]]
    query = f"?var-slo={labels['slo']}" if name in PER_SLO_ALERTS else ""
    if name in PER_TENANT_LINKED:
        uid, query = bundle_config["dashboardUids"]["tenants"], "?var-tenant={{ $labels.tenant }}"
    assert notes["dashboard_url"] == f"{bundle_config['grafanaUrl']}/d/{uid}{query}"
    if name in bundle_config["forDurations"] and bundle_config["forDurations"][name] != "0s":
        assert rule["for"] == bundle_config["forDurations"][name]
    assert rule.get("keep_firing_for") == bundle_config["keepFiringFor"].get(name)


def test_keep_firing_for_names_alerts_that_exist():
    assert set(evaluated_config()["keepFiringFor"]) <= {rule["alert"] for rule in ALERTS}


def test_alert_names_are_unique_and_configured():
    names = [rule["alert"] for rule in ALERTS if rule["alert"] not in PER_SLO_ALERTS]
    assert len(names) == len(set(names))
    per_slo = [(rule["alert"], rule["labels"]["slo"]) for rule in ALERTS
               if rule["alert"] in PER_SLO_ALERTS]
    assert sorted(per_slo) == sorted((name, slo) for name in PER_SLO_ALERTS
                                     for slo in evaluated_config()["slos"])
    names += [name for name, _ in per_slo]
    assert set(evaluated_config()["forDurations"]) == set(names) - {"Watchdog"}


def _runbook_sections() -> dict[str, str]:
    text = RUNBOOKS.read_text()
    parts = re.split(r"^## (\S+)\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_alert_has_a_runbook_section():
    sections = _runbook_sections()
    for rule in ALERTS:
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        matching = [title for title in sections if title.lower() == anchor]
        assert matching, f"docs/runbooks.md has no section for {rule['alert']} (#{anchor})"
        body = sections[matching[0]]
        for part in ("**Meaning.**", "**Confirm.**", "**What to do.**"):
            assert part in body, f"runbook of {rule['alert']} lacks {part}"
        assert "```promql" in body, f"runbook of {rule['alert']} has no PromQL to confirm"


def test_every_runbook_section_is_an_alert():
    names = {rule["alert"] for rule in ALERTS}
    assert set(_runbook_sections()) <= names


@pytest.mark.parametrize("rule", RECORDS, ids=lambda r: r["record"])
def test_recording_rule_names(rule):
    level, metric, operations = rule["record"].split(":")  # exactly level:metric:operations
    assert re.fullmatch(r"[a-z]+(?:_[a-z]+)*", level)
    assert re.fullmatch(r"[a-z][a-z0-9_]*", metric)
    assert re.fullmatch(r"[a-z0-9_]+", operations)
    for by in re.findall(r"\bby \(([^)]*)\)", rule["expr"]):  # the level names what is kept
        # ... with the labels the rule adds (`job_slo:` keeps job and adds slo)
        kept = [label.strip() for label in by.split(",")] + sorted(rule.get("labels", {}))
        assert kept == level.split("_"), f"{rule['record']}: aggregates by ({by})"


def test_rules_avoid_what_one_prometheus_version_rejects():
    """Prometheus 2.42 (the tests) and 3.x (compose) must both load the rules."""
    banned = {
        r"\bholt_winters\b": "renamed in 3.0",
        r"\bdouble_exponential_smoothing\b": "3.x only, experimental",
        r"\binfo\s*\(": "3.x only, experimental",
        r"\blimitk\b|\blimit_ratio\b": "3.x only, experimental",
        r"\bsort_by_label": "3.x only, experimental",
        r"@\s*(?:start|end|\d)": "@ modifier: avoid in rules",
        r"\[[^\]]*[+\-*/][^\]]*\]": "duration arithmetic: 3.x only",
    }
    for group in GROUPS:
        assert set(group) <= {"name", "interval", "rules"}, group["name"]  # no query_offset, limit
        for rule in group["rules"]:
            # keep_firing_for arrived in 2.42: promtool 2.42 parses and evaluates it
            assert set(rule) <= {"record", "alert", "expr", "for", "keep_firing_for", "labels",
                                 "annotations"}, f"{rule}: not in Prometheus 2.42"
            for pattern, why in banned.items():
                assert not re.search(pattern, rule["expr"]), f"{rule.get('alert') or rule['record']}: {why}"
            for label in {**rule.get("labels", {}), **rule.get("annotations", {})}:
                assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label)


# ---- unit test coverage ---------------------------------------------------------------------

def test_unit_test_files_load_the_generated_rules_in_order():
    group_names = [group["name"] for group in GROUPS]
    for path, spec in UNIT_SPECS.items():
        # the bundle's own files; site_alerts.yml is a site's (empty here, tests of its own)
        assert spec["rule_files"] == [f"../generated/{name}" for name in bundle.OUTPUTS
                                      if name != "site_alerts.yml"], path
        # without an order promtool evaluates the groups at random
        assert spec.get("group_eval_order") == group_names, f"{path.name}: group_eval_order"


@pytest.mark.parametrize("name", [rule["alert"] for rule in ALERTS])
def test_every_alert_fires_and_stays_quiet_in_a_unit_test(name):
    firing = [case for _, _, case in _cases() if case["alertname"] == name and
              case.get("exp_alerts")]
    quiet = [case for _, _, case in _cases() if case["alertname"] == name and
             not case.get("exp_alerts")]
    assert firing, f"{name}: no unit test where it fires"
    if name not in ALWAYS_FIRING:
        assert quiet, f"{name}: no unit test where it stays quiet"
    rule = next(rule for rule in ALERTS if rule["alert"] == name)
    for case in firing:
        for alert in case["exp_alerts"]:
            labels = alert.get("exp_labels") or {}
            assert labels.get("severity") == rule["labels"]["severity"]
            assert labels.get("area") == rule["labels"]["area"]
            assert set(alert.get("exp_annotations") or {}) == set(rule["annotations"]), \
                f"{name}: a firing case must expect every annotation"


def test_every_recording_rule_has_an_expression_test():
    tested = set()
    for spec in UNIT_SPECS.values():
        for test in spec["tests"]:
            for case in test.get("promql_expr_test") or []:
                if case.get("exp_samples"):
                    tested |= set(re.findall(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", case["expr"]))
    missing = sorted({rule["record"] for rule in RECORDS} - tested)
    assert not missing, f"recording rules without a promql_expr_test: {missing}"


def test_alerts_use_only_recording_rules_the_bundle_records():
    recorded = {rule["record"] for rule in RECORDS}
    for rule in ALERTS + RECORDS:
        for name in re.findall(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["expr"]):
            assert name in recorded, f"{rule.get('alert') or rule['record']} reads {name}"


# ---- metric names ---------------------------------------------------------------------------

def test_metric_name_tokenizer():
    expr = '''sum by (job, le) (rate(http_request_duration_seconds_bucket{job="a", route=~"x|y"}[5m]))
      / on (job) group_left (instance) vigil_db_up offset 5m
      or label_replace(up{job="b"}, "resource", "agents", "tenant", ".*") > bool 0.5
      and absent(x:y:z) unless time() % 172800 >= bool 86400
      + sum_over_time((foo * 60)[1d:1m]) > 1e-3'''
    assert promql.metric_names_in(expr) == {"http_request_duration_seconds_bucket",
                                            "vigil_db_up", "up", "x:y:z", "foo"}


def test_metric_names_used_by_rules_are_names_the_stack_emits():
    """Every raw name has a prefix of the exporter or the instrumentation library (the live
    test checks them against real expositions)."""
    used = bundle.metric_names_used_by_rules()
    assert "vigil_redis_up" in used and "http_requests_total" in used
    assert not set(used) & bundle.recorded_names()
    prefixes = ("vigil_", "http_", "agent_", "tool_", "llm_", "cache_", "auth_",
                "prometheus_", "alertmanager_")  # the monitoring stack watches itself
    odd = [name for name in used if name != "up" and not name.startswith(prefixes)]
    assert not odd, odd


# ---- prometheus.yml -------------------------------------------------------------------------

def _prometheus_yml() -> dict:
    return yaml.safe_load((PROM / "prometheus.yml").read_text())


def test_prometheus_yml_jobs_match_the_selectors():
    config = _prometheus_yml()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"vigil", "vigil-demo", "prometheus", "alertmanager"}
    assert jobs["vigil"]["static_configs"][0]["targets"] == ["vigil:9477"]
    assert jobs["vigil-demo"]["static_configs"][0]["targets"] == ["demo:8080"]
    bundle_config = evaluated_config()
    selectors = [bundle_config[key] for key in ("exporterSelector", "serviceSelector",
                                                "prometheusSelector", "alertmanagerSelector")]
    for selector in selectors + bundle_config["absentTargetSelectors"]:
        job = re.fullmatch(r'job="([^"]+)"', selector).group(1)
        assert job in jobs, f"selector {selector} names no job of prometheus.yml"
    for job in jobs:
        assert re.search(bundle_config["targetSelector"].split('"')[1], job), f"TargetDown misses {job}"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == \
        ["alertmanager:9093"]
    for entry in config["rule_files"]:
        assert (PROM / entry).is_file(), f"rule file {entry} does not exist next to prometheus.yml"
    assert sorted(Path(entry).name for entry in config["rule_files"]) == sorted(bundle.OUTPUTS)
    glob = config["global"]
    assert parse_duration(glob["scrape_timeout"]) < parse_duration(glob["scrape_interval"])


def test_local_prometheus_config_changes_only_addresses(tmp_path):
    local = bundle.local_prometheus_config(
        {"vigil": ["127.0.0.1:19477"], "vigil-demo": ["127.0.0.1:18080"]},
        ["127.0.0.1:19093"])
    original = _prometheus_yml()
    assert local["global"] == original["global"]
    assert [job["job_name"] for job in local["scrape_configs"]] == ["vigil", "vigil-demo"]
    jobs = {job["job_name"]: job for job in local["scrape_configs"]}
    assert jobs["vigil"]["static_configs"] == [{"targets": ["127.0.0.1:19477"]}]
    assert local["alerting"]["alertmanagers"][0]["static_configs"] == \
        [{"targets": ["127.0.0.1:19093"]}]
    assert local["alerting"]["alertmanagers"][0]["api_version"] == "v2"
    assert all(Path(entry).is_absolute() and Path(entry).is_file()
               for entry in local["rule_files"])
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(local))
    result = _run("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr

    quick = bundle.local_prometheus_config({"vigil": ["127.0.0.1:1"]}, [], tmp_path,
                                           scrape_interval="1s", evaluation_interval="1s")
    assert "alerting" not in quick
    assert quick["rule_files"] == [str(tmp_path / name) for name in bundle.OUTPUTS]
    assert quick["global"]["scrape_interval"] == "1s"
    assert quick["global"]["scrape_timeout"] == "1s"
    with pytest.raises(ValueError):
        bundle.local_prometheus_config({"nope": ["127.0.0.1:1"]}, [])


# ---- documentation --------------------------------------------------------------------------

@pytest.mark.parametrize("doc", [PROM / "README.md", RUNBOOKS], ids=lambda p: p.name)
def test_documented_overrides_build(doc):
    """The Jsonnet override examples of the docs evaluate and change what they say (README.md's
    command line runs as written: tests/test_customisation.py). An example that writes files
    through std.manifestYamlDoc is evaluated with the identity in its place: the C++ Jsonnet's
    manifest functions are Jsonnet code that escapes strings a character at a time, some 30 s of
    CPU for the whole bundle, and the YAML is Jsonnet's own, not the example's."""
    import json

    import _jsonnet

    examples = re.findall(r"```jsonnet\n(.*?)```", doc.read_text(), re.S)
    assert examples, f"{doc} has no Jsonnet example"
    for example in examples:
        if "prometheusAlerts" not in example:
            example = f"({example}).prometheusAlerts"
        example = example.replace("std.manifestYamlDoc(", "(")
        result = json.loads(_jsonnet.evaluate_snippet(str(doc), example, jpathdir=[str(ROOT)]))
        alerts = result.get("alerts.yml", result)  # README's example writes files
        text = json.dumps(alerts)
        assert "SystemCpuUsageHigh" in text or "AgentLatencyHigh" in text
        assert alerts != mixin()["prometheusAlerts"], "the override changed nothing"


def test_documented_yaml_override_builds(tmp_path):
    example = re.search(r"```yaml\n(.*?)```", (PROM / "README.md").read_text(), re.S).group(1)
    override = tmp_path / "my-vigil.yml"
    override.write_text(example)
    assert bundle.main(["--override", str(override), "--output", str(tmp_path / "out")]) == 0
    alerts = (tmp_path / "out" / "alerts.yml").read_text()
    assert "vigil_system_cpu_usage_ratio{job=\"vigil\"} > 0.9" in alerts
    assert 'job=~"api|worker"' in alerts


# ---- the fast formatter (prometheus/lib/format.libsonnet) ---------------------------------

FORMAT_CASES = [
    ("a %(x)s b %(y)s", {"x": "X", "y": 0.8}), ("%s-%s", ["a", 3]), ("%s", "solo"),
    ("100%%", []), ("%d items", 3), ("%(x)s %% y", {"x": 1}), ("no fields", {}),
    ("%(k)d", {"k": 2}), ("%s", [[1, 2]]), ("%(a)s%(a)s)s", {"a": "("}), ("%s", [True]),
]
NUMBERS = [1, 3600, 0.8, 0.95, 0.001, 0.0001, 0.00005, 12.5, -0.25, 0.1, 1 / 3, 2 / 3, 86400,
           4294967296, 0.999, 0.9995, 1e16, 123456.789, 99.9, 0.07, -3, 1.5e-7]


def test_fmt_and_num_give_what_percent_gives():
    """fmt and num replace `%` for speed: their results must be `%`'s, fast path or not."""
    import json

    import _jsonnet

    snippet = """
        local f = import 'lib/format.libsonnet';
        local cases = std.parseJson(std.extVar('cases')), numbers = std.parseJson(std.extVar('numbers'));
        { fmt: [[f.fmt(c[0], c[1]), c[0] % c[1]] for c in cases],
          num: [[f.num(n), '%.15g' % n] for n in numbers] }
    """
    result = json.loads(_jsonnet.evaluate_snippet(
        str(PROM / "format_test.jsonnet"), snippet, jpathdir=[str(PROM)],
        ext_vars={"cases": json.dumps(FORMAT_CASES), "numbers": json.dumps(NUMBERS)}))
    assert [pair for pair in result["fmt"] if pair[0] != pair[1]] == []
    assert [pair for pair in result["num"] if pair[0] != pair[1]] == []
    assert dict(zip(map(str, NUMBERS), (a for a, _ in result["num"])))["0.95"] == "0.95"


def test_the_mixin_fills_templates_with_fmt():
    """A string `%` in the mixin costs ~10 ms per call (prometheus/README.md, Conventions)."""
    slow = [f"{path.relative_to(ROOT)}:{n}" for path in sorted(PROM.rglob("*.libsonnet"))
            if path.name != "format.libsonnet"
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if re.search(r"(['\"]|\|\|\|)\s+%\s+[\w(\[{]", line.split("//")[0])]
    assert slow == [], "use fmt(template, values):\n" + "\n".join(slow)
