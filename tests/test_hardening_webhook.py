"""The alert webhook is bounded (rate, size, alerts, log lines, file size), can have credentials
of its own, and its log survives a full disk (issue 18, "Availability", "The alert log", the
lone surrogate)."""
from __future__ import annotations

import base64
import io
import json
import logging
import subprocess
import sys

import bcrypt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from vigil_exporter import logs
from vigil_exporter.alerting.receiver import WEBHOOK_PATH
from vigil_exporter.app import make_app
from vigil_exporter.config import load
from vigil_exporter.webconfig import WebConfig

TOKEN = "t0ken-for-alertmanager-0123456789"


def notification(count: int = 1, label: str = "x") -> dict:
    return {"version": "4", "status": "firing", "receiver": "vigil-log", "alerts": [
        {"status": "firing", "labels": {"alertname": f"A{i}", "severity": "critical", "l": label},
         "annotations": {"summary": "s"}, "startsAt": "2024-05-01T10:00:00Z"}
        for i in range(count)]}


@pytest.fixture
async def make_client(tmp_path):
    clients = []

    async def make(alerts: dict | None = None, web_config: WebConfig | None = None) -> TestClient:
        path = tmp_path / f"vigil-{len(clients)}.yml"
        path.write_text(json.dumps({
            "alerts": {"log_file": str(tmp_path / f"alerts-{len(clients)}.jsonl"), **(alerts or {})},
            "collectors": {"system": {"enabled": False}, "business": {"enabled": False},
                           "database": {"enabled": False}}}))
        config = load(path, environ={})
        client = TestClient(TestServer(make_app(config, web_config)))
        await client.start_server()
        client.alert_log = tmp_path / f"alerts-{len(clients)}.jsonl"
        clients.append(client)
        return client
    yield make
    for client in clients:
        await client.close()


async def test_requests_beyond_the_rate_get_429(make_client):
    client = await make_client({"rate_limit": 1, "rate_burst": 5})
    statuses = [(await client.post(WEBHOOK_PATH, json=notification())).status for _ in range(12)]
    assert statuses[:5] == [200] * 5
    assert statuses[5:].count(429) >= 6


async def test_too_many_alerts_in_one_notification_get_413(make_client):
    client = await make_client({"max_alerts": 10})
    assert (await client.post(WEBHOOK_PATH, json=notification(11))).status == 413
    assert (await client.post(WEBHOOK_PATH, json=notification(10))).status == 200
    assert len(client.alert_log.read_text().splitlines()) == 10


async def test_invalid_requests_write_at_most_one_log_line(make_client, caplog):
    client = await make_client({"rate_limit": 1000, "rate_burst": 1000})
    with caplog.at_level(logging.INFO, logger="vigil.alerts"):
        for i in range(200):
            body = b"{" * i if i % 2 else json.dumps({"version": "3"}).encode()
            assert (await client.post(WEBHOOK_PATH, data=body)).status == 400
    assert len([r for r in caplog.records if r.name == "vigil.alerts"]) == 1


async def test_alert_log_lines_are_bounded_but_every_alert_is_kept(make_client, caplog):
    client = await make_client({"log_lines_per_second": 10})
    with caplog.at_level(logging.INFO, logger="vigil.alerts"):
        response = await client.post(WEBHOOK_PATH, json=notification(500))
    assert response.status == 200
    assert len(client.alert_log.read_text().splitlines()) == 500
    lines = [r for r in caplog.records if r.name == "vigil.alerts"]
    assert 50 <= len(lines) <= 52  # the burst (5 s worth), and one line saying the rest is left out


async def test_a_slow_log_line_rate_still_logs_the_first_alert(make_client, caplog):
    """0.1 lines per second made a burst of int(0.5) = 0: no alert was ever logged."""
    client = await make_client({"log_lines_per_second": 0.1})
    with caplog.at_level(logging.INFO, logger="vigil.alerts"):
        assert (await client.post(WEBHOOK_PATH, json=notification(3))).status == 200
    alerts = [r.getMessage() for r in caplog.records if r.name == "vigil.alerts"
              and r.getMessage().startswith("alert firing")]
    assert alerts == ["alert firing A0: s"]


def test_malformed_http_requests_write_at_most_one_log_line():
    from aiohttp.http_exceptions import BadHttpMessage
    stream = io.StringIO()
    logs.setup("info", stream=stream, json_lines=True)
    try:
        server_log = logging.getLogger("aiohttp.server")
        for _ in range(500):
            try:
                raise BadHttpMessage("Invalid method encountered")
            except BadHttpMessage:
                server_log.exception("Error handling request")
    finally:
        logging.getLogger().handlers.clear()
    assert len(stream.getvalue().splitlines()) == 1
    assert "rejected a bad request: Invalid method encountered" in stream.getvalue()
    assert "Traceback" not in stream.getvalue()


