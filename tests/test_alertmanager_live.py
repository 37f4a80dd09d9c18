"""Against a real Alertmanager running the bundle's config: `vigil alerts test/list/silence`,
inhibition, and delivery to the log receiver (a real aiohttp app), webhook sinks and SMTP."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry

from tests.sinks import SmtpSink, ThreadedServer, WebhookSink, message_text
from vigil_exporter.alerting.receiver import WEBHOOK_PATH, notifications_counter, setup_alert_receiver
from vigil_exporter.alerting.render import render_config
from vigil_exporter.alerting.timeutil import format_time, parse_time, utc_now
from vigil_exporter.cli import build_parser
from vigil_exporter.tools.stack.components import Alertmanager
from vigil_exporter.tools.stack.process import free_port, wait_for

BUNDLE = Path(__file__).resolve().parent.parent / "alertmanager"
BUNDLE_CONFIG = BUNDLE / "alertmanager.yml"
FAST_TIMINGS = {"group_wait": "1s", "group_interval": "2s"}
SMTP_USER = "vigil-alertmanager@example.com"  # the bundle's smtp_auth_username
SMTP_PASSWORD = "from-a-file"


def bundle_config(secrets_dir: Path, sink_url: str, log_receiver_url: str, smtp_port: int,
                  smtp_password: str) -> dict:
    """The repository's alertmanager.yml, deployed the documented way, aimed at local sinks.

    Webhook URLs come through `render_config` (VIGIL_AM_<RECEIVER>_URL: `<sink>/<receiver>`,
    vigil-log to `log_receiver_url`), the Slack URL and the SMTP password through their `*_file`
    settings, mail to the SMTP sink; group_wait/group_interval are FAST_TIMINGS wherever the
    tree sets them.
    """
    source = yaml.safe_load(BUNDLE_CONFIG.read_text())
    environ = {f"VIGIL_AM_{r['name'].upper().replace('-', '_')}_URL": f"{sink_url}/{r['name']}"
               for r in source["receivers"] if r.get("webhook_configs")}
    environ["VIGIL_AM_VIGIL_LOG_URL"] = log_receiver_url
    config = yaml.safe_load(render_config(BUNDLE_CONFIG.read_text(), environ)[0])
    secrets_dir.mkdir(parents=True, exist_ok=True)
    (secrets_dir / "slack_api_url").write_text(f"{sink_url}/slack\n")
    # No trailing newline: Alertmanager 0.25 uses the password file's bytes as they are.
    (secrets_dir / "smtp_password").write_text(smtp_password)
    glob = config["global"]
    glob["slack_api_url_file"] = str(secrets_dir / "slack_api_url")
    glob["smtp_auth_password_file"] = str(secrets_dir / "smtp_password")
    glob["smtp_smarthost"] = f"127.0.0.1:{smtp_port}"
    glob["smtp_require_tls"] = False
    config["templates"] = [str(BUNDLE / "templates" / "*.tmpl")]
    _apply_timings(config["route"], FAST_TIMINGS)
    return config


def _apply_timings(route: dict, timings: dict, root: bool = True) -> None:
    for key, value in timings.items():
        if root or key in route:
            route[key] = value
    for child in route.get("routes", []):
        _apply_timings(child, timings, root=False)


def synthetic_alert(name: str, severity: str, area: str = "meta", minutes: float = 5,
                    **labels: str) -> dict:
    """An alert as Prometheus would post it, ending in `minutes` unless posted again."""
    now = utc_now()
    return {"labels": {"alertname": name, "severity": severity, "area": area, **labels},
            "annotations": {"summary": f"{name} test alert.",
                            "description": f"{name} ({severity}) on {labels.get('instance', '-')}.",
                            "runbook_url": f"https://runbooks.invalid/#{name.lower()}",
                            "dashboard_url": "http://grafana.invalid/d/vigil-overview"},
            "startsAt": format_time(now), "endsAt": format_time(now + timedelta(minutes=minutes)),
            "generatorURL": "http://prometheus.invalid/graph"}


class Receivers:
    """The bundle's Alertmanager (the stack's component) with every receiver at hand: the log
    receiver (the exporter's aiohttp handler, in process), a webhook sink and an SMTP sink."""

    def __init__(self, workdir: Path):
        self.log_path = workdir / "vigil-alerts.jsonl"
        self.registry = CollectorRegistry()
        app = web.Application()
        setup_alert_receiver(app, str(self.log_path), notifications_counter(self.registry))
        self.receiver = ThreadedServer(app).start()
        self.sink = WebhookSink().start()
        self.smtp = SmtpSink(SMTP_USER, SMTP_PASSWORD).start()
        config = bundle_config(workdir / "secrets", self.sink.url,
                               log_receiver_url=self.receiver.url + WEBHOOK_PATH,
                               smtp_port=self.smtp.port, smtp_password=SMTP_PASSWORD)
        self.alertmanager = Alertmanager("alertmanager", workdir, free_port(), config=config)
        self.alertmanager.start()

    def stop(self):
        self.alertmanager.stop()
        for server in (self.receiver, self.sink, self.smtp):
            server.stop()

    def logged(self, alertname: str, status: str = "firing") -> list[dict]:
        if not self.log_path.exists():
            return []
        records = [json.loads(line) for line in self.log_path.read_text().splitlines()]
        return [r for r in records if r["alertname"] == alertname and r["status"] == status]

    def webhook_alerts(self, path: str, alertname: str) -> list[dict]:
        return [a for r in self.sink.received(path) if r["json"]
                for a in r["json"].get("alerts", []) if a["labels"]["alertname"] == alertname]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Receivers(tmp_path_factory.mktemp("alertmanager"))
    yield stack
    stack.stop()


def vigil(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return args.func(args)


def test_alerts_test_then_list_shows_it(stack, capsys):
    am = stack.alertmanager.url
    assert vigil("alerts", "test", "--severity", "warning", "--area", "redis",
                 "--name", "VigilCliTest", "--alertmanager", am) == 0
    sent = capsys.readouterr().out
    assert '"alertname": "VigilCliTest"' in sent and '"severity": "warning"' in sent

    assert vigil("alerts", "list", "--alertmanager", am) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:6] == ["ALERTNAME", "SEVERITY", "STATE", "INSTANCE", "LABELS",
                                    "STARTED"]
    row = next(line for line in table if line.startswith("VigilCliTest"))
    assert row.split()[1:3] == ["warning", "active"]
    assert "source=vigil-alerts-test" in row  # the label that is not shown in a column
    assert "Synthetic alert sent by" in row

    assert vigil("alerts", "list", "--json", "--filter", "alertname=VigilCliTest",
                 "--alertmanager", am) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["labels"]["area"] for a in listed] == ["redis"]
    ends = listed[0]["endsAt"]
    assert utc_now() + timedelta(minutes=3) < parse_time(ends) < utc_now() + timedelta(minutes=6)
    assert {r["name"] for r in listed[0]["receivers"]} == {"vigil-log", "slack-data"}


