"""The customisation file and the site folder (docs/customising.md), offline.

Bad files: every kind of fault gets its exit status 2 and its message (file, key path, what was
expected), without a traceback. The example file (examples/site.yml) is built once, by the
documented commands run exactly as written; its site folder then goes through promtool
(`tests/promtool/example_site_test.yml`), amtool and a comparison of the dashboards with the
committed ones. The committed generated files stay untouched.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vigil_exporter.config import ConfigError
from vigil_exporter.tools import bundle, customisation
from vigil_exporter.tools.dashboards import lint

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "site.yml"
SITE_TEST = ROOT / "tests" / "promtool" / "example_site_test.yml"
# Docs whose ```console blocks are run as written (docs/customising.md is the whole story).
DOCS = [ROOT / "docs" / "customising.md", ROOT / "prometheus" / "README.md",
        ROOT / "docs" / "alerting.md"]

# The module's site build (the documented commands) runs in the first test that needs it: on a
# busy machine that takes longer than the default timeout.
pytestmark = pytest.mark.timeout(600)

SITE_ALERT = {"expr": 'up{job="api"} == 0', "severity": "warning", "summary": "API down.",
              "runbookUrl": "https://wiki.example.com/api"}


def faults(overrides: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        bundle.validate(overrides, "site.yml")
    assert caught.value.source == "site.yml"
    return caught.value.faults


@pytest.mark.parametrize("overrides, expected", [
    ({"httpLatencyP95Secs": 0.5},
     'httpLatencyP95Secs: unknown key; thresholds.httpLatencyP95Seconds: the http-latency SLO'),
    ({"thresholds": {"cpuUsageRatoi": 0.9}},
     'thresholds.cpuUsageRatoi: unknown key (did you mean "cpuUsageRatio"?)'),
    ({"cpuUsageRatio": 0.9}, 'cpuUsageRatio: unknown key (did you mean "thresholds.cpuUsageRatio"?)'),
    ({"thresholds": {"dbProbeSeconds": "half a second"}},
     'thresholds.dbProbeSeconds: expected a number >= 0 (seconds), got "half a second"'),
    ({"thresholds": {"cpuUsageRatio": 90}}, "got 90 (did you mean 0.9?)"),
    ({"thresholds": {"cpuUsageRatio": -0.5}}, "thresholds.cpuUsageRatio: expected a ratio"),
    ({"thresholds": {"cpuUsageRatio": None}}, "thresholds.cpuUsageRatio: null would remove"),
    ({"thresholds": 0.9}, "thresholds: expected a mapping, got 0.9"),
    ({"forDurations": {"SystemCpuUsageHigh": "soon"}},
     'forDurations.SystemCpuUsageHigh: expected a duration like "5m", got "soon"'),
    ({"forDurations": {"HttpLatencyHigh": "5m"}}, "SloFastBurn and SloSlowBurn replaced"),
    ({"serviceSelector": "api"}, "serviceSelector: expected label matchers"),
    ({"absentTargetSelectors": ['job="a"', "b"]}, "absentTargetSelectors[1]: expected label"),
    ({"sloBurnRateAlerts": {"fast": [{"long": 1}]}}, "sloBurnRateAlerts.fast[0].long: expected a"),
    ({"runbookUrlPattern": "https://wiki.example.com/runbooks"}, "runbookUrlPattern: expected"),
    ({"bundleVersion": "2.0.0"}, "bundleVersion: the bundle's own version, not a setting"),
    ({"disabledAlerts": ["RedisCacheHitRatioLo"]},
     'disabledAlerts[0]: no alert of the bundle is named "RedisCacheHitRatioLo" (did you mean '
     '"RedisCacheHitRatioLow"?)'),
    ({"disabledAlerts": "Watchdog"}, 'disabledAlerts: expected a list of string, got "Watchdog"'),
    ({"siteAlerts": {"apiDown": SITE_ALERT}}, "siteAlerts.apiDown: expected a name matching"),
    ({"siteAlerts": {"ApiDown": {"expr": "up == 0"}}}, "siteAlerts.ApiDown.severity: is required"),
    ({"siteAlerts": {"ApiDown": {**SITE_ALERT, "severity": "page"}}},
     'siteAlerts.ApiDown.severity: expected one of "critical", "warning", "info", got "page"'),
    ({"siteAlerts": {"ApiDown": {**SITE_ALERT, "metric": "up"}}},
     "siteAlerts.ApiDown: give expr, or metric with operator and threshold, not both"),
    ({"siteAlerts": {"ApiDown": {**SITE_ALERT, "expr": None, "metric": "up"}}},
     "siteAlerts.ApiDown: give expr, or metric with operator and threshold (missing operator, "
     "threshold)"),
    ({"siteAlerts": {"ApiDown": {**SITE_ALERT, "threshold": "high"}}},
     'siteAlerts.ApiDown.threshold: expected a number, got "high"'),
    ({"siteAlerts": {"ApiDown": {**SITE_ALERT, "for": "a while"}}},
     'siteAlerts.ApiDown.for: expected a duration like "5m", got "a while"'),
    ({"siteAlerts": {"ApiDown": {**SITE_ALERT, "runbookUrl": "see wiki"}}},
     "siteAlerts.ApiDown.runbookUrl: expected a string matching"),
    ({"siteAlerts": {"ApiDown": {**SITE_ALERT, "area": "payments"}}},
     'siteAlerts.ApiDown.area: expected one of "application", "business"'),
    ({"siteAlerts": {"ApiDown": {**SITE_ALERT, "labels": {"severity": "critical"}}}},
     "siteAlerts.ApiDown.labels.severity: is set by the bundle"),
    ({"siteAlerts": {"ApiDown": {**SITE_ALERT, "channels": ["pagr"]}}},
     'siteAlerts.ApiDown.channels[0]: no receiver "pagr" in alertmanager/alertmanager.yml'),
    ({"siteAlerts": {"ApiDown": {**SITE_ALERT, "chanels": ["pager"]}}},
     'siteAlerts.ApiDown.chanels: unknown key (did you mean "channels"?)'),
    ({"siteAlerts": {"ApiDown": None}},
     "siteAlerts.ApiDown: null removes a site alert of _config, and none has that name"),
    ({"siteAlerts": {"RedisDown": SITE_ALERT}},
     "siteAlerts.RedisDown: is the name of an alert of the bundle"),
    ({"llmBudget": {"perTenantPerMonthUsdOverrides": {"acme": "lots"}}},
     'llmBudget.perTenantPerMonthUsdOverrides.acme: expected a number >= 0, got "lots"'),
    ({"llmBudget": {"perTenantPerMonthUsdOverrides": {'acme"}': 5}}},
     'llmBudget.perTenantPerMonthUsdOverrides.acme"}: expected a name matching'),
    ({"llmBudget": {"perTenantPerMonthUsdOverride": {"acme": 5}}},
     'llmBudget.perTenantPerMonthUsdOverride: unknown key (did you mean '
     '"perTenantPerMonthUsdOverrides"?)'),
], ids=lambda value: json.dumps(value)[:60] if isinstance(value, dict) else None)
def test_a_bad_customisation_names_the_key_and_what_is_expected(overrides, expected):
    found = faults(overrides)
    assert any(expected in fault for fault in found), found


def test_every_fault_is_reported_at_once():
    found = faults({"thresholds": {"cpuUsageRatio": "high", "diskUsageRatio": 2},
                    "disabledAlerts": ["Nope"], "siteAlerts": {"ApiDown": {"expr": "up"}}})
    assert [f.split(":")[0] for f in found] == [
        "thresholds.cpuUsageRatio", "thresholds.diskUsageRatio", "siteAlerts.ApiDown.severity",
        "siteAlerts.ApiDown.summary", "siteAlerts.ApiDown.runbookUrl", "disabledAlerts[0]"]


def test_a_site_alert_that_does_not_parse_is_named_by_promtool():
    found = faults({"siteAlerts": {"ApiDown": {**SITE_ALERT, "expr": "rate(up[5m] > 1"}}})
    assert len(found) == 1, found
    assert found[0].startswith("siteAlerts.ApiDown.expr: promtool: could not parse expression")
    assert found[0].endswith("unclosed left parenthesis"), found


def test_a_valid_customisation_passes():
    bundle.validate({"thresholds": {"cpuUsageRatio": 0.9, "staleIntervals": 5},
                     "forDurations": {"RedisDown": "2m"}, "serviceSelector": 'job=~"api|worker"',
                     "slos": {"agent-success": None}, "disabledAlerts": ["Watchdog"],
                     "siteAlerts": {"ApiDown": {**SITE_ALERT, "channels": ["pager"],
                                                "labels": {"team": "api"}, "for": "5m"},
                                    "ApiSlow": {"metric": "x", "operator": ">", "threshold": 1,
                                                "severity": "info", "summary": "s",
                                                "runbookUrl": "https://x.example.com",
                                                "enabled": False}}},
                    "site.yml")


@pytest.mark.parametrize("text, expected", [
    ("thresholds: [0.9\n", "site.yml: line 2, column 1: not valid YAML"),
    ("- thresholds\n", "site.yml: expected a mapping at the top level, got list"),
    ("thresholds: {cpuUsageRatio: 90}\n", "site.yml: thresholds.cpuUsageRatio: expected a ratio"),
])
def test_the_command_exits_2_with_one_line_per_fault(tmp_path, text, expected, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("site.yml").write_text(text)
    done = subprocess.run([sys.executable, "-m", "vigil_exporter", "bundle", "build",
                           "--override", "site.yml", "--site", "out"], capture_output=True,
                          text=True, env={**os.environ, "VIGIL_CHECKOUT": str(ROOT)}, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(expected), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not Path("out").exists()


@pytest.mark.parametrize("flag, text, expected", [
    ("--override", "thresholds:\n  dbTransactionSeconds: .inf\n",
     "site.yml: thresholds.dbTransactionSeconds: expected a finite number, got inf"),
    ("--override", "slos:\n  1: {}\n  a: {}\n",
     "site.yml: slos.1: expected a name (text) as the key, got the number 1 (quote it)"),
    ("--override", "slos:\n  2024-01-01: {}\n",
     "site.yml: slos.2024-01-01: expected a name (text) as the key, got the date 2024-01-01"),
    ("--override", "siteAlerts:\n  A:\n    threshold: .nan\n",
     "site.yml: siteAlerts.A.threshold: expected a finite number, got nan"),
    ("--slos", "slos:\n  x:\n    objective: .inf\n",
     "site.yml: slos.x.objective: expected a finite number, got inf"),
    ("--slos", "slos:\n  x:\n    sli: {events: {total: 2024-01-01}}\n",
     "site.yml: slos.x.sli.events.total: expected text, a number, true or false, a list or a "
     "mapping, got the date 2024-01-01 (quote it)"),
], ids=["inf", "int-key", "date-key", "nan", "slo-inf", "slo-date"])
def test_yaml_that_is_not_plain_json_is_named_by_key(vigil_cli, monkeypatch, flag, text,
                                                     expected):
    """What YAML reads beyond JSON (integer and date keys, dates, .inf, .nan) made a traceback
    in json.dumps or Jsonnet, exit 1."""
    monkeypatch.setenv("VIGIL_CHECKOUT", str(ROOT))
    Path("site.yml").write_text(text)
    result = vigil_cli("bundle", "build", flag, "site.yml", "--output", "out")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(expected), result.stderr
    assert "Traceback" not in result.stderr and not Path("out").exists()


@pytest.mark.parametrize("where", ["--output", "--site"])
def test_the_customisation_is_validated_once(vigil_cli, monkeypatch, where):
    """`vigil bundle build` validated it, then render() did again (promtool run twice)."""
    monkeypatch.setenv("VIGIL_CHECKOUT", str(ROOT))
    Path("site.yml").write_text("thresholds: {cpuUsageRatio: 0.9}\nsiteAlerts:\n  ApiDown:\n"
                                "    expr: up == 0\n    severity: info\n    summary: s.\n"
                                "    runbookUrl: https://x.example.com\n")
    # the rules and dashboards themselves (a minute of Jsonnet) are not what is counted here
    import vigil_exporter.tools.dashboards.build as dashboards
    monkeypatch.setattr(bundle, "evaluate", lambda overrides=None: {
        "config": bundle.evaluate_config(overrides), "prometheusRules": {"groups": []},
        "prometheusAlerts": {"groups": []}, "prometheusSiteAlerts": {"groups": []}})
    monkeypatch.setattr(dashboards, "build", lambda root, overrides=None: {})
    checks, expressions = [], []
    check, check_expressions = customisation.check, customisation.check_expressions
    monkeypatch.setattr(customisation, "check", lambda *a: checks.append(a) or check(*a))
    monkeypatch.setattr(customisation, "check_expressions",
                        lambda *a: expressions.append(a) or check_expressions(*a))
    result = vigil_cli("bundle", "build", "--override", "site.yml", where, "out")
    assert result.returncode == 0, result.stderr
    assert (len(checks), len(expressions)) == (1, 1)


def test_a_promtool_that_does_not_answer_is_a_config_error(tmp_path, monkeypatch):
    """A promtool that hangs (a stand-in: no real one can be made to) ends in a ConfigError
    naming the site alerts, not a TimeoutExpired traceback."""
    fake = tmp_path / "bin" / "promtool"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(customisation, "PROMTOOL_TIMEOUT", 0.2)
    with pytest.raises(ConfigError) as caught:
        customisation.check_expressions("groups: []\n", "site.yml", {})
    assert str(caught.value) == ("site.yml: siteAlerts: promtool check rules did not answer "
                                 "within 0.2 s; nothing was built")


def test_a_jsonnet_customisation_reads_like_yaml(tmp_path):
    good = tmp_path / "site.jsonnet"
    good.write_text("local ratio = 0.45 * 2; { thresholds: { cpuUsageRatio: ratio } }")
    assert customisation.read(good) == {"thresholds": {"cpuUsageRatio": 0.9}}
    bad = tmp_path / "bad.jsonnet"
    bad.write_text("{ thresholds: ")
    with pytest.raises(ConfigError, match=r"bad.jsonnet: not valid Jsonnet"):
        customisation.read(bad)


def test_dashboards_build_with_an_override_needs_an_output(tmp_path):
    done = subprocess.run([sys.executable, "-m", "vigil_exporter", "dashboards", "build",
                           "--override", str(EXAMPLE)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 2 and "--override needs --output" in done.stderr


# ---- the documented commands, and the site folder they build ----------------------------------

def console_commands(doc: Path) -> list[tuple[str, list[str]]]:
    """($ command, the output lines shown under it) of every ```console block."""
    commands = []
    for block in re.findall(r"```console\n(.*?)```", doc.read_text(), re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append((line[2:], []))
            elif line.strip() and commands:
                commands[-1][1].append(line.strip())
    return commands


def doc_files(doc: Path) -> dict[str, str]:
    """The ```yaml and ```jsonnet blocks that start with a file name comment (`# typo.yml`)."""
    return {m.group(1): m.group(2) for m in re.finditer(
        r"```(?:yaml|jsonnet)\n(?:#|//) ([\w.-]+\.(?:ya?ml|jsonnet))\n(.*?)```", doc.read_text(),
        re.S)}


