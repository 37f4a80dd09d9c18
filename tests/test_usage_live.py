"""Tenant usage end to end, with real processes only.

1. `vigil serve --demo` (the demo data set, no traffic: its counts hold still) scraped by a real
   Prometheus running the bundle's rules, the exporter pointed back at that Prometheus
   (`usage.prometheus_url`): `vigil usage` for today gives every tenant's counts exactly as the
   exporter's own per-tenant gauges say, `GET /api/v1/usage-metrics` answers the same JSON, and
   every bad input gets its status and message.
2. A second exporter behind basic auth whose Prometheus does not answer: 401 without
   credentials, 503 naming the cause with them.
3. The shared live stack (demo traffic, LLM calls per tenant): the LLM cost of the day recorded
   by the rollups equals the increase of the cost counters themselves, within one scrape.
4. Three past days of history written into a real Prometheus (`promtool tsdb
   create-blocks-from openmetrics`): a report over them has a row per tenant and UTC day with
   the last value of that day (not the reset value of the next midnight), null for a day
   without samples, totals, peaks and the limits at the end of the range; the endpoint answers
   the same JSON.
"""
from __future__ import annotations

import base64
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from datetime import date, datetime, timedelta, timezone

import bcrypt
import pytest
import yaml

from vigil_exporter.cli import main
from vigil_exporter.prometheus_api import PrometheusAPI
from vigil_exporter.tools import bundle
from vigil_exporter.tools.stack.components import RETENTION, Prometheus
from vigil_exporter.tools.stack.process import free_port, wait_for
from vigil_exporter.usage.report import FIELDS, LIMITS
from vigil_exporter.validation import parse_duration

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TODAY = datetime.now(timezone.utc).date()
RETENTION_DAYS = int(parse_duration(RETENTION["prometheus"]) // 86400)  # the stack's Prometheus
# Exporter gauge (with its label filter) -> the report's field for today.
GAUGES = {
    ("vigil_tenant_agents", ""): "agents_count",
    ("vigil_tenant_agents_active", ""): "active_agents_count",
    ("vigil_tenant_channels", ""): "channels_count",
    ("vigil_tenant_channels_active", ""): "active_channels_count",
    ("vigil_tenant_storage_bytes", ""): "storage_used_bytes",
    ("vigil_tenant_messages_today", "in"): "messages_in_count",
    ("vigil_tenant_messages_today", "out"): "messages_out_count",
    ("vigil_tenant_api_calls_today", ""): "api_calls_count",
    ("vigil_tenant_agents_limit", ""): "max_agents",
    ("vigil_tenant_channels_limit", ""): "max_channels",
    ("vigil_tenant_messages_per_day_limit", ""): "max_messages_per_day",
    ("vigil_tenant_api_calls_per_day_limit", ""): "max_api_calls_per_day",
    ("vigil_tenant_storage_limit_bytes", ""): "max_storage_bytes",
    ("vigil_tenant_connections_limit", ""): "concurrent_connections",
}


@pytest.fixture(scope="module")
def usage_setup(start_exporter, tmp_path_factory):
    """(exporter, prometheus): the seeded exporter serving the usage endpoint, scraped every
    second by Prometheus with the bundle's rules."""
    prometheus_port = free_port()
    exporter = start_exporter({"usage": {"prometheus_url": f"http://127.0.0.1:{prometheus_port}"}},
                              seed=True)
    config = bundle.local_prometheus_config({"vigil": [exporter.address]}, [],
                                            scrape_interval="1s", evaluation_interval="1s")
    prometheus = Prometheus("prometheus", tmp_path_factory.mktemp("usage-prometheus"),
                            prometheus_port, config_text=lambda: yaml.safe_dump(config))
    prometheus.start()
    try:
        api = PrometheusAPI(prometheus.url)
        wait_for(lambda: api.query("vigil_tenant_connections_limit")["result"], 30,
                 what="the tenant series in Prometheus")
        yield exporter, prometheus
    finally:
        prometheus.stop()
        prometheus.cleanup()


def gauges(exporter) -> dict[str, dict[str, float]]:
    """tenant -> report field -> the exporter's own value, from its /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(exporter.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            field = GAUGES.get((sample.name, sample.labels.get("direction", "")))
            if field:
                out.setdefault(sample.labels["tenant"], {})[field] = sample.value
    return out


def run_usage(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["usage", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def get(exporter, params: dict, auth: str | None = None) -> tuple[int, dict]:
    url = exporter.url + "/api/v1/usage-metrics?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if body.startswith(b"{") else {"body": body.decode()}


def test_usage_today_matches_the_exporter_gauges(usage_setup, capsys):
    exporter, prometheus = usage_setup
    code, out, err = run_usage(capsys, "--prometheus", prometheus.url, "--from", str(TODAY),
                               "--to", str(TODAY), "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    expected = gauges(exporter)
    assert len(expected) >= 3
    assert [t["tenant_id"] for t in report["tenants"]] == sorted(expected)
    for tenant in report["tenants"]:
        [day] = tenant["days"]
        assert day["date"] == str(TODAY)
        got = {**{f: day[f] for f in FIELDS if f != "llm_cost_usd"}, **tenant["limits"]}
        assert got == {f: int(v) for f, v in expected[tenant["tenant_id"]].items()}, \
            tenant["tenant_id"]
        assert tenant["totals"]["messages_in_count"] == day["messages_in_count"]
        assert tenant["peaks"]["agents_count"] == day["agents_count"]
    assert any(t["days"][0]["messages_in_count"] > 0 for t in report["tenants"])


def test_the_endpoint_answers_the_same_json(usage_setup, capsys):
    exporter, prometheus = usage_setup
    tenant = sorted(gauges(exporter))[0]
    start = str(TODAY - timedelta(days=0))
    code, out, _ = run_usage(capsys, "--prometheus", prometheus.url, "--tenant", tenant,
                             "--from", start, "--to", str(TODAY), "--format", "json")
    assert code == 0
    status, document = get(exporter, {"tenant_id": tenant, "start_date": start,
                                       "end_date": str(TODAY)})
    assert status == 200
    assert document == json.loads(out)
    assert [t["tenant_id"] for t in document["tenants"]] == [tenant]


def test_csv_and_table(usage_setup, capsys):
    exporter, prometheus = usage_setup
    code, out, _ = run_usage(capsys, "--prometheus", prometheus.url, "--from", str(TODAY),
                             "--to", str(TODAY), "--format", "csv")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split(",") == ["tenant_id", "date", *FIELDS, *LIMITS]
    assert len(rows) == len(gauges(exporter))
    code, out, _ = run_usage(capsys, "--prometheus", prometheus.url, "--from", str(TODAY),
                             "--to", str(TODAY))
    assert code == 0
    assert out.count("tenant ") == len(rows) and "limits: max_agents=" in out


def _days_ago(days: int) -> str:
    return str(TODAY - timedelta(days=days))


BAD_INPUT = [
    ({"tenant_id": "no-such-tenant", "start_date": str(TODAY), "end_date": str(TODAY)},
     "unknown tenant 'no-such-tenant'"),
    ({"start_date": "2024-13-01", "end_date": str(TODAY)},
     "start_date must be a date as YYYY-MM-DD, got '2024-13-01'"),
    ({"start_date": "yesterday", "end_date": str(TODAY)},
     "start_date must be a date as YYYY-MM-DD"),
    ({"start_date": str(TODAY), "end_date": _days_ago(1)},
     f"start_date {TODAY} is after end_date {_days_ago(1)}"),
    ({"start_date": _days_ago(RETENTION_DAYS), "end_date": str(TODAY)},
     f"start_date {_days_ago(RETENTION_DAYS)} is beyond the retention of Prometheus "
     f"({RETENTION_DAYS} days)"),
    ({"start_date": _days_ago(400), "end_date": str(TODAY)},
     "the range covers 401 days, more than a year (366 days)"),
    ({"start_date": str(TODAY), "end_date": str(TODAY + timedelta(days=1))},
     "is in the future"),
    ({"end_date": str(TODAY)}, "start_date is required, as YYYY-MM-DD"),
]


@pytest.mark.parametrize(("params", "message"), BAD_INPUT, ids=[m[:30] for _, m in BAD_INPUT])
def test_bad_input_gets_400_and_the_cli_exit_2(usage_setup, capsys, params, message):
    exporter, prometheus = usage_setup
    status, document = get(exporter, params)
    assert status == 400
    assert document["status"] == "error" and message in document["error"]
    argv = ["--prometheus", prometheus.url]
    for flag, key in (("--tenant", "tenant_id"), ("--from", "start_date"), ("--to", "end_date")):
        if key in params:
            argv += [flag, params[key]]
    if "start_date" in params:   # argparse itself requires --from
        code, out, err = run_usage(capsys, *argv)
        assert code == 2 and not out
        assert message in err and "Traceback" not in err


async def test_a_report_of_too_many_tenant_days_is_a_400_and_one_tenant_is_not(usage_setup):
    """The cap on tenants x days, and the report made off the loop: JSON bytes made on a daemon
    thread of its own (an in-process app, so that the thread can be seen)."""
    import threading

    from aiohttp.test_utils import TestClient, TestServer

    from vigil_exporter.app import make_app
    from vigil_exporter.config import load
    from vigil_exporter.usage import endpoint

    exporter, prometheus = usage_setup
    tenants = sorted(gauges(exporter))
    app = make_app(load(environ={}, overrides={
        "usage.prometheus_url": prometheus.url, "collectors.system.enabled": False,
        "collectors.business.enabled": False, "collectors.database.enabled": False}))
    app[endpoint.MAX_TENANT_DAYS] = 2 * len(tenants) - 1  # below the configurable minimum
    made_on = []
    report_json = endpoint.report_json
    endpoint.report_json = lambda *args: made_on.append(threading.current_thread()) or \
        report_json(*args)
    yesterday = {"start_date": _days_ago(1), "end_date": str(TODAY)}
    try:
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/api/v1/usage-metrics", params=yesterday)
            assert response.status == 400
            assert (await response.json())["error"] == (
                f"the report would hold {len(tenants)} tenants x 2 days = {2 * len(tenants)} "
                f"tenant-days, more than {2 * len(tenants) - 1} (usage.max_report_tenant_days): "
                "ask for one tenant (tenant_id) or for at most 1 days")
            response = await client.get("/api/v1/usage-metrics",
                                        params={**yesterday, "tenant_id": tenants[0]})
            assert response.status == 200 and response.content_type == "application/json"
            assert [t["tenant_id"] for t in (await response.json())["tenants"]] == tenants[:1]
    finally:
        endpoint.report_json = report_json
    assert [(t.name, t.daemon) for t in made_on] == [("vigil-usage-report", True)] * 2


def test_sigterm_does_not_wait_for_a_report_waiting_on_prometheus(start_exporter):
    """A Prometheus that accepts the connection and never answers, with a minute of timeout per
    query: SIGTERM stops the exporter after the 1 s grace of open requests and the collectors'
    close, well under the minute of a query (asyncio.run waited for the report's thread, a
    minute per query, when it ran on the default executor)."""
    import contextlib
    import http.client
    import signal
    import socket
    import threading
    import time

    from vigil_exporter.tools.stack.process import wait_until

    silent = socket.create_server(("127.0.0.1", 0))
    exporter = start_exporter({"web": {"shutdown_timeout": "1s"}, "usage": {
        "prometheus_url": f"http://127.0.0.1:{silent.getsockname()[1]}", "timeout": "60s"}},
        ready_path="/health/live")
    def ask():
        with contextlib.suppress(OSError, http.client.HTTPException):  # cut off by the stop
            get(exporter, {"start_date": str(TODAY), "end_date": str(TODAY)})
    asking = threading.Thread(target=ask, daemon=True)
    try:
        asking.start()
        silent.settimeout(30)
        connection, _ = silent.accept()  # the report now waits on its first query
        started = time.monotonic()
        exporter.process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: not exporter.running, timeout=30), "still running after 30 s"
        print(f"stopped in {time.monotonic() - started:.2f}s")
        assert time.monotonic() - started < 10.0
        connection.close()
    finally:
        silent.close()
        exporter.stop()


def test_auth_and_an_unreachable_prometheus(start_exporter, tmp_path, capsys):
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web_config = tmp_path / "web.yml"
    web_config.write_text(yaml.safe_dump({"basic_auth_users": {"portal": hashed}}))
    nowhere = f"http://127.0.0.1:{free_port()}"
    exporter = start_exporter({"usage": {"prometheus_url": nowhere, "timeout": "2s"}},
                              args=("--web.config.file", str(web_config)),
                              ready_path="/health/live")
    try:
        params = {"start_date": str(TODAY), "end_date": str(TODAY)}
        assert get(exporter, params)[0] == 401
        token = "Basic " + base64.b64encode(b"portal:s3cret").decode()
        status, document = get(exporter, params, auth=token)
        assert status == 503
        assert document["error"].startswith(f"cannot reach Prometheus at {nowhere}: ")
    finally:
        exporter.stop()
    code, _, err = run_usage(capsys, "--prometheus", nowhere, "--from", str(TODAY),
                             "--to", str(TODAY))
    assert code == 1 and f"cannot reach Prometheus at {nowhere}" in err


def test_without_a_prometheus_url_there_is_no_endpoint():
    from vigil_exporter.app import make_app
    from vigil_exporter.config import load

    app = make_app(load(environ={}))
    assert "/api/v1/usage-metrics" not in {r.resource.canonical for r in app.router.routes()}


def test_llm_cost_today_equals_the_increase_of_the_counters(live_stack):
    """job:llm_cost_usd:increase_today against the raw samples of llm_cost_usd_total: the sum
    over series of (value at the last step - first value), give or take the samples of one
    scrape that arrived after the step was evaluated."""
    api = PrometheusAPI(live_stack.urls["prometheus"])
    wait_for(lambda: api.query("job:llm_cost_usd:increase_today > 0")["result"], 90,
             what="LLM cost recorded today")
    at = datetime.now(timezone.utc).timestamp()
    if datetime.fromtimestamp(at - 3600, timezone.utc).date() != TODAY:
        pytest.skip("the stack may have started before midnight: today is not all its history")

    def raw(expr: str) -> list[dict]:
        return api.query(f"{expr}[1h]", at)["result"]

    [today] = raw('job:llm_cost_usd:increase_today{job="vigil-demo"}')
    rollup_at, rollup = float(today["values"][-1][0]), float(today["values"][-1][1])
    step_times = [float(t) for s in raw('job_day:llm_cost_usd:increase_step{job="vigil-demo"}')
                  for t, _ in s["values"] if float(t) <= rollup_at]
    last_step = max(step_times)
    # a step counts from one step back, and only for a series sampled by then: each series
    # is counted from its value one step before the first step that could see it
    low = high = 0.0
    step = parse_duration(bundle.evaluate_config()["usage"]["step"])  # the steps' group interval
    for series in raw('llm_cost_usd_total{job="vigil-demo"}'):
        values = [(float(t), float(v)) for t, v in series["values"]]
        assert all(b >= a for (_, a), (_, b) in zip(values, values[1:])), "a reset: not here"
        seen = [v for t, v in values if t <= last_step]
        if not seen:
            continue
        counted_from = min((s - step for s in step_times if s - step >= values[0][0]),
                           default=last_step)
        base = [v for t, v in values if t <= counted_from][-1] if counted_from >= values[0][0] \
            else values[0][1]
        high += seen[-1] - base
        low += (seen[-2] if len(seen) > 1 else seen[-1]) - base
    assert high > 0
    assert low - 1e-9 <= rollup <= high + 1e-9, (low, rollup, high)


def test_report_carries_the_llm_cost_per_tenant(live_stack, capsys):
    api = PrometheusAPI(live_stack.urls["prometheus"])
    wait_for(lambda: api.query("job_tenant:llm_cost_usd:increase_today > 0")["result"], 90,
             what="LLM cost per tenant recorded today")
    code, out, err = run_usage(capsys, "--prometheus", live_stack.urls["prometheus"],
                               "--from", str(TODAY), "--to", str(TODAY), "--format", "json")
    assert code == 0, err
    costs = {t["tenant_id"]: t["days"][0]["llm_cost_usd"] for t in json.loads(out)["tenants"]}
    assert any(cost and cost > 0 for cost in costs.values()), costs


def test_dates_are_checked_before_prometheus_is_asked():
    from vigil_exporter.usage.report import BadRequest, Request

    with pytest.raises(BadRequest, match="2024-02-30"):
        Request.parse("2024-02-30", "2024-03-01", today=date(2024, 3, 2))
    assert len(Request.parse("2024-01-01", "2024-12-31", today=date(2025, 1, 1)).days) == 366


# ---- 4. a report over past days, from history written into Prometheus ----------------------

HISTORY_DAYS = [TODAY - timedelta(days=n) for n in (3, 2, 1)]
QUARTER = 900   # the history's sample interval: 96 samples a UTC day
LABELS = {"job": "vigil", "instance": "vigil:9477"}


def _history() -> dict[tuple[str, tuple], list[tuple[float, float]]]:
    """(metric, labels) -> [(unix time, value)], every 15 minutes over HISTORY_DAYS.

    acme has the exporter's database counts of the day (`*_today`, back to 0 at each
    midnight) and its agents limit raised on the last day; globex has only the bundle's rollups
    of its counters and no sample at all on the middle day (its exporter was down)."""
    series: dict[tuple[str, tuple], list[tuple[float, float]]] = {}

    def add(metric, tenant, at, value, **extra):
        labels = tuple(sorted({**LABELS, "tenant": tenant, **extra}.items()))
        series.setdefault((metric, labels), []).append((at, value))

    for d, day in enumerate(HISTORY_DAYS):
        start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
        for q in range(96):
            at = start + q * QUARTER
            afternoon = int(q >= 48)
            add("vigil_tenant_agents", "acme", at, 10 + 2 * d + afternoon)
            add("vigil_tenant_agents_active", "acme", at, 5 + d)
            add("vigil_tenant_channels", "acme", at, 3 + d)
            add("vigil_tenant_channels_active", "acme", at, 2)
            add("vigil_tenant_storage_bytes", "acme", at, 1_000_000 + 100_000 * d + 1000 * q)
            add("vigil_tenant_messages_today", "acme", at, 3 * (q + 1) + d, direction="in")
            add("vigil_tenant_messages_today", "acme", at, 2 * (q + 1), direction="out")
            add("vigil_tenant_api_calls_today", "acme", at, 5 * (q + 1))
            add("job_tenant:llm_cost_usd:increase_today", "acme", at, 0.01 * (q + 1),
                job="vigil-demo", instance="demo:8080")
            add("vigil_tenant_agents_limit", "acme", at, 30 if d == 2 and afternoon else 20)
            for metric, limit in (("channels", 10), ("messages_per_day", 1000),
                                  ("api_calls_per_day", 2000), ("connections", 50)):
                add(f"vigil_tenant_{metric}_limit", "acme", at, limit)
            add("vigil_tenant_storage_limit_bytes", "acme", at, 5_000_000)
            if d == 1:
                continue
            add("vigil_tenant_agents", "globex", at, 4)
            add("vigil_tenant_agents_active", "globex", at, 1 + afternoon)
            add("vigil_tenant_channels", "globex", at, 2)
            add("vigil_tenant_channels_active", "globex", at, 1)
            add("vigil_tenant_storage_bytes", "globex", at, 200_000 + q)
            add("tenant:vigil_tenant_messages:increase_today", "globex", at, q + 1,
                direction="in")
            add("tenant:vigil_tenant_messages:increase_today", "globex", at, 2 * (q + 1),
                direction="out")
            add("tenant:vigil_tenant_api_calls:increase_today", "globex", at, 4 * (q + 1))
            add("job_tenant:llm_cost_usd:increase_today", "globex", at, 0.5 * (q + 1),
                job="vigil-demo", instance="demo:8080")
            for metric, limit in (("agents", 5), ("channels", 5), ("messages_per_day", 500),
                                  ("api_calls_per_day", 1000), ("connections", 10)):
                add(f"vigil_tenant_{metric}_limit", "globex", at, limit)
            add("vigil_tenant_storage_limit_bytes", "globex", at, 1_000_000)
    return series


# Report field -> the series it reads: the exporter's count of the day, else the rollup.
HISTORY_FIELDS = {
    "agents_count": [("vigil_tenant_agents", {})],
    "active_agents_count": [("vigil_tenant_agents_active", {})],
    "channels_count": [("vigil_tenant_channels", {})],
    "active_channels_count": [("vigil_tenant_channels_active", {})],
    "storage_used_bytes": [("vigil_tenant_storage_bytes", {})],
    "messages_in_count": [("vigil_tenant_messages_today", {"direction": "in"}),
                          ("tenant:vigil_tenant_messages:increase_today", {"direction": "in"})],
    "messages_out_count": [("vigil_tenant_messages_today", {"direction": "out"}),
                           ("tenant:vigil_tenant_messages:increase_today", {"direction": "out"})],
    "api_calls_count": [("vigil_tenant_api_calls_today", {}),
                        ("tenant:vigil_tenant_api_calls:increase_today", {})],
    "llm_cost_usd": [("job_tenant:llm_cost_usd:increase_today", {})],
    "max_agents": [("vigil_tenant_agents_limit", {})],
    "max_channels": [("vigil_tenant_channels_limit", {})],
    "max_messages_per_day": [("vigil_tenant_messages_per_day_limit", {})],
    "max_api_calls_per_day": [("vigil_tenant_api_calls_per_day_limit", {})],
    "max_storage_bytes": [("vigil_tenant_storage_limit_bytes", {})],
    "concurrent_connections": [("vigil_tenant_connections_limit", {})],
}


def _last_of_day(history, tenant: str, field: str, day: date) -> float | None:
    """The last sample of `field`'s first series that has one within the UTC day."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
    for metric, extra in HISTORY_FIELDS[field]:
        values = [value for (name, labels), points in history.items() if name == metric
                  and dict(labels)["tenant"] == tenant
                  and all(dict(labels).get(k) == v for k, v in extra.items())
                  for at, value in points if start <= at < start + 86400]
        if values:
            return values[-1]
    return None


