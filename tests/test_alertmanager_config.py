"""alertmanager/: the config is valid, routes every severity and area as documented, renders its
templates, keeps secrets out of the repository, and renders deploy-time URLs."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from vigil_exporter.alerting.cli import AREAS, SEVERITIES
from vigil_exporter.alerting.render import render_config
from vigil_exporter.tools.stack.process import find_binary

BUNDLE = Path(__file__).resolve().parent.parent / "alertmanager"
BUNDLE_CONFIG = BUNDLE / "alertmanager.yml"
ROUTE_CASES = yaml.safe_load((BUNDLE / "route_cases.yml").read_text())


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([find_binary("amtool"), *args], capture_output=True, text=True, timeout=30)


def test_amtool_check_config_passes():
    result = amtool("check-config", str(BUNDLE_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "7 receivers" in result.stdout


@pytest.mark.parametrize("case", ROUTE_CASES,
                         ids=[" ".join(f"{k}={v}" for k, v in c["labels"].items()
                                       if k != "instance") for c in ROUTE_CASES])
def test_route(case):
    labels = [f"{name}={value}" for name, value in case["labels"].items()]
    result = amtool("config", "routes", "test", f"--config.file={BUNDLE_CONFIG}",
                    "--verify.receivers=" + ",".join(case["receivers"]), *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ",".join(case["receivers"])


def test_route_cases_cover_every_severity_and_area():
    covered = {(c["labels"].get("severity"), c["labels"].get("area")) for c in ROUTE_CASES}
    missing = {(s, a) for s in SEVERITIES for a in AREAS} - covered
    assert not missing
    assert any(c["labels"]["alertname"] == "Watchdog" for c in ROUTE_CASES)


def test_every_receiver_is_reached_by_some_case():
    config = yaml.safe_load(BUNDLE_CONFIG.read_text())
    reached = {r for case in ROUTE_CASES for r in case["receivers"]}
    assert {r["name"] for r in config["receivers"]} == reached


def test_inhibition_never_mutes_a_page_and_stays_within_one_exporter():
    """Alertmanager sends no resolve for an alert inhibited while firing (alertmanager#2754):
    no rule may mute a critical alert, and every rule is scoped to the same job."""
    for rule in yaml.safe_load(BUNDLE_CONFIG.read_text())["inhibit_rules"]:
        targets = rule["target_matchers"]
        assert 'severity!="critical"' in targets or 'severity="warning"' in targets, rule
        assert "job" in rule["equal"], rule


def test_the_pager_repeats_twice_a_day():
    routes = yaml.safe_load(BUNDLE_CONFIG.read_text())["route"]["routes"]
    [pager] = [r for r in routes if r.get("receiver") == "pager"]
    assert pager["repeat_interval"] == "12h"


def test_no_secret_in_the_repository():
    text = BUNDLE_CONFIG.read_text()
    config = yaml.safe_load(text)
    for key in ("slack_api_url", "smtp_auth_password", "smtp_auth_secret", "pagerduty_url"):
        assert key not in config["global"], key
    assert config["global"]["slack_api_url_file"].startswith("/etc/alertmanager/secrets/")
    assert config["global"]["smtp_auth_password_file"].startswith("/etc/alertmanager/secrets/")
    for receiver in config["receivers"]:
        for slack in receiver.get("slack_configs", []):
            assert "api_url" not in slack
        for mail in receiver.get("email_configs", []):
            assert "auth_password" not in mail
        for hook in receiver.get("webhook_configs", []):
            assert re.match(r"https?://(vigil:9477/|[a-z]+\.invalid/)", hook["url"]), hook["url"]
    assert not re.search(r"hooks\.slack\.com/services/\w|xox[bp]-", text)


def test_render_config_fills_webhook_urls_from_environment(tmp_path):
    url_file = tmp_path / "heartbeat_url"
    url_file.write_text("https://hc.example.net/ping/abc\n")
    rendered, unrendered = render_config(BUNDLE_CONFIG.read_text(), {
        "VIGIL_AM_PAGER_URL": "https://pager.example.net/hook?key=s3cret",
        "VIGIL_AM_HEARTBEAT_URL_FILE": str(url_file)})
    assert unrendered == []
    urls = {r["name"]: [h["url"] for h in r.get("webhook_configs", [])]
            for r in yaml.safe_load(rendered)["receivers"]}
    assert urls["pager"] == ["https://pager.example.net/hook?key=s3cret"]
    assert urls["heartbeat"] == ["https://hc.example.net/ping/abc"]
    assert urls["vigil-log"] == ["http://vigil:9477/alerts/webhook"]
    # The rendered file is still a valid Alertmanager config (templates beside it).
    (tmp_path / "templates").symlink_to(BUNDLE / "templates")
    (tmp_path / "alertmanager.yml").write_text(rendered)
    result = amtool("check-config", str(tmp_path / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_config_reports_placeholders_left():
    _, unrendered = render_config(BUNDLE_CONFIG.read_text(), {})
    assert unrendered == ["heartbeat", "pager"]


# ---- templates ------------------------------------------------------------------------------

GROUP = {
    "receiver": "slack-data", "status": "firing", "externalURL": "http://alertmanager:9093",
    "groupLabels": {"alertname": "RedisDown"},
    "commonLabels": {"alertname": "RedisDown", "severity": "critical", "area": "redis"},
    "commonAnnotations": {"summary": "Redis is down."},
    "alerts": [
        {"status": "firing",
         "labels": {"alertname": "RedisDown", "severity": "critical", "area": "redis",
                    "instance": "vigil:9477", "redis": "cache"},
         "annotations": {"summary": "Redis is down.",
                         "description": "Redis cache seen from vigil:9477 does not answer.",
                         "runbook_url": "https://example.org/runbooks.md#redisdown",
                         "dashboard_url": "http://grafana:3000/d/vigil-redis"},
         "startsAt": "2024-05-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://prometheus:9090/graph", "fingerprint": "a1"},
        {"status": "resolved",
         "labels": {"alertname": "RedisDown", "severity": "critical", "area": "redis",
                    "instance": "vigil:9477", "redis": "queue"},
         "annotations": {"summary": "Redis is down.",
                         "description": "Redis queue seen from vigil:9477 does not answer.",
                         "runbook_url": "https://example.org/runbooks.md#redisdown",
                         "dashboard_url": "http://grafana:3000/d/vigil-redis"},
         "startsAt": "2024-05-01T10:00:00Z", "endsAt": "2024-05-01T10:07:00Z",
         "generatorURL": "", "fingerprint": "b2"},
    ],
}


@pytest.fixture(scope="module")
def group_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("templates") / "group.json"
    path.write_text(json.dumps(GROUP))
    return path


def render(group_file, name: str, kind: str = "text") -> str:
    result = amtool("template", "render", f"--template.glob={BUNDLE / 'templates' / '*.tmpl'}",
                    f"--template.data={group_file}", f"--template.type={kind}",
                    f'--template.text={{{{ template "{name}" . }}}}')
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("name,kind", [("vigil.slack.text", "text"), ("vigil.email.text", "text"),
                                       ("vigil.email.html", "html")])
def test_template_shows_every_alert_of_the_group(group_file, name, kind):
    body = render(group_file, name, kind)
    for alert in GROUP["alerts"]:
        assert alert["annotations"]["description"] in body
        assert f"redis={alert['labels']['redis']}" in body  # the affected instance and Redis
    assert body.count("Redis is down.") >= 2
    assert body.count("critical") >= 2
    assert "https://example.org/runbooks.md#redisdown" in body
    assert "http://grafana:3000/d/vigil-redis" in body
    assert "vigil:9477" in body


def test_slack_title_color_and_email_subject(group_file):
    assert render(group_file, "vigil.slack.title").strip() == "[FIRING:1] RedisDown (critical)"
    assert render(group_file, "vigil.slack.color").strip() == "danger"
    subject = render(group_file, "vigil.email.subject").strip()
    assert subject.startswith("[FIRING:1] RedisDown (critical): vigil:9477 redis=cache")
