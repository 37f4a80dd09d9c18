"""The Grafana dashboards, offline: a deterministic and fresh build, the dashboard-linter checks,
thresholds and names shared with the Prometheus bundle, provisioning, valid PromQL (checked by a
real Prometheus), the CLI and the PNG renderer (fed by a fake Prometheus)."""
from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import yaml

from vigil_exporter.prometheus_api import PrometheusAPI, PrometheusError
from vigil_exporter.tools.dashboards import build, lint, render
from vigil_exporter.tools.stack.components import Prometheus
from vigil_exporter.tools.stack.process import free_port

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = build.load_dashboards(ROOT)
EXPECTED_UIDS = {
    "overview": "vigil-overview", "system": "vigil-system", "database": "vigil-database",
    "redis": "vigil-redis", "business": "vigil-business", "application": "vigil-application",
    "exporter": "vigil-exporter", "slo": "vigil-slo", "tenants": "vigil-tenants",
}
RECORDING_RULE = re.compile(r"\b[a-zA-Z_]+:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+\b")


def bundle_config() -> dict:
    import _jsonnet

    return json.loads(_jsonnet.evaluate_snippet(
        "config", "(import 'prometheus/config.libsonnet')._config", jpathdir=[str(ROOT)]))


def all_exprs():
    for name, dashboard in DASHBOARDS.items():
        for panel, target in lint.targets(dashboard):
            yield name, panel["title"], target["refId"], target["expr"]


# ---- build -------------------------------------------------------------------------------------
# One Jsonnet evaluation of the nine dashboards takes seconds, and evaluating them together is no
# faster. The tests of this file compile each dashboard once per process: `compile_once` stands in
# for build.compile_source (what build.run and the CLI call) and hands out the bytes of an earlier
# compilation of the same source with the same overrides from a tree of the same sources
# (grafana/ without its output, prometheus/), so a copy of the checkout in tmp_path is served from
# it too, and an edited source is compiled anew. Staleness is about the committed JSON, which is
# read every time. test_building_twice_gives_identical_bytes compiles for real, against the
# cached build.

_REAL_COMPILE = build.compile_source
_COMPILED: dict[tuple[str, str, str], bytes] = {}