async def test_the_alert_log_is_rotated_at_its_size(make_client):
    client = await make_client({"max_log_bytes": 65536, "rate_limit": 1000, "rate_burst": 1000})
    for _ in range(40):
        assert (await client.post(WEBHOOK_PATH, json=notification(10, "y" * 100))).status == 200
    rotated = client.alert_log.with_name(client.alert_log.name + ".1")
    assert rotated.exists() and client.alert_log.stat().st_size <= 65536
    records = rotated.read_text().splitlines() + client.alert_log.read_text().splitlines()
    assert all(json.loads(line)["labels"]["l"] == "y" * 100 for line in records)


# ------------------------------------------------------------------ credentials of its own

async def test_the_webhook_has_its_own_bearer_token(make_client, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    hashed = bcrypt.hashpw(b"scrape", bcrypt.gensalt(rounds=4))
    client = await make_client({"bearer_token_file": str(token_file)},
                               WebConfig(users={"prometheus": hashed}))
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    basic = {"Authorization": "Basic " + base64.b64encode(b"prometheus:scrape").decode()}
    assert (await client.post(WEBHOOK_PATH, json=notification())).status == 401
    assert (await client.post(WEBHOOK_PATH, json=notification(),
                              headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await client.post(WEBHOOK_PATH, json=notification(), headers=basic)).status == 401
    assert (await client.post(WEBHOOK_PATH, json=notification(), headers=bearer)).status == 200
    assert (await client.get("/metrics", headers=bearer)).status == 401  # /metrics is separate
    assert (await client.get("/metrics", headers=basic)).status == 200


async def test_a_flood_without_credentials_leaves_the_rate_to_alertmanager(make_client,
                                                                          tmp_path):
    """The rate limit counts authorised requests only: requests without the token get 401 and
    spend nothing, so Alertmanager's own notifications still get in."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    client = await make_client({"bearer_token_file": str(token_file), "rate_limit": 0.01,
                                "rate_burst": 2})
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for headers in ({}, {"Authorization": "Bearer wrong"}) * 25:
        assert (await client.post(WEBHOOK_PATH, json=notification(), headers=headers)).status \
            == 401
    statuses = [(await client.post(WEBHOOK_PATH, json=notification(), headers=bearer)).status
                for _ in range(3)]
    assert statuses == [200, 200, 429]  # the burst is Alertmanager's, and still bounded


async def test_the_webhook_has_its_own_basic_auth_users(make_client):
    hashed = bcrypt.hashpw(b"am-secret", bcrypt.gensalt(rounds=4)).decode()
    client = await make_client({"basic_auth_users": {"alertmanager": hashed}})
    good = {"Authorization": "Basic " + base64.b64encode(b"alertmanager:am-secret").decode()}
    assert (await client.post(WEBHOOK_PATH, json=notification())).status == 401
    assert (await client.post(WEBHOOK_PATH, json=notification(), headers=good)).status == 200
    assert (await client.get("/metrics")).status == 200


def test_a_short_or_missing_token_file_is_a_config_error(tmp_path, vigil_cli):
    (tmp_path / "token").write_text("short\n")
    for token_file, fault in ((tmp_path / "token", "expected a token of 16 characters or more"),
                              (tmp_path / "missing", "cannot read")):
        path = tmp_path / "vigil.yml"
        path.write_text(f"alerts:\n  bearer_token_file: {token_file}\n")
        result = vigil_cli("check-config", path)
        assert result.returncode == 2
        assert f"{path}: alerts.bearer_token_file: " in result.stderr and fault in result.stderr


# ------------------------------------------------------------------ what the alert log accepts

@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\ud83d"])
async def test_a_lone_surrogate_is_a_400(make_client, escape):
    client = await make_client()
    body = json.dumps(notification()).replace('"l": "x"', f'"l": "{escape}"').encode()
    response = await client.post(WEBHOOK_PATH, data=body)
    assert response.status == 400
    assert "Unicode" in (await response.json())["error"]
    assert not client.alert_log.exists()


def test_a_failed_write_leaves_whole_records(tmp_path):
    """A full disk mid-record (RLIMIT_FSIZE makes the write stop part-way, as ENOSPC does):
    the file is truncated back, and the retry lands as a whole record on its own line."""
    script = f"""
import asyncio, resource
from vigil_exporter.alerting.receiver import AlertLog
records = [{{"n": i, "pad": "z" * 300}} for i in range(10)]
log = AlertLog({str(tmp_path / 'alerts.jsonl')!r})
asyncio.run(log.append(records[:2]))
size = __import__("os").path.getsize(log.path)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 500, resource.RLIM_INFINITY))
try:
    asyncio.run(log.append(records[2:]))
    print("written")
except OSError as exc:
    print("failed", exc.errno)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
asyncio.run(log.append(records[2:]))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.startswith("failed"), result.stdout + result.stderr
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line)["n"] for line in lines] == list(range(10))


def test_a_partial_last_line_left_by_a_crash_is_cut_off(tmp_path):
    import asyncio

    from vigil_exporter.alerting.receiver import AlertLog
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"n":0}\n{"n":1,"pa')
    asyncio.run(AlertLog(str(path)).append([{"n": 2}]))
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [0, 2]