def test_alerts_silence_silences_the_alert(stack, capsys, monkeypatch):
    monkeypatch.setenv("VIGIL_ALERTMANAGER_URL", stack.alertmanager.url)  # the CLI's default
    assert vigil("alerts", "test", "--severity", "critical", "--name", "VigilSilenceTest") == 0
    capsys.readouterr()
    assert vigil("alerts", "silence", "--matcher", "alertname=VigilSilenceTest",
                 "--matcher", 'severity=~"crit.*"', "--matcher", "area!=redis",
                 "--duration", "10m", "--comment", "maintenance window",
                 "--author", "tester") == 0
    silence_id = capsys.readouterr().out.strip()
    silence = stack.alertmanager.get_json(f"/api/v2/silence/{silence_id}")
    assert silence["status"]["state"] == "active" and silence["createdBy"] == "tester"
    assert {(m["name"], m["isRegex"], m.get("isEqual", True)) for m in silence["matchers"]} == {
        ("alertname", False, True), ("severity", True, True), ("area", False, False)}

    alert = wait_for(lambda: next((a for a in stack.alertmanager.alerts()
                                     if a["labels"]["alertname"] == "VigilSilenceTest"
                                     and a["status"]["silencedBy"]), None), what="silenced")
    assert alert["status"]["silencedBy"] == [silence_id]
    assert alert["status"]["state"] == "suppressed"
    assert vigil("alerts", "list") == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("VigilSilenceTest"))
    assert row.split()[2] == "silenced"


INHIBIT_CASES = yaml.safe_load((BUNDLE / "inhibit_cases.yml").read_text())


def test_inhibition_rules_against_running_alertmanager(stack, capsys):
    alerts = []
    for case in INHIBIT_CASES:
        for labels in (case["source"], case["target"]):
            alerts.append(synthetic_alert(**{"name": labels["alertname"],
                                             "severity": labels["severity"],
                                             "area": labels["area"]},
                                          **{k: v for k, v in labels.items()
                                             if k not in ("alertname", "severity", "area")}))
    stack.alertmanager.post_alerts(alerts)

    def find(labels: dict, current: list[dict]) -> dict | None:
        return next((a for a in current if a["labels"] == {**labels}), None)

    def settled():
        current = stack.alertmanager.alerts()
        found = [(case, find(case["source"], current), find(case["target"], current))
                 for case in INHIBIT_CASES]
        if any(s is None or t is None for _, s, t in found):
            return None
        if any(case["inhibited"] and not t["status"]["inhibitedBy"] for case, _, t in found):
            return None
        return found

    for case, source, target in wait_for(settled, what="inhibitions"):
        if case["inhibited"]:
            assert target["status"]["inhibitedBy"] == [source["fingerprint"]], case["name"]
            assert target["status"]["state"] == "suppressed", case["name"]
        else:
            assert target["status"]["inhibitedBy"] == [], case["name"]
            assert target["status"]["state"] == "active", case["name"]
        assert source["status"]["state"] == "active", case["name"]

    # `vigil alerts list` says so too, and the API's inhibited=false filter hides them.
    assert vigil("alerts", "list", "--alertmanager", stack.alertmanager.url) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["SystemMemoryUsageHigh", "warning", "inhibited", "i:9477"] in [r[:4] for r in rows]
    visible = stack.alertmanager.alerts(inhibited="false")
    assert not any(a["labels"].get("instance") == "i:9477" and a["labels"]["severity"] == "warning"
                   for a in visible)


