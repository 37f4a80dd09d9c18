"""The local stack (`vigil_exporter.tools.stack.Stack`, `vigil stack up`) with real processes.

The session's live stack (with VictoriaMetrics: the `scale-out` shape) serves most tests; the HA
pair and the command line start their own. Intervals are 1s so that everything shows up within seconds.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from vigil_exporter.tools import bundle
from vigil_exporter.tools.stack import Stack, StackError, configs, values
from vigil_exporter.tools.stack.process import free_ports

ROOT = Path(__file__).resolve().parent.parent
FAST = dict(free_ports=True, scrape_interval="1s", evaluation_interval="1s",
            collector_interval="1s")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(live_stack):
    """The session's live stack (conftest.py): the `scale-out` shape with the demo service."""
    return live_stack


def test_every_component_is_healthy(stack):
    assert all(stack.health().values()), stack.health()
    assert stack.failed() == []
    expected = {"redis", "postgres", "exporter", "prometheus", "alertmanager", "victoriametrics"}
    expected |= {"demo"} if stack.demo else set()
    assert set(stack.components) == expected
    assert stack.warnings == []
    for name, url in stack.urls.items():
        assert f"127.0.0.1:{stack.ports[name]}" in url


def test_prometheus_scrapes_the_exporter(stack):
    result = stack.wait_for_query('vigil_build_info{job="vigil"}', timeout=30)
    assert result[0]["metric"]["version"]
    up = stack.wait_for_query("up == 1", lambda r: len(r) == len(stack.prometheus_config(
        "prometheus")["scrape_configs"]), timeout=30)
    jobs = {series["metric"]["job"] for series in up}
    assert {"vigil", "prometheus", "alertmanager", "victoriametrics"} <= jobs
    if stack.demo:
        assert "vigil-demo" in jobs
    # the exporter reaches the stack's own PostgreSQL and Redis
    stack.wait_for_query("vigil_db_up == 1", timeout=30)
    stack.wait_for_query("vigil_redis_up == 1", timeout=30)


