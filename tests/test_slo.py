"""Service level objectives, offline: an SLO file through the bundle command (rules, a page and
a ticket alert, promtool scenarios at 99.9 %), the errors of a wrong declaration, the burn-rate
conditions against Sloth's documented google-30d and google-28d windows, and the pieces that
must agree with the instrumentation library."""
from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vigil_exporter.config import ConfigError
from vigil_exporter.slo import spec
from vigil_exporter.slo.status import Slo, format_table
from vigil_exporter.tools import bundle

pytestmark = pytest.mark.timeout(600)   # promtool and fresh Jsonnet builds: CPU-bound

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "slos.yml"
EXAMPLE_TEST = ROOT / "tests" / "promtool" / "example_slos_test.yml"


@functools.cache
def evaluated_config() -> dict:
    """`_config` as evaluated, on first use (not at collection)."""
    return bundle.evaluate_config()


def run_bundle(*args: str) -> subprocess.CompletedProcess:
    """`vigil bundle build ARGS` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "vigil_exporter", "bundle", "build", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def alerts_of(directory: Path) -> list[dict]:
    return [r for g in bundle.load_groups(directory) for r in g["rules"] if "alert" in r]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slos.yml"
    path.write_text(text)
    return path


# ---- an SLO file, end to end ------------------------------------------------------------------

@pytest.fixture(scope="module")
def example_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("example")
    done = run_bundle("--slos", str(EXAMPLE), "--output", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_an_slo_file_gets_recording_rules_a_page_and_a_ticket(example_build):
    slos = yaml.safe_load(EXAMPLE.read_text())["slos"]
    groups = {g["name"]: g for g in bundle.load_groups(example_build)}
    for name in slos:
        recorded = {r["record"] for g in ("vigil-slo.rules", "vigil-slo-long.rules")
                    for r in groups[g]["rules"] if r.get("labels", {}).get("slo") == name}
        window = slos[name].get("window", "30d")
        for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", window):
            assert f"job_slo:sli_error:ratio_rate{w}" in recorded, (name, w)
        assert {"job_slo:error_budget_remaining:ratio", "slo:objective:ratio"} <= recorded
        severities = {r["alert"]: r["labels"]["severity"] for r in alerts_of(example_build)
                      if r["labels"].get("slo") == name}
        expected_slow = slos[name].get("alerting", {}).get("slowBurn", "warning")
        assert severities == {"SloFastBurn": "critical", "SloSlowBurn": expected_slow}
    # the declared SLOs stay
    assert {"http-availability", "agent-success"} <= {r["labels"].get("slo")
                                                      for r in alerts_of(example_build)}


def test_the_example_slos_alert_as_the_workbook_says(example_build):
    """Total outage, 2 %, 0.3 %, 0.05 % and one error at low traffic against 99.9 %."""
    shutil.copy(EXAMPLE_TEST, example_build / EXAMPLE_TEST.name)
    done = subprocess.run(["promtool", "test", "rules", str(example_build / EXAMPLE_TEST.name)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_example_test_covers_the_rules_it_runs_against(example_build):
    order = yaml.safe_load(EXAMPLE_TEST.read_text())["group_eval_order"]
    assert order == [g["name"] for g in bundle.load_groups(example_build)]


def test_a_file_changes_or_removes_a_declared_slo(tmp_path):
    path = write(tmp_path, "slos:\n  http-latency: {objective: 99.5}\n  agent-success: null\n")
    assert bundle.main(["--slos", str(path), "--output", str(tmp_path / "out")]) == 0
    alerts = alerts_of(tmp_path / "out")
    assert "agent-success" not in {r["labels"]["slo"] for r in alerts if "slo" in r["labels"]}
    latency = next(r for r in alerts if r["labels"].get("slo") == "http-latency")
    assert "(99.5% of HTTP requests answered within 1s over 30d)" in \
        latency["annotations"]["description"]
    assert "/ 0.005 > 14.4" in latency["expr"]   # the budget of 99.5 %


# ---- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, faults", [
    ("slo:\n  a: {}\n", ['slo: unknown key (did you mean "slos"?)',
                         "slos: is required (a mapping of SLO names to their fields)"]),
    ("slos: [a, b]\n", ["slos: expected a mapping of names, got ['a', 'b']"]),
    ("slos:\n  Checkout: {objective: 99}\n",
     ["slos.Checkout: expected a name of lower-case letters, digits and dashes"]),
    ("slos:\n  agent-sucess: null\n",
     ['slos.agent-sucess: no declared SLO of that name to remove (did you mean "agent-success"?)']),
    ("slos:\n  a:\n    selector: job=api\n    sli: {kind: http-availabilty}\n    objective: high\n"
     "    alerting: {fastburn: page}\n",
     ['slos.a.selector: expected label matchers like job="api", route!="/health", got "job=api"',
      'slos.a.sli.kind: expected one of "http-availability", "http-latency", "agent-success", '
      '"llm-success", "custom", got "http-availabilty"',
      'slos.a.objective: expected a number above 0 and below 100, got "high"',
      'slos.a.alerting.fastburn: unknown key (did you mean "fastBurn"?)']),
    ("slos:\n  a:\n    sli: {kind: http-latency, threshold: 0.3}\n    objective: 99\n",
     ["slos.a.sli.threshold: 0.3 is not a bucket bound of http_request_duration_seconds; the "
      "bounds are 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10"]),
    ("slos:\n  a:\n    sli: {kind: agent-success}\n    objective: 0.999\n",
     ["slos.a.objective: 0.999 is a percentage: 0.999 % of good events (did you mean 99.9?)"]),
    ("slos:\n  a:\n    sli: {kind: agent-success}\n    objective: 90\n",
     ["slos.a.objective: 90 leaves an error budget of 10%, so SloFastBurn at 14.4× over 1h would "
      "need 144% of the events to be bad and could never fire: choose an objective above 93.06"]),
    ("slos:\n  a:\n    sli: {kind: custom, total: 'rate(x[5m])', good: 'rate(y[$window])', "
     "bad: 'rate(z[$window])'}\n    objective: 99\n",
     ["slos.a.sli: kind custom needs one of good or bad, not both",
      "slos.a.sli.total: expected PromQL with [$window] where the range goes, e.g. "
      'rate(requests_total{job="api"}[$window])']),
    ("slos:\n  a:\n    sli: {kind: llm-success, threshold: 1, bad: 'rate(z[$window])'}\n"
     "    objective: 99\n",
     ["slos.a.sli.bad: only for kind custom", "slos.a.sli.threshold: only for kind http-latency"]),
    ("slos:\n  a:\n    sli: {kind: agent-success}\n    objective: 99\n    window: 7d\n",
     ['slos.a.window: expected one of "30d", "28d", got "7d"']),
    ("slos:\n  a: [1\n", ["line 3, column 1: not valid YAML: expected ',' or ']', but got "
                          "'<stream end>'"]),
])
def test_a_wrong_slo_file_names_the_file_the_key_and_what_was_expected(tmp_path, capsys, text,
                                                                       faults):
    path = write(tmp_path, text)
    assert bundle.main(["--slos", str(path), "--output", str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"{path}: {fault}" for fault in faults]
    assert out == "" and not (tmp_path / "out").exists()   # nothing half-written


def test_the_command_exits_2_without_a_traceback(tmp_path):
    path = write(tmp_path, "slos:\n  a:\n    sli: {kind: agent-success}\n    objective: 90\n")
    done = run_bundle("--slos", str(path), "--output", str(tmp_path / "out"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"{path}: slos.a.objective: 90 leaves an error budget of 10%")
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_missing_slo_file(tmp_path, capsys):
    assert bundle.main(["--slos", str(tmp_path / "nope.yml")]) == 2
    assert capsys.readouterr().err == \
        f"{tmp_path / 'nope.yml'}: cannot read the file: No such file or directory\n"


def test_an_slo_of_an_override_file_is_reported_against_that_file(tmp_path, capsys):
    override = tmp_path / "my-vigil.yml"
    override.write_text("slos:\n  llm-success: {objective: 100}\n")
    assert bundle.main(["--override", str(override), "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        f"{override}: slos.llm-success.objective: expected a number above 0 and below 100, "
        "got 100\n")


def test_a_wrong_slo_in_the_jsonnet_config_is_reported_against_it():
    config = json.loads(json.dumps(evaluated_config()))
    config["slos"]["http-latency"]["sli"]["threshold"] = 0.2
    with pytest.raises(ConfigError) as caught:
        spec.check(config)
    assert str(caught.value) == (
        "prometheus/config.libsonnet (_config.slos): slos.http-latency.sli.threshold: 0.2 is not "
        "a bucket bound of http_request_duration_seconds; the bounds are 0.005, 0.01, 0.025, "
        "0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10")


def test_jsonnet_users_get_the_bucket_check_too():
    """Who builds with `jsonnet` directly skips the Python validation; the generator asserts."""
    import _jsonnet

    snippet = """(import 'prometheus/mixin.libsonnet') + { _config+:: { slos+: {
        'http-latency'+: { sli+: { threshold: 0.3 } } } } }"""
    with pytest.raises(RuntimeError, match=r"slos.http-latency.sli.threshold: 0.3 is not a bucket "
                                           r"bound of http_request_duration_seconds \(0.005, "):
        _jsonnet.evaluate_snippet("x", f"({snippet}).prometheusRules", jpathdir=[str(ROOT)])


# ---- the math, against Sloth ------------------------------------------------------------------

# Sloth's documented alert windows (google-30d and google-28d): per alert, the share of the
# error budget spent, the short and the long window. Its burn factor is
# share × SLO period / long window, and a condition holds when the error ratio over both windows
# is above factor × (1 - objective).
SLOTH_WINDOWS = {
    "page": [(0.02, "5m", "1h"), (0.05, "30m", "6h")],
    "ticket": [(0.10, "2h", "1d"), (0.10, "6h", "3d")],
}
HOURS = {"1h": 1, "6h": 6, "1d": 24, "3d": 72}


def conditions(rule: dict) -> list[tuple[str, str, float]]:
    """(long, short, error ratio threshold) of each window pair of a burn-rate alert."""
    budget = float(re.search(r" / ([0-9.e-]+) > ", rule["expr"]).group(1))
    found = []
    for long_w, factor, short_w in re.findall(
            r"ratio_rate(\w+)\{[^}]*\} / [0-9.e-]+ > ([0-9.]+)\n\s*and on \(job\) "
            r"job_slo:sli_error:ratio_rate(\w+)\{", rule["expr"]):
        found.append((long_w, short_w, float(factor) * budget))
    return found


@pytest.mark.parametrize("name, objective, period_days", [
    ("checkout-availability", 99.9, 30), ("payments-success", 99.5, 28)])
def test_burn_rate_conditions_equal_sloths_google_windows(example_build, name, objective,
                                                          period_days):
    budget = 1 - objective / 100
    for alertname, severity in (("SloFastBurn", "page"), ("SloSlowBurn", "ticket")):
        rule = next(r for r in alerts_of(example_build)
                    if r["alert"] == alertname and r["labels"]["slo"] == name)
        sloth = [(long_w, short_w, share * period_days * 24 / HOURS[long_w] * budget)
                 for share, short_w, long_w in SLOTH_WINDOWS[severity]]
        ours = conditions(rule)
        assert [pair[:2] for pair in ours] == [pair[:2] for pair in sloth]
        assert [t for _, _, t in ours] == pytest.approx([t for _, _, t in sloth], rel=1e-12)


def test_the_page_thresholds_of_99_9_over_30_days_are_the_workbooks(example_build):
    rule = next(r for r in alerts_of(example_build)
                if r["alert"] == "SloFastBurn" and r["labels"]["slo"] == "checkout-availability")
    assert conditions(rule) == [("1h", "5m", pytest.approx(0.0144)),
                                ("6h", "30m", pytest.approx(0.006))]


# ---- what must agree --------------------------------------------------------------------------

def test_latency_bounds_are_the_instrumentation_librarys():
    from vigil_instrument.metrics import HTTP_DURATION_BUCKETS

    assert evaluated_config()["httpDurationBuckets"] == list(HTTP_DURATION_BUCKETS)


def test_the_kinds_of_the_schema_are_the_generators():
    import _jsonnet

    kinds = json.loads(_jsonnet.evaluate_snippet(
        "kinds", "std.objectFieldsAll((import 'prometheus/lib/slo.libsonnet').kinds)",
        jpathdir=[str(ROOT)]))
    assert sorted(kinds) == sorted(spec.KINDS)


@pytest.mark.parametrize("bound, matches, misses", [
    (1, ["1", "1.0"], ["10", "1.05", "0.1"]),
    (10, ["10", "10.0"], ["1", "100"]),
    (0.5, ["0.5"], ["0.50", "5"]),
])
def test_the_le_matcher_reads_every_clients_labels(bound, matches, misses):
    """prometheus_client writes le="1.0", Go clients le="1"; Prometheus 3 normalises to floats."""
    import _jsonnet

    matcher = json.loads(_jsonnet.evaluate_snippet(
        "le", f"(import 'prometheus/lib/slo.libsonnet').leMatcher({bound})", jpathdir=[str(ROOT)]))
    op, value = re.fullmatch(r'le(=~|=)"(.*)"', matcher).groups()
    pattern = value.encode().decode("unicode_escape") if op == "=~" else re.escape(value)
    assert all(re.fullmatch(pattern, m) for m in matches), matcher
    assert not any(re.fullmatch(pattern, m) for m in misses), matcher


def test_the_default_slos_are_the_demos_four():
    assert {name: slo["sli"]["kind"] for name, slo in evaluated_config()["slos"].items()} == {
        "http-availability": "http-availability", "http-latency": "http-latency",
        "agent-success": "agent-success", "llm-success": "llm-success"}
    spec.check(evaluated_config())   # valid


# ---- vigil slo status, the table --------------------------------------------------------------

def test_status_table_lines_up_the_slos():
    slos = [
        Slo("http-availability", "vigil-demo", 0.98, "30d", budget_remaining=0.5,
            budget_time_left_seconds=5 * 86400 + 3600,
            error_ratios={"5m": 0.3, "1h": 0.4, "30d": 0.01},
            alerts=[{"alertname": "SloFastBurn", "state": "firing", "severity": "critical"}]),
        Slo("llm-success", "vigil-demo", 0.95, "30d", budget_remaining=None,
            budget_time_left_seconds=40 * 86400, error_ratios={"1h": 0.0025}),
    ]
    assert format_table(slos).splitlines() == [
        "SLO                JOB         OBJECTIVE  SLI  BUDGET LEFT  GONE IN  BURN 5m  BURN 1h  ALERT",
        "http-availability  vigil-demo  98% / 30d  99%          50%     5d1h    15.00    20.00  "
        "SloFastBurn firing (critical)",
        "llm-success        vigil-demo  95% / 30d    -            -    >=30d        -     0.05  -",
    ]
    assert slos[0].sli == pytest.approx(0.99) and slos[0].burn_rates == pytest.approx(
        {"5m": 15, "1h": 20})


def test_status_of_a_prometheus_that_cannot_be_reached_is_one_line_and_exit_1(capsys):
    from vigil_exporter.cli import main
    from vigil_exporter.tools.stack.process import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"   # nothing listens there
    assert main(["slo", "status", nowhere, "--format", "json"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith(f"vigil slo status: cannot reach Prometheus at {nowhere}: ")


# ---- docs/slos.md -----------------------------------------------------------------------------

DOC = ROOT / "docs" / "slos.md"


def test_the_fields_table_documents_every_key_of_the_schema():
    from vigil_exporter.validation import describe

    documented = set(re.findall(r"^\| `(slos\.<name>[^`]*)` \|", DOC.read_text(), re.M))
    keys = {"slos.<name>." + row[0] for row in describe(spec.slo_schema())
            if row[1] != "a mapping"}   # the sections, not keys
    assert keys | {"slos.<name>"} == documented


def test_the_documented_jsonnet_declaration_builds():
    import _jsonnet

    example = re.search(r"```jsonnet\n(.*?)```", DOC.read_text(), re.S).group(1)
    alerts = json.loads(_jsonnet.evaluate_snippet(str(DOC), f"({example}).prometheusAlerts",
                                                  jpathdir=[str(ROOT)]))
    burns = [r for g in alerts["groups"] for r in g["rules"]
             if r["labels"].get("slo") == "checkout-availability"]
    assert sorted(r["alert"] for r in burns) == ["SloFastBurn", "SloSlowBurn"]
    assert 'route=~"/api/checkout.*"' not in json.dumps(burns)   # the matchers are the rules'


def test_the_documented_yaml_declaration_builds(tmp_path):
    example = re.search(r"```yaml\n(slos:.*?)```", DOC.read_text(), re.S).group(1)
    path = write(tmp_path, example)
    assert bundle.main(["--slos", str(path), "--output", str(tmp_path / "out")]) == 0
    rules = (tmp_path / "out" / "recording_rules.yml").read_text()
    assert 'http_requests_total{job="checkout", route!="unmatched", route=~"/api/checkout.*"' in rules
