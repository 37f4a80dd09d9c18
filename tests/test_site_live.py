"""A site folder on the local stack, with real processes only (docs/customising.md).

The site is built as a user builds it (`vigil bundle build --override FILE --site DIR`) from a
customisation file with one site alert, routed to the pager only, and one of the bundle's alerts
disabled. `Stack(site_dir=...)` (what `vigil stack up --site` runs) loads its rules and its
Alertmanager routing; the receivers are a local webhook sink, a path per receiver. The site
alert fires in Prometheus, reaches the pager and the alert log, and no other receiver; the
disabled alert is not among Prometheus's rules.
"""
from __future__ import annotations

import json

import pytest

from tests.sinks import WebhookSink
from tests.test_alert_pipeline import bundle_receivers, fast_alertmanager
from vigil_exporter.cli import main
from vigil_exporter.tools.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SITE_ALERT = "VigilExporterServing"
DISABLED = "SystemCpuUsageHigh"
SWITCHED_OFF = "VigilSiteAlertSwitchedOff"   # a site alert with enabled: false
CUSTOMISATION = {
    "disabledAlerts": [DISABLED],
    "siteAlerts": {SITE_ALERT: {
        # true from the first scrape: the exporter's own build_info
        "metric": 'vigil_build_info{job="vigil"}', "operator": ">", "threshold": 0,
        "severity": "critical", "area": "exporter",
        "summary": "The exporter serves (a site alert of the live test).",
        "runbookUrl": "https://wiki.example.com/runbooks/vigil-exporter-serving",
        "channels": ["pager"], "labels": {"team": "platform"},
    }, SWITCHED_OFF: {
        "expr": "vector(1)", "severity": "critical", "summary": "Switched off.",
        "runbookUrl": "https://wiki.example.com/runbooks/off", "channels": ["heartbeat"],
        "enabled": False,
    }},
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    work = tmp_path_factory.mktemp("site-live")
    (work / "site.json").write_text(json.dumps(CUSTOMISATION))
    assert main(["bundle", "build", "--override", str(work / "site.json"),
                 "--site", str(work / "site")]) == 0
    return work / "site"


@pytest.fixture(scope="module")
def observed(site):
    """Start the stack on the site folder; hand over what Prometheus and the receivers saw."""
    sink = WebhookSink().start()
    stack = Stack(free_ports=True, demo=False, scrape_interval="1s", evaluation_interval="1s",
                  collector_interval="1s", site_dir=site,
                  alert_webhook={name: f"{sink.url}/{name}" for name in bundle_receivers()},
                  adjust={"alertmanager": fast_alertmanager})
    try:
        stack.start()
        pager = sink.wait_for(lambda r: r["path"] == "/pager" and any(
            a["labels"]["alertname"] == SITE_ALERT for a in (r["json"] or {}).get("alerts", [])),
            timeout=60)
        logged = _wait_logged(stack)
        rules = stack.get_json("prometheus", "/api/v1/rules")["data"]["groups"]
        yield {"pager": pager, "logged": logged, "rules": rules, "stack": stack,
               "others": [r["path"] for r in sink.received() if r["path"] != "/pager" and any(
                   a["labels"]["alertname"] == SITE_ALERT
                   for a in (r["json"] or {}).get("alerts", []))]}
    finally:
        stack.stop()
        sink.stop()


def _wait_logged(stack: Stack) -> dict:
    from vigil_exporter.tools.stack.process import wait_for

    def logged():
        for line in stack.exporter.alert_log.read_text().splitlines():
            record = json.loads(line)
            if record["alertname"] == SITE_ALERT:
                return record
        return None

    return wait_for(logged, 30, what=f"{SITE_ALERT} in the alert log")


def test_the_site_alert_reaches_its_channel_and_the_alert_log(observed):
    alert = next(a for a in observed["pager"]["json"]["alerts"]
                 if a["labels"]["alertname"] == SITE_ALERT)
    assert alert["status"] == "firing"
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["team"] == "platform"
    assert alert["annotations"]["runbook_url"] == \
        CUSTOMISATION["siteAlerts"][SITE_ALERT]["runbookUrl"]
    assert observed["logged"]["severity"] == "critical"
    # a critical alert of the bundle would also reach email-oncall and Slack: this one's
    # channels replace that routing
    assert observed["others"] == []


def test_the_site_routes_only_enabled_site_alerts(site):
    text = (site / "alertmanager" / "alertmanager.yml").read_text()
    assert f'alertname="{SITE_ALERT}"' in text and SWITCHED_OFF not in text


def test_prometheus_runs_the_site_rules(observed):
    alerts = {rule["name"]: group["name"] for group in observed["rules"]
              for rule in group["rules"] if rule["type"] == "alerting"}
    assert alerts[SITE_ALERT] == "vigil-site"
    assert DISABLED not in alerts and SWITCHED_OFF not in alerts
    assert "RedisDown" in alerts