def test_prometheus_sends_to_the_stack_alertmanager(stack):
    active = stack.get_json("prometheus", "/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
    assert [a["url"] for a in active] == [f"{stack.alertmanager.url}/api/v2/alerts"]
    # the Watchdog fires at once and reaches Alertmanager (the log receiver gets it)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alerts = stack.get_json("alertmanager", "/api/v2/alerts")
        if any(a["labels"]["alertname"] == "Watchdog" for a in alerts):
            break
        time.sleep(0.5)
    else:
        pytest.fail("Watchdog never reached Alertmanager")


def test_series_and_recording_rules_arrive_in_victoriametrics(stack):
    stack.wait_for_query('vigil_build_info{job="vigil"}', source="victoriametrics", timeout=30)
    # every recording rule that has a result in Prometheus can be queried in VictoriaMetrics
    recorded = sorted(bundle.recorded_names())
    selector = '{__name__=~"' + "|".join(recorded) + '"}'
    in_prometheus = stack.wait_for_query(f"count by (__name__) ({selector})", timeout=30)
    names = {series["metric"]["__name__"] for series in in_prometheus}
    assert "instance:vigil_system_memory_usage:ratio" in names

    def all_there(result):
        return names <= {series["metric"]["__name__"] for series in result}

    stack.wait_for_query(f"count by (__name__) ({selector})", all_there, timeout=30,
                         source="victoriametrics")
    ratio = stack.query("instance:vigil_system_memory_usage:ratio", source="victoriametrics")
    assert 0 < values(ratio)[0] < 1


def test_a_redis_outage_and_recovery(stack):
    stack.redis.stop()
    assert not stack.redis.running
    stack.wait_for_query("vigil_redis_up == 0", timeout=30)
    stack.redis.start()
    stack.wait_for_query("vigil_redis_up == 1", timeout=30)
    assert stack.health()["redis"]


def test_configs_are_the_bundle_files_with_local_addresses(stack):
    prometheus = stack.prometheus_config("prometheus")
    base = configs.load_yaml(bundle.prometheus_yml())
    assert prometheus["global"]["external_labels"] == base["global"]["external_labels"]
    assert prometheus["remote_write"][0]["url"] == \
        f"{stack.victoriametrics.url}/api/v1/write"
    exporter = configs.load_yaml(stack.exporter.config_path)
    assert exporter["collectors"]["database"]["databases"]["main"]["url"] == stack.postgres.url
    assert exporter["collectors"]["redis"]["instances"]["cache"]["url"] == stack.redis.url
    alertmanager = configs.load_yaml(stack.alertmanager.config_path)
    hooks = [h["url"] for r in alertmanager["receivers"] for h in r.get("webhook_configs", [])]
    assert hooks == [f"{stack.exporter.url}/alerts/webhook"]  # no sink given: only the log
    assert stack.postgres.sql("SELECT current_user, current_database()") == [("vigil", "vigil")]


def _replicas(result: list) -> list[str]:
    return sorted(series["metric"].get("replica", "") for series in result)


EXTERNAL_URLS = {"prometheus": "https://ops.example.com/prometheus",
                 "alertmanager": "https://ops.example.com/alertmanager"}


@pytest.fixture(scope="module")
def ha_stack():
    """The `ha` and `scale-out` shape behind a reverse proxy: two Prometheus servers alerting two
    clustered Alertmanagers, VictoriaMetrics, receivers at local sinks. External URLs with a
    sub-path; Prometheus as in compose (route prefix "/": the proxy strips the path), the
    Alertmanagers behind a proxy that passes the path on (route prefix = the path)."""
    with Stack(demo=False, prometheus_replicas=2, alertmanager_replicas=2, victoriametrics=True,
               alert_webhook="http://127.0.0.1:9/hook", alert_smtp="127.0.0.1:25",
               external_urls=EXTERNAL_URLS, route_prefixes={"alertmanager": "/alertmanager"},
               **FAST) as s:
        yield s


def test_behind_a_reverse_proxy_with_sub_path_external_urls(ha_stack):
    """Readiness, the APIs, alert delivery (the derived path_prefix) and the self-scrapes (the
    derived metrics_path) work in both proxy set-ups; links carry the external URL."""
    s = ha_stack
    prometheus, alertmanager = s.prometheus, s.alertmanager
    assert prometheus.url == f"http://{prometheus.address}"   # the path does not move routes
    assert prometheus.status("/-/ready") == 200
    flags = prometheus.get_json("/api/v1/status/flags")["data"]
    assert (flags["web.external-url"], flags["web.route-prefix"]) == (EXTERNAL_URLS["prometheus"], "/")
    assert alertmanager.url == f"http://{alertmanager.address}/alertmanager"
    assert alertmanager.status("/-/ready") == 200              # under its route prefix ...
    assert alertmanager.status("/api/v2/status") == 200
    with pytest.raises(urllib.error.HTTPError) as moved:       # ... and not at the root
        urllib.request.urlopen(f"http://{alertmanager.address}/api/v2/status", timeout=5)
    assert moved.value.code == 404
    assert s.prometheus_config()["alerting"]["alertmanagers"][0]["path_prefix"] == "/alertmanager"
    s.wait_for_query('up{job="alertmanager"} == 1', lambda r: len(r) == 2)
    s.wait_for_query('up{job="prometheus", replica="prometheus"} == 1')
    delivered = wait_for(lambda: [a for a in alertmanager.alerts()
                                  if a["labels"]["alertname"] == "Watchdog"], 30)
    assert delivered[0]["generatorURL"].startswith(
        (EXTERNAL_URLS["prometheus"] + "/graph?", s.components["prometheus-2"].url + "/graph?"))


def test_alert_sinks_and_the_ha_pair(ha_stack):
    """Both Prometheus servers alert both clustered Alertmanagers; receivers at local sinks.
    The replicas scrape each other, remote-write to VictoriaMetrics with their own series kept
    apart by `replica`, and the survivor sees a replica that stops (last: it stops one)."""
    s = ha_stack
    status = s.get_json("alertmanager-2", "/api/v2/status")["cluster"]
    assert sorted(p["address"] for p in status["peers"]) == sorted(
        am.cluster_address for am in s.alertmanagers)
    for replica in s.prometheis:
        active = s.get_json(replica.name, "/api/v1/alertmanagers")["data"]
        assert sorted(a["url"] for a in active["activeAlertmanagers"]) == sorted(
            f"{am.url}/api/v2/alerts" for am in s.alertmanagers)
        s.wait_for_query('vigil_build_info{job="vigil"}', source=replica.name, timeout=30)
    config = configs.load_yaml(s.alertmanager.config_path)
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["pager"]["webhook_configs"][0]["url"] == "http://127.0.0.1:9/hook"
    assert receivers["email-oncall"]["email_configs"][0]["smarthost"] == "127.0.0.1:25"
    done = subprocess.run(["amtool", "check-config", str(s.alertmanager.config_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

    pair = ["prometheus", "prometheus-2"]
    for replica in s.prometheis:
        up = s.wait_for_query('up{job="prometheus"} == 1', lambda r: len(r) == 2,
                              source=replica.name)
        assert _replicas(up) == pair
    # Both replicas write every series; each server's own stay apart in the store.
    stored = s.wait_for_query('count by (replica) (prometheus_build_info{job="prometheus"})',
                              lambda r: len(r) == 2, source="victoriametrics")
    assert _replicas(stored) == pair
    s.components["prometheus-2"].stop()
    down = s.wait_for_query('up{job="prometheus"} == 0', timeout=15)
    assert _replicas(down) == ["prometheus-2"]


def wait_for(fetch, timeout: float):
    """The first truthy result of `fetch()` within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := fetch()):
        assert time.monotonic() < deadline, f"nothing after {timeout:g}s"
        time.sleep(0.2)
    return result


def test_a_component_that_cannot_start_is_reported_with_its_log(tmp_path):
    stack = Stack(tmp_path, demo=False, free_ports=True,
                  extra_args={"prometheus": ["--no-such-flag"]})
    with pytest.raises(StackError, match=r"(?s)prometheus exited .*no-such-flag"):
        stack.start()
    assert stack.failed() == [] and not any(c.running for c in stack.components.values())


# --- the command line ----------------------------------------------------------------------------

def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def test_vigil_stack_up_prints_the_uis_and_stops_everything_on_ctrl_c(tmp_path):
    """The first hour: a relative --workdir and a site folder, from outside the checkout; the
    summary names the alert log and the `export` lines; `vigil alerts` and `vigil slo status`
    find the stack by its state file while it runs."""
    site = tmp_path / "site"   # a site folder as `bundle build --site` lays it out: the defaults
    shutil.copytree(ROOT / "prometheus" / "generated", site / "prometheus" / "generated")
    shutil.copytree(ROOT / "alertmanager", site / "alertmanager")
    env = _env(VIGIL_CHECKOUT=str(ROOT), VIGIL_STACK_STATE=str(tmp_path / "state.json"))
    proc = subprocess.Popen([sys.executable, "-m", "vigil_exporter", "stack", "up", "--free-ports",
                             "--no-demo", "--workdir", "stack", "--site", "site"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=tmp_path)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        output = "".join(lines)
        assert "Vigil stack is up" in output, output
        urls = {parts[0]: parts[1] for parts in (line.split() for line in lines)
                if len(parts) >= 2 and parts[1].startswith("http://")}
        assert set(urls) >= {"exporter", "prometheus", "alertmanager"}
        assert "Grafana is not started" in output
        assert f"Site: {site}" in output
        exports = dict(re.findall(r"^  export (\w+)=(\S+)$", output, re.M))
        assert exports["VIGIL_ALERTMANAGER_URL"] == urls["alertmanager"]
        assert exports["VIGIL_PROMETHEUS_URL"] == urls["prometheus"]
        assert exports["VIGIL_ALERT_LOG"] == str(tmp_path / "stack" / "exporter" / "alerts.jsonl")
        assert f"Alert log: {exports['VIGIL_ALERT_LOG']}\n" in output  # kept: no removal note
        with urllib.request.urlopen(urls["prometheus"] + "/-/ready", timeout=5) as response:
            assert response.status == 200
        def vigil(*command: str) -> str:
            done = subprocess.run([sys.executable, "-m", "vigil_exporter", *command], env=env,
                                  cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
            return done.stdout

        assert vigil("alerts", "test", "--duration", "2m").startswith(
            f"sent to {urls['alertmanager']}:")
        assert "VigilTestAlert" in vigil("alerts", "list")
        silence = vigil("alerts", "silence", "-m", "alertname=VigilTestAlert", "--comment", "t")
        assert vigil("alerts", "unsilence", "-m", "alertname=VigilTestAlert") == \
            f"expired {silence.strip()}\n"
        vigil("alerts", "log")   # the stack's alert log exists from the start
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 5
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    assert (tmp_path / "stack" / "logs" / "prometheus.log").exists()  # --workdir is kept
    assert not (tmp_path / "state.json").exists()


def test_vigil_stack_up_names_the_debian_package_of_a_missing_binary(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run([sys.executable, "-m", "vigil_exporter", "stack", "up", "--free-ports"],
                          capture_output=True, text=True, env=_env(PATH=str(empty)), timeout=60)
    assert done.returncode == 2
    for package in ("redis-server", "prometheus", "prometheus-alertmanager"):
        assert f"apt-get install {package}`" in done.stderr, done.stderr


def test_vigil_stack_up_refuses_busy_ports(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "vigil_exporter", "stack", "up", "--free-ports",
                               "--port", f"prometheus={port}"],
                              capture_output=True, text=True, env=_env(), timeout=60)
    assert done.returncode == 2
    assert f"prometheus {port}" in done.stderr


def test_free_ports_are_distinct():
    ports = free_ports(20)
    assert len(set(ports)) == 20


def test_the_state_file_is_a_default_below_flags_and_environment(tmp_path, monkeypatch):
    """`vigil alerts` and `vigil slo status`: a flag, else the environment, else the running
    stack's state file, else the built-in default; a file left by a dead stack is ignored."""
    from vigil_exporter.cli import build_parser
    from vigil_exporter.tools.stack import state

    monkeypatch.setenv("VIGIL_STACK_STATE", str(tmp_path / "state.json"))
    for name in ("VIGIL_ALERTMANAGER_URL", "VIGIL_ALERT_LOG", "VIGIL_PROMETHEUS_URL"):
        monkeypatch.delenv(name, raising=False)

    def parsed(*argv: str):
        return build_parser(argv[0]).parse_args(list(argv))

    assert parsed("alerts", "list").alertmanager == "http://127.0.0.1:9093"
    state.write({"alertmanager": "http://127.0.0.1:1", "alert_log": "/x/alerts.jsonl",
                 "prometheus": "http://127.0.0.1:2"})
    assert parsed("alerts", "list").alertmanager == "http://127.0.0.1:1"
    assert parsed("alerts", "log").file == "/x/alerts.jsonl"
    assert parsed("slo", "status").url == "http://127.0.0.1:2"
    assert parsed("usage", "--from", "2026-01-01", "--to", "2026-01-01").prometheus == \
        "http://127.0.0.1:2"
    assert parsed("alerts", "list", "--alertmanager", "http://a:3").alertmanager == "http://a:3"
    monkeypatch.setenv("VIGIL_ALERTMANAGER_URL", "http://b:4")
    assert parsed("alerts", "list").alertmanager == "http://b:4"
    state.clear()
    assert not (tmp_path / "state.json").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / "state.json").write_text(f'{{"pid": {dead}, "prometheus": "http://c:5"}}')
    assert parsed("slo", "status").url == "http://127.0.0.1:9090"
    # A pid reused by another process (this one) after the stack died: not the stack.
    state.write({"prometheus": "http://d:6"})
    recorded = json.loads((tmp_path / "state.json").read_text())
    (tmp_path / "state.json").write_text(json.dumps({**recorded, "started": recorded["started"] - 60}))
    assert parsed("slo", "status").url == "http://127.0.0.1:9090"