def _sources_digest(root: Path) -> str:
    digest = hashlib.sha256()
    output = (root / build.OUTPUT_DIR).resolve()
    for part in ("grafana", "prometheus"):
        for path in sorted((root / part).rglob("*")):
            if path.is_file() and output not in path.resolve().parents:
                digest.update(f"{path.relative_to(root)}\0{path.stat().st_size}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _compile_once(path: Path, root: Path, overrides: dict | None = None) -> bytes:
    key = (str(Path(path).resolve().relative_to(Path(root).resolve())), _sources_digest(root),
           json.dumps(overrides, sort_keys=True))
    if key not in _COMPILED:
        _COMPILED[key] = _REAL_COMPILE(path, root, overrides)  # a BuildError is not kept
    return _COMPILED[key]


@pytest.fixture(autouse=True)
def compile_once(monkeypatch):
    monkeypatch.setattr(build, "compile_source", _compile_once)


def test_every_source_has_its_dashboard():
    assert sorted(p.stem for p in build.sources(ROOT)) == sorted(DASHBOARDS) == sorted(EXPECTED_UIDS)


def test_building_twice_gives_identical_bytes(monkeypatch):
    first = build.build(ROOT)  # compiled once in this process (compile_once)
    monkeypatch.setattr(build, "compile_source", _REAL_COMPILE)
    second = build.build(ROOT)  # compiled again
    assert first.keys() == second.keys()
    for path in first:
        assert first[path] == second[path], path
        assert first[path].endswith(b"}\n")


def test_committed_json_equals_a_fresh_build():
    result = build.run(ROOT, check=True)
    assert not result.stale, f"stale: {result.stale}: run `vigil dashboards build`"
    assert not result.orphans, f"JSON without a source: {result.orphans}"


def test_build_check_cli_fails_on_a_stale_file(tmp_path, capsys):
    from vigil_exporter.cli import main

    for part in ("grafana", "prometheus"):
        shutil.copytree(ROOT / part, tmp_path / part)
    assert main(["dashboards", "build", "--check", "--root", str(tmp_path)]) == 0
    stale = tmp_path / "grafana/dashboards/redis.json"
    stale.write_text(stale.read_text().replace("Vigil / Redis", "Redis (edited by hand)"))
    assert main(["dashboards", "build", "--check", "--root", str(tmp_path)]) == 1
    assert "redis.json is stale" in capsys.readouterr().err
    assert main(["dashboards", "build", "--root", str(tmp_path)]) == 0
    assert stale.read_bytes() == (ROOT / "grafana/dashboards/redis.json").read_bytes()


def test_build_reports_a_jsonnet_error(tmp_path, capsys):
    from vigil_exporter.cli import main

    for part in ("grafana", "prometheus"):
        shutil.copytree(ROOT / part, tmp_path / part)
    (tmp_path / "grafana/src/broken.jsonnet").write_text("local v = import 'lib/vigil.libsonnet'; v.nope")
    assert main(["dashboards", "build", "--root", str(tmp_path)]) == 2
    assert "broken.jsonnet" in capsys.readouterr().err


# ---- dashboard-linter checks ---------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_passes_the_linter_checks(name):
    assert lint.lint(DASHBOARDS[name]) == []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_identity_and_variables(name):
    dashboard = DASHBOARDS[name]
    assert dashboard["uid"] == EXPECTED_UIDS[name]
    assert dashboard["title"].startswith("Vigil / ")
    assert "vigil" in dashboard["tags"]
    assert dashboard["editable"] is False
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names[:3] == ["datasource", "job", "instance"]
    for var in dashboard["templating"]["list"][1:]:
        assert var["refresh"] == 2, f"{var['name']}: refresh on time range change"
    links = {link["title"] for link in dashboard["links"]}
    assert {"Vigil dashboards", "Runbooks"} <= links


def test_uids_are_the_bundles():
    assert bundle_config()["dashboardUids"] == EXPECTED_UIDS
    assert len({d["title"] for d in DASHBOARDS.values()}) == len(DASHBOARDS)


@pytest.mark.parametrize("expr, problem", [
    ("sum(rate(http_requests_total[5m]))", "instead of [$__rate_interval]"),
    ("irate(x_total{a=\"b\"}[1m])", "instead of [$__rate_interval]"),
    ("http_requests_total", "outside rate()"),
    ("sum by (job) (llm_cost_usd_total{job=~\"$job\"})", "outside rate()"),
    ("delta(x_total[$__rate_interval])", "outside rate()"),
])
def test_the_linter_catches(expr, problem):
    assert any(problem in p for p in lint.check_expr(expr)), lint.check_expr(expr)


@pytest.mark.parametrize("expr", [
    "sum by (le) (rate(x_bucket{job=~\"$job\"}[$__rate_interval]))",
    "sum(increase(auth_logins_total{outcome=\"failure\"}[5m]))",
    "predict_linear(free_bytes[6h], 3600) and on (job, instance) up",
    "sum_over_time((job:x:rate5m * 60)[1d:1m]) + time() % 86400",
    "sum without (direction) (rate(vigil_tenant_messages_total[$__rate_interval])) offset 5m",
])
def test_the_linter_accepts(expr):
    assert lint.check_expr(expr) == []


def test_only_instant_queries_may_rate_over_the_dashboard_range():
    expr = "topk(10, rate(x_seconds_total[$__range]))"
    assert lint.check_expr(expr, instant=True) == []
    assert any("instead of [$__rate_interval]" in p for p in lint.check_expr(expr))


def test_the_linter_catches_dashboard_problems():
    dashboard = json.loads(json.dumps(DASHBOARDS["redis"]))
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    panels[0]["description"] = ""
    panels[1]["fieldConfig"]["defaults"]["unit"] = "furlongs"
    panels[2]["targets"][0]["datasource"] = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    panels[3]["gridPos"] = dict(panels[4]["gridPos"])
    del dashboard["templating"]["list"][2]  # instance
    dashboard["templating"]["list"][1]["multi"] = False
    problems = "\n".join(lint.lint(dashboard))
    for expected in ("has no description", "unknown unit: 'furlongs'", "${DS_",
                     "does not use the $datasource", "missing the `instance` variable",
                     "`job` should be multi-select"):
        assert expected in problems
    del panels[3]["gridPos"]["x"]
    dashboard = json.loads(json.dumps(DASHBOARDS["redis"]))
    movable = [p for p in dashboard["panels"] if p["type"] != "row"]
    movable[3]["gridPos"] = dict(movable[4]["gridPos"])
    assert any("overlap" in p for p in lint.lint(dashboard))


def _first_target(dashboard: dict, needle: str) -> tuple[dict, dict]:
    return next((p, t) for p, t in lint.targets(dashboard) if needle in t["expr"])


@pytest.mark.parametrize("label", ["job", "instance"])
def test_target_rule_fails_a_dashboard_with_a_selector_missing_the_variable(label):
    """dashboard-linter's target-job and target-instance rules, one failing dashboard each."""
    dashboard = json.loads(json.dumps(DASHBOARDS["redis"]))
    matcher = f'{label}=~"${label}"'
    panel_, target = _first_target(dashboard, matcher)
    target["expr"] = re.sub(r",?\s*" + re.escape(matcher) + r"\s*,?\s*", "", target["expr"], count=1)
    problems = lint.lint(dashboard)
    assert any(f"panel {panel_['title']!r}" in p and f'has no {matcher} matcher' in p
               for p in problems), problems
    assert all(matcher in p for p in problems), problems


@pytest.mark.parametrize("expr, unfiltered, problem", [
    ('sum(rate(x_total{job=~"$job"}[$__rate_interval]))', set(), 'metric x_total has no instance=~"$instance"'),
    ('x{instance=~"$instance"} / y{job=~"$job", instance=~"$instance"}', set(), 'metric x has no job=~"$job"'),
    ('x{job="vigil", instance=~"$instance"}', set(), 'no job=~"$job"'),
    ('x{job=~"$job", instance=~"$instance"} and on (job) up', set(), 'metric up has no job'),
    # a raw metric cannot be declared unfiltered; a recording rule must be
    ('x{job=~"$job"}', {"instance"}, 'metric x has no instance'),
    ('job:x:rate5m{job=~"$job"}', set(), 'recording rule job:x:rate5m has no instance=~"$instance"'),
    ('job:x:rate5m{job=~"$job"} / on () slo:objective:ratio', {"instance"}, "slo:objective:ratio has no job"),
])
def test_the_filter_rules_catch(expr, unfiltered, problem):
    assert any(problem in p for p in lint.check_filters(expr, unfiltered)), lint.check_filters(expr, unfiltered)


@pytest.mark.parametrize("expr, unfiltered", [
    ('sum by (le) (rate(x_bucket{job=~"$job", instance=~"$instance"}[$__rate_interval]))', set()),
    ('job:x:rate5m{job=~"$job"}', {"instance"}),
    ('job:x:rate5m{job=~"$job"} / on (slo) group_left () slo:objective:ratio', {"instance", "job"}),
    ('count(ALERTS{alertstate="firing"})', {"job", "instance"}),
])
def test_the_filter_rules_accept(expr, unfiltered):
    assert lint.check_filters(expr, unfiltered) == []


@pytest.mark.parametrize("description, labels", [
    ("Rules summed per job: not filtered by instance.", {"instance"}),
    ("One per SLO: Not filtered by job or instance.", {"job", "instance"}),
    ("Filtered by job and instance.", set()),
])
def test_a_description_declares_the_labels_it_is_not_filtered_by(description, labels):
    assert lint.unfiltered_labels(description) == labels


def test_a_recording_rule_panel_must_say_it_is_not_filtered_by_instance():
    dashboard = json.loads(json.dumps(DASHBOARDS["application"]))
    panel_, _ = _first_target(dashboard, "job:http_requests:rate5m")
    panel_["description"] = panel_["description"].replace("not filtered by instance", "per job")
    problems = lint.lint(dashboard)
    assert any(f"panel {panel_['title']!r}" in p and "recording rule job:http_requests:rate5m has no"
               ' instance=~"$instance" matcher (or a description saying "not filtered by instance")' in p
               for p in problems), problems


def test_a_description_may_not_claim_a_filter_is_missing_when_it_is_not():
    dashboard = json.loads(json.dumps(DASHBOARDS["redis"]))
    panel_, _ = _first_target(dashboard, 'instance=~"$instance"')
    panel_["description"] += " Not filtered by instance."
    assert f"vigil-redis: panel {panel_['title']!r} says it is not filtered by instance, but every " \
        "selector is" in lint.lint(dashboard)


def test_raw_metric_panels_say_nothing_about_filters():
    """Only panels that read recording rules (or ALERTS) need the phrase: elsewhere it is noise."""
    for name, dashboard in DASHBOARDS.items():
        for p in lint.panels(dashboard):
            names = {s.metric for t in p["targets"] for s in lint.selectors(t["expr"])}
            if lint.unfiltered_labels(p["description"]):
                assert any(":" in n or n == "ALERTS" for n in names), (name, p["title"])


def test_layout_fills_the_grid_without_gaps_at_the_left():
    for name, dashboard in DASHBOARDS.items():
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, (name, panel["title"])
            if panel["type"] == "row":
                assert pos == {"x": 0, "y": pos["y"], "w": 24, "h": 1}


# ---- one source of truth with the Prometheus bundle ----------------------------------------------

def panel(name: str, title: str) -> dict:
    matches = [p for p in lint.panels(DASHBOARDS[name]) if p["title"] == title]
    assert matches, f"{name} has no panel {title!r}"
    return matches[0]


def threshold_values(p: dict) -> list[float]:
    steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return [s["value"] for s in steps if s["value"] is not None]


@pytest.mark.parametrize("dashboard, title, key", [
    ("system", "CPU usage", "cpuUsageRatio"),
    ("system", "Memory usage", "memoryUsageRatio"),
    ("system", "Disk usage by mountpoint", "diskUsageRatio"),
    ("database", "Pool use", "dbPoolUsageRatio"),
    ("database", "Server connections used", "dbConnectionsUsageRatio"),
    ("database", "Probe and connect latency", "dbProbeSeconds"),
    ("redis", "Keyspace hit ratio", "cacheHitRatio"),
    ("redis", "Memory used of maxmemory", "redisMemoryUsageRatio"),
    ("business", "Usage against limits", "tenantLimitUsageRatio"),
    ("application", "Agent error ratio", "agentErrorRatio"),
    ("application", "Agent execution p95", "agentLatencyP95Seconds"),
    ("application", "LLM errors per minute", "llmErrorsPerMinute"),
    ("application", "LLM latency p95", "llmLatencyP95Seconds"),
    ("application", "Cache hit ratio", "cacheHitRatio"),
    ("exporter", "Collector staleness", "staleIntervals"),
])
def test_panel_threshold_is_the_alert_threshold(dashboard, title, key):
    assert threshold_values(panel(dashboard, title)) == [bundle_config()["thresholds"][key]]


def test_llm_budget_lines_are_the_bundles():
    budget = bundle_config()["llmBudget"]
    assert threshold_values(panel("business", "LLM cost per hour")) == [budget["perHourUsd"]]
    assert threshold_values(panel("business", "LLM spend since 00:00 UTC")) == [budget["perDayUsd"]]


def test_the_tenant_budget_share_is_the_alerts_expression():
    """The line at 100 % is where TenantLlmCostOverBudget fires, for every tenant's budget."""
    share = panel("tenants", "Projected share of the budget")
    alerts = yaml.safe_load((ROOT / "prometheus/generated/alerts.yml").read_text())
    [rule] = [r for g in alerts["groups"] for r in g["rules"]
              if r["alert"] == "TenantLlmCostOverBudget"]
    [target] = share["targets"]
    assert target["expr"].replace('{tenant=~"$tenant"}', "") + " > 1" == rule["expr"]
    assert threshold_values(share)[-1] == 1


def test_a_threshold_changed_in_the_bundle_moves_the_panel_line():
    """The dashboards read prometheus/config.libsonnet: an override there is all it takes."""
    import _jsonnet

    config_path = (ROOT / "prometheus/config.libsonnet").resolve()

    def callback(directory, rel):
        # With a callback jsonnet leaves the search to us: the importing file's directory first,
        # then the library paths that the build passes.
        candidates = [Path(directory) / rel, ROOT / "grafana" / rel, ROOT / rel]
        path = next((c.resolve() for c in candidates if c.is_file()), None)
        if path is None:
            raise RuntimeError(f"not found: {rel}")
        content = path.read_text()
        if path == config_path:
            content = f"({content}) + {{ _config+:: {{ thresholds+: {{ cpuUsageRatio: 0.42 }} }} }}"
        return str(path), content.encode()

    text = _jsonnet.evaluate_file(str(ROOT / "grafana/src/system.jsonnet"),
                                  jpathdir=[str(ROOT / "grafana"), str(ROOT)],
                                  import_callback=callback)
    changed = [p for p in lint.panels(json.loads(text)) if p["title"] == "CPU usage"]
    assert {tuple(threshold_values(p)) for p in changed} == {(0.42,)}


def generated_rule_files() -> list[dict]:
    files = []
    for path in sorted((ROOT / "prometheus").rglob("*.y*ml")):
        document = yaml.safe_load(path.read_text())
        if isinstance(document, dict) and "groups" in document:
            files.append(document)
    return files


def rules() -> list[dict]:
    return [rule for doc in generated_rule_files() for group in doc["groups"]
            for rule in group.get("rules", [])]


def test_every_recording_rule_a_panel_uses_exists():
    records = {r["record"] for r in rules() if "record" in r}
    if not records:
        pytest.skip("prometheus/ has no generated rule files yet")
    used = {m.group() for _, _, _, expr in all_exprs() for m in RECORDING_RULE.finditer(expr)}
    assert used - records == set(), "panels use recording rules the bundle does not define"


def test_every_runbook_link_names_a_real_alert_and_section():
    alerts = {r["alert"]: r for r in rules() if "alert" in r}
    if not alerts:
        pytest.skip("prometheus/ has no generated alert rules yet")
    pattern = bundle_config()["runbookUrlPattern"]
    runbooks = ROOT / "docs/runbooks.md"
    anchors = set()
    if runbooks.exists():
        anchors = {re.sub(r"[^a-z0-9_-]", "", line[3:].strip().lower().replace(" ", "-"))
                   for line in runbooks.read_text().splitlines() if line.startswith("## ")}
    for name, dashboard in DASHBOARDS.items():
        for p in lint.panels(dashboard):
            for link in p.get("links", []):
                if not link["title"].startswith("Runbook: "):
                    continue
                alert = link["title"].removeprefix("Runbook: ")
                assert alert in alerts, f"{name}/{p['title']}: no alert {alert}"
                assert link["url"] == alerts[alert]["annotations"]["runbook_url"]
                assert link["url"] == pattern % alert.lower()
                if anchors:
                    assert alert.lower() in anchors, f"docs/runbooks.md has no section {alert}"


def test_dashboard_links_point_to_existing_uids():
    uids = set(EXPECTED_UIDS.values())
    for name, dashboard in DASHBOARDS.items():
        for p in lint.panels(dashboard):
            for link in p.get("links", []):
                match = re.match(r"/d/([\w-]+)", link["url"])
                if match:
                    assert match.group(1) in uids, (name, p["title"], link["url"])


# ---- provisioning --------------------------------------------------------------------------------

def test_datasource_provisioning():
    document = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = document["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "vigil-prometheus"
    assert source["isDefault"] is True
    interval = source["jsonData"]["timeInterval"]
    prometheus_yml = ROOT / "prometheus/prometheus.yml"
    if not prometheus_yml.exists():
        pytest.skip("prometheus/prometheus.yml does not exist yet")
    scrape = yaml.safe_load(prometheus_yml.read_text())["global"]["scrape_interval"]
    assert render.parse_duration(interval) == render.parse_duration(scrape), \
        "timeInterval must equal Prometheus' scrape interval"


def test_dashboard_provisioning_loads_the_folder():
    document = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/vigil.yml").read_text())
    (provider,) = document["providers"]
    assert provider["type"] == "file" and provider["folder"] == "Vigil"
    assert provider["options"]["path"].endswith("/vigil")
    assert provider["allowUiUpdates"] is False


# ---- every query is valid PromQL, as a real Prometheus parses it ---------------------------------

@pytest.fixture(scope="module")
def empty_prometheus(tmp_path_factory):
    """`prometheus` with no targets and no rules: enough to parse and evaluate queries."""
    server = Prometheus("prometheus", tmp_path_factory.mktemp("prometheus-parse"), free_port(),
                        config={"global": {}})
    server.start()
    yield server
    server.stop()


def promql_error(prometheus: Prometheus, query: str) -> str | None:
    """None when the query parses and evaluates, else Prometheus' error."""
    try:
        PrometheusAPI(prometheus.url).query(query)
        return None
    except PrometheusError as exc:
        return str(exc)


VALUES = {"__rate_interval": "1m", "__interval": "30s", "__range": "1h", "__range_s": "3600",
          "job": ".+", "instance": ".+"}


def test_every_panel_query_is_valid_promql(empty_prometheus):
    errors = []
    count = 0
    for name, title, ref, expr in all_exprs():
        expanded = lint.expand(expr, VALUES)
        assert "$" not in expanded, f"{name}/{title}/{ref}: unreplaced variable in {expanded}"
        count += 1
        error = promql_error(empty_prometheus, expanded)
        if error:
            errors.append(f"{name} / {title} / {ref}: {error}\n    {expanded}")
    assert count > 150
    assert not errors, "\n".join(errors)


def test_every_variable_query_is_valid(empty_prometheus):
    errors = []
    for name, dashboard in DASHBOARDS.items():
        for var in dashboard["templating"]["list"]:
            if var["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", var["definition"])
            assert match, f"{name}: {var['definition']}"
            assert var["query"]["query"] == var["definition"]
            error = promql_error(empty_prometheus, lint.expand(match.group(1), VALUES))
            if error:
                errors.append(f"{name} ${var['name']}: {error}")
    assert not errors, "\n".join(errors)


def test_a_bad_query_is_caught(empty_prometheus):
    assert "bad_data" in promql_error(empty_prometheus, "sum(rate(x[1m])")


# ---- the renderer, fed by a fake Prometheus -------------------------------------------------------

class FakePrometheus:
    """Answers every query with two wavy series (tables and instants: one point each)."""

    def __init__(self, empty: tuple[str, ...] = ()):
        self.empty = empty
        self.queries: list[str] = []

    def _series(self, expr, times):
        if any(word in expr for word in self.empty):
            return []
        return [{"metric": {"job": "vigil", "instance": f"host{i}:9477", "tenant": f"t{i}",
                            "resource": "agents", "database": "main", "redis": "cache"},
                 "values": [(t, 0.4 + 0.3 * math.sin(t / 300 + i)) for t in times]}
                for i in range(2)]

    def query_range(self, expr, start, end, step):
        self.queries.append(expr)
        return self._series(expr, [start + k * step for k in range(int((end - start) // step) + 1)])

    def query(self, expr, at):
        self.queries.append(expr)
        return self._series(expr, [at])


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_render_draws_a_png(name, tmp_path):
    fake = FakePrometheus(empty=("vigil_redis_key_length",))
    data = render.fetch(DASHBOARDS[name], fake, since=1800, end=1_700_000_000)
    assert all("$" not in q for q in fake.queries)
    assert any("[1m]" in q for q in fake.queries) or name in ("overview", "business", "slo", "tenants")
    path = tmp_path / f"{name}.png"
    render.render(DASHBOARDS[name], data, path, since=1800, end=1_700_000_000)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 50_000
    empty = [p.title for p in data if not p.has_data]
    assert empty == (["Queue lengths"] if name == "redis" else [])


def test_rate_interval_follows_grafana():
    values = render.variable_values(DASHBOARDS["system"], since=1800, step=15, scrape_interval=15)
    assert values["__rate_interval"] == "1m"       # 4 scrape intervals
    values = render.variable_values(DASHBOARDS["system"], since=86400, step=360, scrape_interval=15)
    assert values["__rate_interval"] == "6m15s"   # step + scrape interval
    assert values["job"] == values["instance"] == ".+"


@pytest.mark.parametrize("value, unit, text", [
    (0.953, "percentunit", "95.3%"), (1536, "bytes", "1.5 KiB"), (0.0042, "s", "4.2 ms"),
    (90, "s", "1.5 min"), (12.5, "currencyUSD", "$12.50"), (2500, "short", "2.5 K"),
    (3.2, "reqps", "3.2 req/s"), (None, "short", "-"), (float("nan"), "s", "NaN"),
])
def test_format_value(value, unit, text):
    assert render.format_value(value, unit) == text


def test_parse_duration():
    assert render.parse_duration("30m") == 1800
    assert render.parse_duration("1h30m") == 5400
    with pytest.raises(ValueError):
        render.parse_duration("half an hour")


def test_render_cli_reports_an_unreachable_prometheus(tmp_path, capsys):
    from vigil_exporter.cli import main

    port = free_port()
    code = main(["dashboards", "render", "--prometheus", f"http://127.0.0.1:{port}",
                 "--out", str(tmp_path), "--dashboard", "vigil-system", "--root", str(ROOT)])
    assert code == 2
    assert "cannot reach Prometheus" in capsys.readouterr().err


def test_anomaly_panels_use_the_alerts_band():
    k = bundle_config()["thresholds"]["anomalyStddevs"]
    for title, metric in (("Message volume and its normal band", "messages"),
                          ("API-call volume and its normal band", "api_calls")):
        exprs = [t["expr"] for t in panel("business", title)["targets"]]
        assert exprs[0].startswith(f"tenant:vigil_tenant_{metric}:rate1h{{")
        for expr in exprs[1:]:
            assert re.search(rf"tenant:vigil_tenant_{metric}:rate1h{{[^}}]*}} offset 1w", expr)
            assert f"tenant:vigil_tenant_{metric}:avg1w_change1w_rate1h" in expr
        assert f"+ {k} * tenant:vigil_tenant_{metric}:stddev1w_change1w_rate1h" in exprs[1]
        assert f"- {k} * tenant:vigil_tenant_{metric}:stddev1w_change1w_rate1h" in exprs[2]
    outside = panel("business", "Messages outside the normal band")
    assert f"- {k} * tenant:vigil_tenant_messages:stddev1w_change1w_rate1h" in outside["targets"][0]["expr"]
    assert threshold_values(outside) == [0]


def test_expand_replaces_every_variable_syntax():
    expr = 'rate(x{job=~"$job", a=~"${tenant}", b=~"[[redis]]", c=~"${db:regex}"}[$__rate_interval])'
    assert lint.expand(expr, {"__rate_interval": "1m", "job": "vigil"}) == \
        'rate(x{job=~"vigil", a=~".+", b=~".+", c=~".+"}[1m])'
    assert lint.variable_names(expr) == {"job", "tenant", "redis", "db", "__rate_interval"}


# Series that Prometheus itself makes, or prometheus-client's standard process_* families.
NOT_IN_METRICS_MD = re.compile(r"^(ALERTS|up|scrape_\w+|process_\w+)$")


def test_every_metric_a_panel_names_is_in_the_metrics_reference():
    reference = ROOT / "docs/metrics.md"
    if not reference.exists():
        pytest.skip("docs/metrics.md is not generated yet")
    documented = set(re.findall(r"^\| `(\w+)` \|", reference.read_text(), re.MULTILINE))
    used = set()
    for dashboard in DASHBOARDS.values():
        exprs = [t["expr"] for _, t in lint.targets(dashboard)]
        exprs += [re.sub(r"^label_values\((.+), \w+\)$", r"\1", v["definition"])
                  for v in dashboard["templating"]["list"] if v["type"] == "query"]
        for expr in exprs:
            for sel in lint.selectors(lint.expand(expr, VALUES)):
                if sel.metric and ":" not in sel.metric and not NOT_IN_METRICS_MD.match(sel.metric):
                    used.add(re.sub(r"_bucket$", "", sel.metric))
    assert used - documented == set(), "panels name metrics that docs/metrics.md does not list"


# ---- the SLO dashboard -------------------------------------------------------------------------

def test_slo_dashboard_repeats_a_row_per_slo_and_reads_only_slo_rules():
    """A row per SLO comes from the `slo` variable over the recorded objectives, so an SLO
    declared in a YAML file gets its row without rebuilding the dashboard."""
    dashboard = DASHBOARDS["slo"]
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "slo"]
    assert variable["definition"] == "label_values(slo:objective:ratio, slo)"
    repeated = [p for p in dashboard["panels"] if p.get("repeat")]
    assert [(p["type"], p["repeat"]) for p in repeated] == [("row", "slo")]
    for _, target in lint.targets(dashboard):
        names = set(RECORDING_RULE.findall(target["expr"]))
        assert names and all(n.startswith(("job_slo:", "slo:")) for n in names), target["expr"]
    titles = {p["title"] for p in lint.panels(dashboard)}
    assert {"SLI against the objective", "Error budget left", "Burn rate per alert window",
            "Budget gone in"} <= titles


def test_slo_burn_rate_lines_are_the_alert_factors():
    config = bundle_config()
    month = 30 * 86400
    fast, slow = config["sloBurnRateAlerts"]["fast"][0], config["sloBurnRateAlerts"]["slow"][0]
    factor = lambda pair: pair["budgetShare"] * month / {"1h": 3600, "1d": 86400}[pair["long"]]  # noqa: E731
    assert sorted(threshold_values(panel("slo", "Burn rate per alert window"))) == \
        pytest.approx(sorted([factor(slow), factor(fast)]))
    assert threshold_values(panel("slo", "Burn rate 1h"))[-1] == pytest.approx(14.4)
    windows = {t["legendFormat"].split()[0] for t in panel("slo", "Burn rate per alert window")["targets"]}
    assert windows == {"5m", "30m", "1h", "2h", "6h", "1d", "3d"}


def test_overview_links_to_the_slo_dashboard():
    links = [link["url"] for p in lint.panels(DASHBOARDS["overview"]) for link in p.get("links", [])]
    assert any(url.startswith("/d/vigil-slo?") for url in links)


# The histograms the instrumentation library attaches exemplars to (exemplars.py), by the
# application dashboard's latency panel that shows them.
EXEMPLAR_PANELS = {
    "http_request_duration_seconds": "Latency p95 by route",
    "agent_execution_duration_seconds": "Agent execution p95",
    "tool_execution_duration_seconds": "Tool duration p95",
    "llm_request_duration_seconds": "LLM latency p95",
    "llm_time_to_first_token_seconds": "LLM time to first token p95",
}


def test_latency_panels_show_exemplars():
    """Each latency panel of an exemplar-carrying histogram has a target that asks Grafana for
    exemplars and reads the raw buckets (recorded quantiles carry none), on the panel's own
    seconds axis."""
    for histogram, title in EXEMPLAR_PANELS.items():
        latency = panel("application", title)
        assert latency["fieldConfig"]["defaults"]["unit"] == "s", title
        with_exemplars = [t for t in latency["targets"] if t.get("exemplar") is True]
        assert len(with_exemplars) == 1, f"{title}: no target with exemplars"
        expr = with_exemplars[0]["expr"]
        assert f"rate({histogram}_bucket{{" in expr and ":" not in expr.split("{")[0], (title, expr)