def committed_files() -> dict[Path, bytes]:
    """The generated files a site build must not touch."""
    return {path: path.read_bytes() for folder in ("prometheus/generated", "grafana/dashboards",
                                                   "alertmanager")
            for path in sorted((ROOT / folder).rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def documented(tmp_path_factory) -> dict:
    """Every ```console command of DOCS run as written, once each, in a checkout of its own
    (the bundle's folders linked, the examples and the docs' files copied); {command:
    CompletedProcess}, the folder, the site folder and the committed files before."""
    work = tmp_path_factory.mktemp("site-docs")
    for folder in ("prometheus", "alertmanager", "grafana", "deploy"):
        (work / folder).symlink_to(ROOT / folder, target_is_directory=True)
    shutil.copytree(ROOT / "examples", work / "examples")
    env = {**{k: v for k, v in os.environ.items() if k != "VIGIL_CHECKOUT"},
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    runs: dict[str, subprocess.CompletedProcess] = {}
    committed = committed_files()
    for doc in DOCS:
        for name, text in doc_files(doc).items():
            (work / name).write_text(text)
        for command, _ in console_commands(doc):
            if command not in runs:
                runs[command] = subprocess.run(["bash", "-c", command], cwd=work, env=env,
                                               capture_output=True, text=True, timeout=300)
    return {"runs": runs, "work": work, "site": work / "site", "committed": committed}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_documented_commands_run_as_written(doc, documented):
    commands = console_commands(doc)
    assert commands, f"{doc} shows no command"
    for command, shown in commands:
        done = documented["runs"][command]
        output = [line.strip() for line in (done.stdout + done.stderr).splitlines()]
        if "exit status" not in command:
            assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
        missing = [line for line in shown if line not in output]
        assert not missing, f"{doc.name}: `{command}` did not print {missing}; it printed:\n" \
                            + "\n".join(output)


def test_the_site_folder_leaves_the_checkout_alone(documented):
    site = documented["site"]
    assert (site / "prometheus/generated/alerts.yml").read_text() != \
        (ROOT / "prometheus/generated/alerts.yml").read_text()
    assert committed_files() == documented["committed"], "the build changed committed files"
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/site/" in ignored and "/stack/" in ignored  # the docs' ./site and ./stack


def test_site_rules_disable_add_and_move_alerts(documented):
    rules = documented["site"] / "prometheus" / "generated"
    alerts = {r["alert"]: r for g in yaml.safe_load((rules / "alerts.yml").read_text())["groups"]
              for r in g["rules"]}
    assert "RedisCacheHitRatioLow" not in alerts and "RedisDown" in alerts
    assert set(alerts) == bundle.alert_names() - {"RedisCacheHitRatioLow"}
    assert alerts["SystemCpuUsageHigh"]["expr"].endswith("> 0.9")
    assert alerts["SystemCpuUsageHigh"]["for"] == "15m"
    site = yaml.safe_load((rules / "site_alerts.yml").read_text())["groups"]
    assert [g["name"] for g in site] == ["vigil-site"]
    assert [r["alert"] for r in site[0]["rules"]] == ["DemoItemReadsSlow", "DemoServiceGone"]
    committed = yaml.safe_load((ROOT / "prometheus/generated/site_alerts.yml").read_text())
    assert committed["groups"] == []


def test_site_alerts_pass_their_promtool_unit_tests(documented, tmp_path):
    """The site's rules pass tests/promtool/example_site_test.yml; the default rules fail it
    exactly where the site differs (the moved threshold and the disabled alert)."""
    def run(rules: Path) -> subprocess.CompletedProcess:
        directory = tmp_path / rules.parent.parent.name
        directory.mkdir()
        for path in rules.glob("*.yml"):
            shutil.copy(path, directory)
        shutil.copy(SITE_TEST, directory)
        return subprocess.run(["promtool", "test", "rules", SITE_TEST.name], cwd=directory,
                              capture_output=True, text=True, timeout=120)

    site = run(documented["site"] / "prometheus" / "generated")
    assert site.returncode == 0, site.stdout + site.stderr
    default = run(ROOT / "prometheus" / "generated")
    assert default.returncode != 0
    failed = set(re.findall(r"alertname: (\w+)", default.stdout + default.stderr))
    assert failed == {"SystemCpuUsageHigh", "RedisCacheHitRatioLow", "DemoServiceGone",
                      "DemoItemReadsSlow", "TenantLlmCostOverBudget"}, \
        default.stdout + default.stderr


def test_the_site_test_evaluates_every_group_of_the_site_in_order(documented):
    """Without group_eval_order promtool evaluates the groups at random: the LLM budget case
    reads a chain of recorded rollups."""
    order = yaml.safe_load(SITE_TEST.read_text())["group_eval_order"]
    rules = documented["site"] / "prometheus" / "generated"
    assert order == [g["name"] for name in ("recording_rules.yml", "alerts.yml", "site_alerts.yml")
                     for g in yaml.safe_load((rules / name).read_text())["groups"]]


def test_site_channels_route_only_their_alert(documented):
    config = documented["site"] / "alertmanager" / "alertmanager.yml"
    check = subprocess.run(["amtool", "check-config", str(config)], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr

    def routed(*labels: str) -> str:
        done = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={config}",
                               *labels], capture_output=True, text=True, timeout=60)
        return done.stdout.strip()

    assert routed("alertname=DemoItemReadsSlow", "severity=warning", "area=application") == \
        "vigil-log,slack-app"
    assert routed("alertname=DemoServiceGone", "severity=critical") == \
        "vigil-log,pager,slack-platform"
    # the bundle's routing is unchanged for everything else
    for case in yaml.safe_load((ROOT / "alertmanager/route_cases.yml").read_text()):
        labels = [f"{k}={v}" for k, v in case["labels"].items()]
        assert routed(*labels) == ",".join(case["receivers"]), case


def threshold_steps(panel: dict) -> list[float]:
    return [step["value"] for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            if step["value"] is not None]


def test_site_dashboards_draw_the_moved_thresholds(documented):
    def cpu_lines(path: Path) -> set[tuple]:
        document = json.loads(path.read_text())
        return {tuple(threshold_steps(p)) for p in lint.panels(document)
                if p["title"] == "CPU usage"}

    site = documented["site"] / "grafana" / "dashboards"
    assert cpu_lines(site / "system.json") == {(0.9,)}
    assert cpu_lines(ROOT / "grafana/dashboards/system.json") == {(0.8,)}
    assert sorted(p.name for p in site.glob("*.json")) == sorted(
        p.name for p in (ROOT / "grafana/dashboards").glob("*.json"))
    # the runbook links follow runbookUrlPattern; nothing else changes where no threshold moved
    committed = (ROOT / "grafana/dashboards/database.json").read_text()
    assert (site / "database.json").read_text() == committed.replace(
        "https://github.com/vigil-monitoring/vigil/blob/main/docs/runbooks.md",
        "https://wiki.example.com/vigil-runbooks")
    assert "https://wiki.example.com/vigil-runbooks#databasedown" in \
        (site / "database.json").read_text()
    # a tenant's own LLM budget moves its line on the tenant dashboard: the share's query is
    # the alert's, over acme's 2000 USD and everyone else's 100
    [share] = [p for p in lint.panels(json.loads((site / "tenants.json").read_text()))
               if p["title"] == "Projected share of the budget"]
    [target] = share["targets"]
    assert target["expr"] == (
        'sum by (tenant) (job_tenant:llm_cost_usd:projected_month{tenant="acme", tenant=~"$tenant"})'
        ' / 2000\nor\nsum by (tenant) (job_tenant:llm_cost_usd:projected_month{tenant!~"acme", '
        'tenant=~"$tenant"}) / 100')
    assert threshold_steps(share) == [0.8, 1]


def test_the_readme_jsonnet_command_line_runs_as_written(tmp_path):
    """prometheus/README.md's jsonnet command, verbatim, from a checkout: the command exists,
    `-J .` finds the bundle, the output folder is made. The example file it builds is evaluated
    by tests/test_prometheus_bundle.py::test_documented_overrides_build (the jsonnet command,
    C++ 0.18 in Debian 12, takes some 15 s of CPU for the whole mixin), so here a file that
    imports the bundle the same way and writes two files stands in for it."""
    command = re.search(r"^(mkdir -p out && jsonnet .*?\.jsonnet)", (ROOT / "prometheus/README.md")
                        .read_text(), re.M).group(1)
    (tmp_path / "prometheus").symlink_to(ROOT / "prometheus", target_is_directory=True)
    (tmp_path / "my-vigil.jsonnet").write_text(
        "local vigil = (import 'prometheus/config.libsonnet');\n"
        "{ 'version.txt': vigil._config.bundleVersion,\n"
        "  'site_alerts.yml': std.manifestYamlDoc({ groups: [] }) }\n")
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "version.txt").read_text().strip() == bundle.evaluate_config()[
        "bundleVersion"]
    assert yaml.safe_load((tmp_path / "out" / "site_alerts.yml").read_text()) == {"groups": []}


@pytest.mark.parametrize("module, argv, extra", [
    ("matplotlib", ["dashboards", "render", "--prometheus", "{url}", "--out", "png"], "render"),
    ("_jsonnet", ["bundle", "build", "--check"], "bundle"),
    ("_jsonnet", ["dashboards", "build", "--check"], "bundle"),
])
def test_a_missing_extra_is_one_line_before_any_work(module, argv, extra, tmp_path):
    import socket

    with socket.socket() as prometheus:   # a Prometheus that would see any query
        prometheus.bind(("127.0.0.1", 0))
        prometheus.listen()
        prometheus.setblocking(False)
        url = f"http://127.0.0.1:{prometheus.getsockname()[1]}"
        argv = [arg.format(url=url) for arg in argv]
        code = (f"import sys; sys.modules[{module!r}] = None\n"
                f"from vigil_exporter.cli import main; sys.exit(main({argv!r}))")
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                              text=True, env={**os.environ, "VIGIL_CHECKOUT": str(ROOT)},
                              timeout=60)
        with pytest.raises(BlockingIOError):
            prometheus.accept()
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"needs the `{extra}` extra" in done.stderr and f"[{extra}]" in done.stderr
    assert not (tmp_path / "png").exists()


def test_the_documented_tenant_budgets_are_a_valid_customisation():
    """docs/tenant-usage.md: a tenant's own LLM budget, in the customisation file."""
    text = (ROOT / "docs" / "tenant-usage.md").read_text()
    example = yaml.safe_load(re.search(r"```yaml\n(llmBudget:.*?)```", text, re.S).group(1))
    assert example["llmBudget"]["perTenantPerMonthUsdOverrides"] == {"acme": 500}
    bundle.validate(example, "tenant-usage.md")


def test_the_defaults_are_a_valid_customisation():
    """Every setting of _config, given its own default, passes: the derived schema fits every
    knob the bundle has (a new one included)."""
    defaults = bundle.evaluate_config()
    bundle.validate({k: v for k, v in defaults.items() if k not in customisation.READ_ONLY},
                    "config.libsonnet")