@pytest.fixture(scope="module")
def history_prometheus(tmp_path_factory):
    """A Prometheus whose TSDB holds _history(), written with promtool before it starts."""
    history = _history()
    work = tmp_path_factory.mktemp("usage-history")
    lines = []
    for (metric, labels), points in history.items():
        selector = ",".join(f'{k}="{v}"' for k, v in labels)
        lines += [f"{metric}{{{selector}}} {value} {at:.0f}" for at, value in points]
    (work / "history.om").write_text("\n".join(lines) + "\n# EOF\n")
    prometheus = Prometheus("prometheus", work, free_port(),
                            config_text=lambda: "global: {scrape_interval: 15s}\n")
    (prometheus.dir / "data").mkdir(parents=True)
    done = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics",
                           str(work / "history.om"), str(prometheus.dir / "data")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    prometheus.start()
    try:
        yield prometheus, history
    finally:
        prometheus.stop()
        prometheus.cleanup()


def test_a_report_over_past_days_has_each_days_last_values(history_prometheus, capsys):
    prometheus, history = history_prometheus
    first, last = HISTORY_DAYS[0], HISTORY_DAYS[-1]
    code, out, err = run_usage(capsys, "--prometheus", prometheus.url, "--from", str(first),
                               "--to", str(last), "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["start_date"], report["end_date"]) == (str(first), str(last))
    assert [t["tenant_id"] for t in report["tenants"]] == ["acme", "globex"]
    for tenant in report["tenants"]:
        name = tenant["tenant_id"]
        assert [row["date"] for row in tenant["days"]] == [str(d) for d in HISTORY_DAYS]
        for row, day in zip(tenant["days"], HISTORY_DAYS):
            expected = {f: _last_of_day(history, name, f, day) for f in FIELDS}
            assert row == pytest.approx({"date": str(day), **expected}), (name, day)
        rows = tenant["days"]
        for field in ("messages_in_count", "messages_out_count", "api_calls_count",
                      "llm_cost_usd"):
            assert tenant["totals"][field] == pytest.approx(
                sum(r[field] for r in rows if r[field] is not None)), (name, field)
        for field in ("agents_count", "active_agents_count", "channels_count",
                      "active_channels_count", "storage_used_bytes"):
            assert tenant["peaks"][field] == max(r[field] for r in rows if r[field] is not None)
        assert tenant["limits"] == {f: _last_of_day(history, name, f, last) for f in LIMITS}
    acme, globex = report["tenants"]
    # the database's count of the day before its reset at midnight: 96 quarters of 3, plus d
    assert [r["messages_in_count"] for r in acme["days"]] == [288, 289, 290]
    assert acme["limits"]["max_agents"] == 30   # raised on the last afternoon
    # globex's counts come from the rollups; its exporter was down on the middle day
    assert [r["api_calls_count"] for r in globex["days"]] == [384, None, 384]
    assert set(globex["days"][1].values()) == {str(HISTORY_DAYS[1]), None}
    assert globex["totals"]["api_calls_count"] == 768


async def test_the_endpoint_answers_a_past_range_with_the_same_json(history_prometheus, capsys):
    from aiohttp.test_utils import TestClient, TestServer

    from vigil_exporter.app import make_app
    from vigil_exporter.config import load

    prometheus, _ = history_prometheus
    dates = {"start_date": str(HISTORY_DAYS[0]), "end_date": str(HISTORY_DAYS[-1])}
    code, out, _ = run_usage(capsys, "--prometheus", prometheus.url, "--tenant", "globex",
                             "--from", dates["start_date"], "--to", dates["end_date"],
                             "--format", "json")
    assert code == 0
    app = make_app(load(environ={}, overrides={
        "usage.prometheus_url": prometheus.url, "collectors.system.enabled": False,
        "collectors.business.enabled": False, "collectors.database.enabled": False}))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/api/v1/usage-metrics",
                                    params={**dates, "tenant_id": "globex"})
        assert response.status == 200
        assert await response.json() == json.loads(out)
    code, out, _ = run_usage(capsys, "--prometheus", prometheus.url, "--from",
                             dates["start_date"], "--to", dates["end_date"], "--format", "csv")
    assert code == 0
    rows = out.splitlines()[1:]
    assert [row.split(",")[:2] for row in rows] == [
        [tenant, str(day)] for tenant in ("acme", "globex") for day in HISTORY_DAYS]
    code, out, _ = run_usage(capsys, "--prometheus", prometheus.url, "--tenant", "acme", "--from",
                             dates["start_date"], "--to", dates["end_date"])
    assert code == 0
    # peaks of the levels, sums of the counts and the cost
    [total] = [line.split() for line in out.splitlines() if line.startswith("total ")]
    assert total == ["total", "15", "7", "5", "2", "1295000", "867", "576", "1440", "2.8800"]
