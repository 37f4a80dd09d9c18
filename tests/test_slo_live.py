"""Service level objectives end to end, with real processes only.

1. A fast burn pages: the demo service with traffic, errors injected into its API
   (PUT /admin/faults), real Prometheus running the bundle's SLO rules, real Alertmanager with
   the repository's routing: SloFastBurn of http-availability reaches the pager receiver (a
   local webhook sink), and its resolved notification arrives once the errors stop. A 30-day
   window's 1h and 5m cannot be waited for in a test, so the rules are built with the documented
   override mechanism: the fast pair's windows shortened to 1m and 10s, with the budget share
   that keeps its factor at 14.4 (the promtool tests check the real windows' math).
   The rules are built as a user builds them, with `vigil bundle build --slos FILE`: the file
   adds an SLO, which gets its CLI line and its dashboard row from the same Prometheus.
2. `vigil slo status` against the shared live stack: a line per SLO of the demo, JSON too.
"""
from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from tests.sinks import WebhookSink
from tests.test_alert_pipeline import AM_TIMINGS, fast_alertmanager
from vigil_exporter.cli import main
from vigil_exporter.tools import bundle
from vigil_exporter.tools.stack import Stack
from vigil_exporter.tools.stack.process import free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parent.parent

SLO = "http-availability"
MONTH = 30 * 86400
FAST = {"long": "1m", "short": "10s", "factor": 14.4}
ERROR_RATIO = 0.8   # of the /api requests, while injected: a burn of about 40 against 98 %
FILE_SLO = "item-reads"
SLO_FILE = f"""
slos:
  {FILE_SLO}:
    description: item reads answered without a server error
    selector: 'job="vigil-demo"'
    sli: {{kind: http-availability, matchers: 'route="/api/items/{{item_id}}"'}}
    objective: 99
"""


def set_injected_errors(stack: Stack, ratio: float) -> None:
    request = urllib.request.Request(stack.demo.url + "/admin/faults", method="PUT",
                                     data=json.dumps({"error_ratio": ratio}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response) == {"error_ratio": ratio}


def pager_notifications(sink: WebhookSink, status: str) -> list[dict]:
    return [r["json"] for r in sink.received("/pager") if r["json"]
            and r["json"]["status"] == status
            and any(a["labels"]["alertname"] == "SloFastBurn" and a["labels"].get("slo") == SLO
                    for a in r["json"]["alerts"])]


@pytest.fixture(scope="module")
def fast_burn(tmp_path_factory):
    """Inject errors until the pager has SloFastBurn, stop them until it has the resolved one;
    hand over what was seen."""
    rules = tmp_path_factory.mktemp("rules")
    share = FAST["factor"] * 60 / MONTH   # factor = share × window / long window
    override, slo_file = rules / "override.yml", rules / "slos.yml"
    # SloFastBurn on the short pair alone, so that it resolves seconds after the errors stop;
    # the real fast pairs ride along with the slow ones (SloSlowBurn, not the pager), so that
    # every window the dashboard shows is recorded
    pairs = bundle.evaluate_config()["sloBurnRateAlerts"]
    override.write_text(json.dumps({"forDurations": {"SloFastBurn": "2s"}, "sloBurnRateAlerts": {
        "fast": [{"long": FAST["long"], "short": FAST["short"], "budgetShare": share}],
        "slow": pairs["fast"] + pairs["slow"]}}))
    slo_file.write_text(SLO_FILE)
    assert main(["bundle", "build", "--override", str(override), "--slos", str(slo_file),
                 "--output", str(rules)]) == 0
    sink = WebhookSink().start()
    seen: dict = {}
    try:
        stack = Stack(free_ports=True, demo=True, traffic=20, scrape_interval="1s",
                      evaluation_interval="1s", collector_interval="1s", rules_dir=rules,
                      alert_webhook={"*": f"{sink.url}/other", "pager": f"{sink.url}/pager"},
                      adjust={"alertmanager": fast_alertmanager})
        missing = stack.missing_binaries()
        assert not missing, "\n".join(missing) + "\nrun the test command from README.md"
        with stack:
            stack.wait_for_query(f'job_slo:sli_events:rate10s{{slo="{SLO}"}} > 0', timeout=60)
            seen["quiet_before"] = stack.query(f'ALERTS{{alertname="SloFastBurn", slo="{SLO}"}}')
            set_injected_errors(stack, ERROR_RATIO)
            seen["injected"] = time.time()
            seen["firing"] = wait_for(lambda: pager_notifications(sink, "firing"), 90,
                                        what="SloFastBurn at the pager")[0]
            seen["paged"] = time.time()
            seen["rule"] = next(r for g in bundle.load_groups(rules) for r in g["rules"]
                                if r.get("alert") == "SloFastBurn" and r["labels"]["slo"] == SLO)
            seen["status"] = slo_status(stack.urls["prometheus"], "json")
            seen["file_slo_row"] = dashboard_row(stack, FILE_SLO)
            set_injected_errors(stack, 0)
            seen["stopped"] = time.time()
            seen["resolved"] = wait_for(lambda: pager_notifications(sink, "resolved"), 90,
                                          what="the resolved SloFastBurn at the pager")[0]
            seen["cleared"] = time.time()
    finally:
        sink.stop()
    return seen


def dashboard_row(stack: Stack, slo: str) -> dict[str, int]:
    """Panel title -> series its queries return, with the dashboard's `slo` variable set to
    `slo` (the repeated row of that SLO)."""
    from vigil_exporter.tools.dashboards import build, lint

    dashboard = build.load_dashboards(ROOT)["slo"]
    return {panel["title"]: sum(len(stack.query(lint.expand(target["expr"], {"slo": slo})))
                                for target in panel["targets"])
            for panel in lint.panels(dashboard)}


def slo_status(url: str, fmt: str = "table") -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["slo", "status", url, "--format", fmt])
    return code, out.getvalue(), err.getvalue()