def test_critical_alert_reaches_log_pager_slack_and_email_then_resolves(stack):
    # Labels of its own: RedisDown{redis="cache"} of the inhibition test would inhibit it.
    alert = synthetic_alert("VigilDeliveryTest", "critical", "redis", instance="vigil:9477",
                            job="vigil", redis="delivery")
    posted = time.monotonic()
    stack.alertmanager.post_alerts([alert])

    record = wait_for(lambda: stack.logged("VigilDeliveryTest"), what="log receiver")[0]
    assert record["severity"] == "critical" and record["receiver"] == "vigil-log"
    assert record["labels"]["redis"] == "delivery" and record["fingerprint"]
    assert record["annotations"]["runbook_url"] == alert["annotations"]["runbook_url"]
    wait_for(lambda: stack.registry.get_sample_value(  # counted right after the write
        "vigil_alert_notifications_total", {"status": "firing", "severity": "critical"}) >= 1)

    pager = wait_for(lambda: stack.webhook_alerts("/pager", "VigilDeliveryTest"), what="pager")
    assert pager[0]["labels"]["severity"] == "critical"

    slack = stack.sink.wait_for(lambda r: r["path"] == "/slack"
                                and "VigilDeliveryTest" in r["body"].decode())["json"]
    assert slack["channel"] == "#vigil-data"
    attachment = slack["attachments"][0]
    assert attachment["title"] == "[FIRING:1] VigilDeliveryTest (critical)"
    assert attachment["color"] == "danger"
    assert "VigilDeliveryTest test alert." in attachment["text"]
    assert "vigil:9477 redis=delivery" in attachment["text"]
    assert alert["annotations"]["runbook_url"] in attachment["text"]
    assert alert["annotations"]["dashboard_url"] in attachment["text"]

    mail = stack.smtp.wait_for(lambda m: "VigilDeliveryTest" in m["message"]["Subject"])
    assert mail["to"] == ["oncall@example.com"]
    assert mail["message"]["Subject"].startswith("[FIRING:1] VigilDeliveryTest (critical)")
    body = message_text(mail["message"])
    for expected in ("VigilDeliveryTest test alert.", "vigil:9477 redis=delivery",
                     alert["annotations"]["runbook_url"], alert["annotations"]["dashboard_url"]):
        assert expected in body
    assert SMTP_USER in stack.smtp.logins  # the password came from smtp_auth_password_file
    assert time.monotonic() - posted < 10

    stack.alertmanager.post_alerts([{**alert, "endsAt": format_time(utc_now())}])
    resolved = wait_for(lambda: stack.logged("VigilDeliveryTest", "resolved"), what="resolved")
    assert resolved[0]["endsAt"] != "0001-01-01T00:00:00Z"
    wait_for(lambda: [a for a in stack.webhook_alerts("/pager", "VigilDeliveryTest")
                        if a["status"] == "resolved"], what="resolved at the pager")


def test_info_alert_reaches_only_the_log_and_watchdog_only_the_heartbeat(stack):
    stack.alertmanager.post_alerts([
        synthetic_alert("VigilInfoTest", "info", "business", instance="vigil:9477"),
        synthetic_alert("Watchdog", "info", "meta")])
    wait_for(lambda: stack.logged("VigilInfoTest"), what="info in the log")
    heartbeat = wait_for(lambda: stack.webhook_alerts("/heartbeat", "Watchdog"),
                           what="heartbeat")
    assert heartbeat[0]["status"] == "firing"
    time.sleep(2.5)  # one more group_interval: nothing else may arrive
    assert not stack.logged("Watchdog")
    for path in ("/pager", "/slack", "/vigil-log"):
        assert not stack.webhook_alerts(path, "VigilInfoTest")
        assert not stack.webhook_alerts(path, "Watchdog")
    assert not [m for m in stack.smtp.received() if "VigilInfoTest" in m["message"]["Subject"]]


def test_unreachable_alertmanager_is_one_clear_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    for argv in (["list"], ["test"], ["silence", "-m", "alertname=X", "--comment", "c"]):
        result = subprocess.run([sys.executable, "-m", "vigil_exporter", "alerts", *argv,
                                 "--alertmanager", url], capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == 1, argv
        assert result.stderr.strip() == (f"vigil alerts: cannot reach Alertmanager at {url}: "
                                         "[Errno 111] Connection refused"), result.stderr

