"""The log receiver (`POST /alerts/webhook`) and `vigil alerts log`, without Alertmanager."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from vigil_exporter.alerting import cli
from vigil_exporter.alerting.receiver import WEBHOOK_PATH, notifications_counter, setup_alert_receiver


def notification(*alerts: dict, status: str = "firing") -> dict:
    return {"version": "4", "groupKey": "{}:{alertname=\"RedisDown\"}", "truncatedAlerts": 0,
            "status": status, "receiver": "vigil-log", "groupLabels": {"alertname": "RedisDown"},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
            "alerts": list(alerts)}


def alert(name="RedisDown", severity="critical", status="firing", **labels) -> dict:
    return {"status": status,
            "labels": {"alertname": name, "severity": severity, "area": "redis",
                       "instance": "vigil:9477", **labels},
            "annotations": {"summary": f"{name} summary.", "description": "details",
                            "runbook_url": "https://r/#x", "dashboard_url": "http://g/d/x"},
            "startsAt": "2024-05-01T10:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2024-05-01T10:05:00Z",
            "generatorURL": "http://prom/graph", "fingerprint": f"{name}-{severity}"}


@pytest.fixture
async def receiver(tmp_path):
    app = web.Application()
    registry = CollectorRegistry()
    log_path = tmp_path / "alerts" / "vigil-alerts.jsonl"
    updates: list[int] = []
    setup_alert_receiver(app, str(log_path), notifications_counter(registry), max_body_bytes=4096,
                         on_update=lambda: updates.append(1))
    client = TestClient(TestServer(app))
    await client.start_server()
    client.log_path, client.registry, client.updates = log_path, registry, updates
    yield client
    await client.close()


def count(registry: CollectorRegistry, status: str, severity: str) -> float:
    return registry.get_sample_value("vigil_alert_notifications_total",
                                     {"status": status, "severity": severity}) or 0.0


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_valid_notification_is_logged_appended_and_counted(receiver, caplog):
    caplog.set_level(logging.INFO, logger="vigil.alerts")
    body = notification(alert(redis="cache"), alert("RedisDown", "warning", redis="queue"))
    response = await receiver.post(WEBHOOK_PATH, json=body)
    assert response.status == 200 and (await response.json()) == {"received": 2}
    response = await receiver.post(WEBHOOK_PATH, json=notification(
        alert(status="resolved", redis="cache"), alert("Odd", "page"), status="resolved"))
    assert response.status == 200

    records = lines(receiver.log_path)
    assert [(r["alertname"], r["status"], r["severity"]) for r in records] == [
        ("RedisDown", "firing", "critical"), ("RedisDown", "firing", "warning"),
        ("RedisDown", "resolved", "critical"), ("Odd", "firing", "page")]
    first = records[0]
    assert first["labels"]["redis"] == "cache" and first["annotations"]["summary"]
    assert first["startsAt"] == "2024-05-01T10:00:00.123456789Z"
    assert first["endsAt"] == "0001-01-01T00:00:00Z"
    assert first["fingerprint"] == "RedisDown-critical"
    assert datetime.fromisoformat(first["received_at"].replace("Z", "+00:00")).tzinfo
    assert set(first) >= {"received_at", "status", "alertname", "severity", "labels",
                          "annotations", "startsAt", "endsAt", "fingerprint"}

    assert count(receiver.registry, "firing", "critical") == 1
    assert count(receiver.registry, "firing", "warning") == 1
    assert count(receiver.registry, "resolved", "critical") == 1
    assert count(receiver.registry, "firing", "other") == 1  # severity "page" is not a label value
    assert count(receiver.registry, "firing", "info") == 0  # pre-initialised, so it exists
    assert receiver.registry.get_sample_value(
        "vigil_alert_notifications_total", {"status": "firing", "severity": "info"}) == 0.0

    assert len(receiver.updates) == 2  # the exposition may re-render after each notification

    logged = [r for r in caplog.records if r.name == "vigil.alerts"]
    assert len(logged) == 4
    assert logged[0].levelno == logging.ERROR and logged[1].levelno == logging.WARNING
    assert logged[0].fields["alertname"] == "RedisDown"
    assert logged[0].fields["labels"]["redis"] == "cache"


@pytest.mark.parametrize("body", [
    b"{not json", b"\xff\xfe", b"[]", b'"text"', b"[" * 2000 + b"]" * 2000,
    json.dumps({"alerts": []}).encode(),                                     # no version
    json.dumps({"version": "3", "alerts": []}).encode(),
    json.dumps({"version": "4"}).encode(),                                   # no alerts
    json.dumps({"version": "4", "alerts": {}}).encode(),
    json.dumps(notification(alert(), "not an alert")).encode(),
    json.dumps(notification({**alert(), "status": "weird"})).encode(),
    json.dumps(notification({**alert(), "labels": ["a"]})).encode(),
    json.dumps(notification({**alert(), "labels": {"alertname": 1}})).encode(),
    json.dumps(notification({k: v for k, v in alert().items() if k != "annotations"})).encode(),
    json.dumps(notification({**alert(), "startsAt": "yesterday"})).encode(),
    json.dumps(notification({k: v for k, v in alert().items() if k != "startsAt"})).encode(),
], ids=["broken", "binary", "list", "string", "deeply-nested", "no-version", "version-3", "no-alerts",
        "alerts-object", "alert-not-object", "bad-status", "labels-list", "label-not-string",
        "no-annotations", "bad-startsAt", "no-startsAt"])
async def test_malformed_body_is_rejected_and_changes_nothing(receiver, body):
    await receiver.post(WEBHOOK_PATH, json=notification(alert()))
    before = receiver.log_path.read_bytes()
    response = await receiver.post(WEBHOOK_PATH, data=body,
                                   headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert "error" in await response.json()
    assert receiver.log_path.read_bytes() == before
    assert count(receiver.registry, "firing", "critical") == 1
    assert len(receiver.updates) == 1


async def test_oversized_body_is_rejected_and_changes_nothing(receiver):
    big = notification(*(alert(redis=f"r{i}") for i in range(40)))
    data = json.dumps(big).encode()
    assert len(data) > 4096
    response = await receiver.post(WEBHOOK_PATH, data=data)
    assert response.status == 413
    # Without a Content-Length (chunked), the limit holds while reading.
    async def chunks():
        for start in range(0, len(data), 1000):
            yield data[start:start + 1000]
    response = await receiver.post(WEBHOOK_PATH, data=chunks())
    assert response.status == 413
    assert not receiver.log_path.exists()
    assert count(receiver.registry, "firing", "critical") == 0


async def test_only_post_is_routed(receiver):
    assert (await receiver.get(WEBHOOK_PATH)).status == 405


async def test_unwritable_log_answers_500_so_alertmanager_retries(tmp_path):
    app = web.Application()
    registry = CollectorRegistry()
    (tmp_path / "file").write_text("")
    setup_alert_receiver(app, str(tmp_path / "file" / "alerts.jsonl"),
                         notifications_counter(registry))
    async with TestClient(TestServer(app)) as client:
        response = await client.post(WEBHOOK_PATH, json=notification(alert()))
        assert response.status == 500
    assert count(registry, "firing", "critical") == 0


# ---- vigil alerts log ------------------------------------------------------------------------

def write_log(path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "not json\n")


def record(name, severity, minutes_ago, status="firing") -> dict:
    received = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    return {"received_at": received.isoformat().replace("+00:00", "Z"), "status": status,
            "alertname": name, "severity": severity,
            "labels": {"alertname": name, "severity": severity, "instance": "vigil:9477"},
            "annotations": {"summary": f"{name} summary."}, "startsAt": "2024-05-01T10:00:00Z",
            "endsAt": None, "fingerprint": "f"}


def run_cli(argv: list[str]) -> int:
    from vigil_exporter.cli import build_parser
    args = build_parser().parse_args(argv)
    return args.func(args)


def test_alerts_log_filters_by_severity_and_time(tmp_path, capsys):
    path = tmp_path / "alerts.jsonl"
    write_log(path, [record("Old", "critical", 180), record("Recent", "critical", 10),
                     record("Chatty", "info", 5), record("Soft", "warning", 1, "resolved")])
    assert run_cli(["alerts", "log", "--file", str(path), "--severity", "critical",
                    "--since", "1h"]) == 0
    out, err = capsys.readouterr()
    assert "Recent" in out and "Old" not in out and "Chatty" not in out
    assert out.splitlines()[0].split() == ["RECEIVED", "STATUS", "SEVERITY", "ALERTNAME",
                                           "INSTANCE", "LABELS", "SUMMARY"]
    assert "skipped 1 unreadable line" in err

    since = (datetime.now(timezone.utc) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert run_cli(["alerts", "log", "--file", str(path), "--since", since, "--json"]) == 0
    names = [json.loads(line)["alertname"] for line in capsys.readouterr().out.splitlines()]
    assert names == ["Recent", "Chatty", "Soft"]


def test_alerts_log_tells_alerts_of_one_name_apart(tmp_path, capsys):
    """Six TenantNearLimit alerts of one tenant differ by `resource`: each row says which."""
    resources = ["agents", "channels", "messages_per_day", "api_calls_per_day", "storage",
                 "connections"]
    records = []
    for resource in resources:
        alert = record("TenantNearLimit", "warning", 1)
        alert["labels"].update(tenant="acme", resource=resource, area="business", job="vigil")
        records.append(alert)
    write_log(tmp_path / "alerts.jsonl", records)
    assert run_cli(["alerts", "log", "--file", str(tmp_path / "alerts.jsonl")]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[6:8] for row in rows] == [
        [f"resource={resource}", "tenant=acme"] for resource in resources]
    assert all("area=" not in row and "job=" not in row for row in rows)


def test_alerts_log_reads_env_default_and_reports_missing_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VIGIL_ALERT_LOG", str(tmp_path / "missing.jsonl"))
    assert run_cli(["alerts", "log"]) == 1
    err = capsys.readouterr().err
    assert "missing.jsonl" in err and "Traceback" not in err
    assert run_cli(["alerts", "log", "--file", str(tmp_path / "x"), "--since", "soon"]) == 1


@pytest.mark.parametrize("text,expected", [
    ("alertname=Foo", {"name": "alertname", "value": "Foo", "isRegex": False, "isEqual": True}),
    ("job!=vigil", {"name": "job", "value": "vigil", "isRegex": False, "isEqual": False}),
    ('instance=~"db-.*"', {"name": "instance", "value": "db-.*", "isRegex": True, "isEqual": True}),
    ("severity !~ info|none", {"name": "severity", "value": "info|none", "isRegex": True,
                               "isEqual": False}),
])
def test_parse_matcher(text, expected):
    assert cli.parse_matcher(text) == expected
    assert cli.parse_matcher(cli.matcher_text(expected)) == expected


def test_parse_matcher_rejects_garbage():
    with pytest.raises(cli.CommandError):
        cli.parse_matcher("no operator")