# --- 1. a fast burn pages and resolves -------------------------------------------------------

def test_nothing_pages_before_the_errors(fast_burn):
    assert fast_burn["quiet_before"] == []


def test_the_pager_gets_sloFastBurn_with_its_labels_and_links(fast_burn):
    [alert] = [a for a in fast_burn["firing"]["alerts"] if a["labels"]["alertname"] == "SloFastBurn"]
    labels, annotations = alert["labels"], alert["annotations"]
    assert {k: labels[k] for k in ("slo", "job", "severity", "area")} == {
        "slo": SLO, "job": "vigil-demo", "severity": "critical", "area": "slo"}
    assert annotations["summary"] == fast_burn["rule"]["annotations"]["summary"]
    assert annotations["runbook_url"].endswith("/docs/runbooks.md#slofastburn")
    assert annotations["dashboard_url"].endswith(f"/d/vigil-slo?var-slo={SLO}")
    description = annotations["description"]
    assert f"SLO {SLO} (98% of HTTP requests answered without a server error (5xx) over 30d)" \
        in description
    burn = float(re.search(r"\) (\d+\.\d) times as fast", description).group(1))
    assert FAST["factor"] < burn <= 50, description   # at most all errors: 1 / 2 %
    assert "of the budget is left" in description and "unknown share" not in description


def test_the_page_arrives_when_the_short_windows_say(fast_burn):
    # the 1m window reaches 28.8 % errors after about 22 s at 80 %; then `for`, group_wait
    took = fast_burn["paged"] - fast_burn["injected"]
    assert took < 60, f"paged {took:.1f}s after the errors started"


def test_the_page_resolves_when_the_errors_stop(fast_burn):
    [alert] = [a for a in fast_burn["resolved"]["alerts"] if a["labels"]["alertname"] == "SloFastBurn"]
    assert alert["status"] == "resolved" and alert["labels"]["slo"] == SLO
    # the 10s window clears within seconds; then an evaluation and group_interval
    took = fast_burn["cleared"] - fast_burn["stopped"]
    assert took < 10 + 2 + float(AM_TIMINGS["group_interval"].rstrip("s")) + 15, took


def test_slo_status_shows_the_alert_while_it_fires(fast_burn):
    code, out, err = fast_burn["status"]
    assert code == 0, err
    rows = {(row["slo"], row["job"]): row for row in json.loads(out)}
    row = rows[(SLO, "vigil-demo")]
    assert {"alertname": "SloFastBurn", "state": "firing", "severity": "critical"} in row["alerts"]
    assert row["burn_rates"]["10s"] > FAST["factor"] and row["burn_rates"]["1m"] > FAST["factor"]


def test_an_slo_from_a_yaml_file_gets_its_cli_line_and_dashboard_row(fast_burn):
    code, out, _ = fast_burn["status"]
    rows = {(row["slo"], row["job"]): row for row in json.loads(out)}
    row = rows[(FILE_SLO, "vigil-demo")]
    assert row["objective"] == 0.99 and row["window"] == "30d"
    assert set(row["burn_rates"]) >= {"10s", "1m", "2h", "6h", "1d", "3d"}
    empty = [title for title, series in fast_burn["file_slo_row"].items() if not series]
    assert not empty, f"panels without data for {FILE_SLO}: {empty}"


# --- 2. vigil slo status against the shared live stack ----------------------------------------

def test_slo_status_prints_a_line_per_slo(live_stack):
    url = live_stack.urls["prometheus"]
    live_stack.wait_for_query("job_slo:error_budget_remaining:ratio", timeout=60)
    code, out, err = slo_status(url)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["SLO", "JOB", "OBJECTIVE", "SLI"]
    assert "BURN 5m" in lines[0] and "BURN 3d" in lines[0] and lines[0].rstrip().endswith("ALERT")
    names = sorted(line.split()[0] for line in lines[1:])
    assert names == ["agent-success", "http-availability", "http-latency", "llm-success"]
    http = next(line for line in lines if line.startswith("http-availability "))
    assert " vigil-demo " in http and "98% / 30d" in http

    code, out, _ = slo_status(url, "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 4
    for row in rows:
        assert row["objective"] in (0.98, 0.99, 0.95) and row["window"] == "30d"
        assert 0 <= row["sli"] <= 1 and row["error_budget_remaining"] <= 1
        assert set(row["burn_rates"]) == {"5m", "30m", "1h", "2h", "6h", "1d", "3d"}


def test_slo_status_of_something_else_than_prometheus_says_so(live_stack):
    code, out, err = slo_status(live_stack.exporter.url)   # the exporter: no query API
    assert (code, out) == (1, "") and len(err.splitlines()) == 1
    assert "HTTP 404" in err


def test_slo_status_without_slo_series_says_so(tmp_path):
    """A Prometheus without the bundle's rules: one line, exit code 1."""
    from vigil_exporter.tools.stack.components import Prometheus

    prometheus = Prometheus("bare", tmp_path, free_port(),
                            config_text=lambda: "global: {scrape_interval: 1s}\n")
    prometheus.start()
    try:
        code, out, err = slo_status(prometheus.url)
    finally:
        prometheus.stop()
    assert (code, out) == (1, "")
    assert err == (f"vigil slo status: {prometheus.url}: no SLO series (slo:objective:ratio): "
                   "does this Prometheus load the Vigil rules with SLOs?\n")
