"""The running exporter: every family, conventions, negotiation, health, and outages."""
from __future__ import annotations

import gzip
import shutil
import socket
import subprocess
import sys
import time
import urllib.error

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vigil_exporter.tools.stack.components import sample_value

FAST = {"interval": "1s", "timeout": "2s"}


def full_config(postgres_server, redis_server, **business) -> dict:
    return {
        "collectors": {
            "system": FAST,
            # the shared test server does not preload pg_stat_statements (the compose one does)
            "database": {**FAST, "databases": {"main": {
                "url": postgres_server.url, "postgres": {"statements": {"enabled": False}}}}},
            "redis": {**FAST, "instances": {"cache": {
                "url": redis_server.url, "socket_timeout": "1s",
                "keys": [{"key": "queue:jobs"}]}}},
            "business": {"interval": "1s", "timeout": "2s", **business},
        },
    }


def family_names(exposition: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(exposition) for s in f.samples}


@pytest.fixture(scope="module")
def exporter(postgres_server, redis_server, start_exporter):
    from vigil_exporter import dbschema
    dbschema.create_schema(postgres_server.url)
    dbschema.load_demo_data(postgres_server.url)
    import redis
    redis.Redis.from_url(redis_server.url).rpush("queue:jobs", "a", "b", "c")
    running = start_exporter(full_config(postgres_server, redis_server))
    yield running
    running.stop()


EXPECTED_FAMILIES = [
    "vigil_build_info", "vigil_collector_success", "vigil_collector_duration_seconds",
    "vigil_collector_last_success_timestamp_seconds", "vigil_system_cpu_usage_ratio",
    "vigil_system_load1", "vigil_system_memory_usage_ratio", "vigil_system_disk_usage_ratio",
    "vigil_system_network_receive_bytes_total", "vigil_system_processes", "vigil_db_up",
    "vigil_db_pool_size", "vigil_db_server_connections", "vigil_db_server_max_connections",
    "vigil_db_size_bytes", "vigil_db_commits_total", "vigil_redis_up",
    "vigil_redis_memory_used_bytes", "vigil_redis_keyspace_hits_total", "vigil_redis_key_length",
    "vigil_business_users", "vigil_business_api_keys_active", "vigil_business_sessions_active",
    "vigil_tenant_agents", "vigil_tenant_agents_limit", "vigil_tenant_messages_total",
    "vigil_business_query_success", "process_resident_memory_bytes",
]


def test_every_family_is_served_with_plausible_values(exporter):
    body = exporter.text()
    missing = [name for name in EXPECTED_FAMILIES if name not in family_names(body)]
    assert not missing, missing
    assert sample_value(body, "vigil_db_up", database="main") == 1
    assert sample_value(body, "vigil_redis_up", redis="cache") == 1
    assert sample_value(body, "vigil_redis_key_length", redis="cache", key="queue:jobs") == 3
    assert 0 <= sample_value(body, "vigil_system_memory_usage_ratio") <= 1
    assert sample_value(body, "vigil_db_server_max_connections", database="main") == 50
    assert sample_value(body, "vigil_business_users") > 0
    assert sample_value(body, "vigil_collector_success", collector="redis") == 1


def test_promtool_check_metrics_is_clean(exporter):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed"
    result = subprocess.run([promtool, "check", "metrics"], input=exporter.text(),
                            capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), \
        result.stdout + result.stderr


def test_openmetrics_and_gzip_negotiation(exporter):
    with exporter.get("/metrics", headers={"Accept": "application/openmetrics-text; "
                                           "version=1.0.0,text/plain;version=0.0.4;q=0.5"}) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        assert r.read().decode().rstrip().endswith("# EOF")
    with exporter.get("/metrics", headers={"Accept-Encoding": "gzip"}) as r:
        assert r.headers["Content-Encoding"] == "gzip"
        assert b"vigil_build_info" in gzip.decompress(r.read())
    with exporter.get("/metrics", headers={"Accept": "text/plain"}) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "Content-Encoding" not in r.headers


def test_health_info_and_landing(exporter):
    import json
    health = json.loads(exporter.text("/health"))
    assert health["status"] == "healthy", health
    names = {c["name"]: c for c in health["checks"]}
    assert names["database:main"]["status"] == "ok"
    assert names["redis:cache"]["latency_seconds"] is not None
    info = json.loads(exporter.text("/info"))
    assert info["cpu"]["count"] >= 1 and info["memory"]["total_bytes"] > 0
    assert 'href="metrics"' in exporter.text("/")


def test_scrape_cost_does_not_depend_on_backends(exporter):
    durations = []
    for _ in range(50):
        start = time.perf_counter()
        exporter.text()
        durations.append(time.perf_counter() - start)
    assert sorted(durations)[len(durations) // 2] < 0.05


def test_redis_outage_is_a_metric_not_a_crash(postgres_server, redis_isolated, start_exporter):
    config = full_config(postgres_server, redis_isolated)
    config["collectors"]["business"]["enabled"] = False
    running = start_exporter(config)
    try:
        _wait_value(running, "vigil_redis_up", 1, redis="cache")
        redis_isolated.stop()
        _wait_value(running, "vigil_redis_up", 0, redis="cache")
        body = running.text()
        assert sample_value(body, "vigil_db_up", database="main") == 1
        assert sample_value(body, "vigil_collector_success", collector="redis") == 1
        redis_isolated.start()
        _wait_value(running, "vigil_redis_up", 1, redis="cache", timeout=15)
        assert "Traceback" not in running.log()
        # One line per cause, not one per retry (a loaded machine may add a collector's
        # "schedule failing" line when a run overruns its interval: not about Redis).
        causes = [line for line in running.log().splitlines()
                  if "failing" in line and "schedule failing" not in line]
        assert len(causes) <= 3, causes
    finally:
        running.stop()


def test_postgres_down_at_startup_then_recovers(postgres_isolated, redis_server, start_exporter):
    postgres_isolated.stop()
    config = full_config(postgres_isolated, redis_server)
    config["collectors"]["business"]["enabled"] = False
    running = start_exporter(config)
    try:
        _wait_value(running, "vigil_db_up", 0, database="main")
        with pytest.raises(urllib.error.HTTPError) as unhealthy:
            running.get("/health")
        assert unhealthy.value.code == 503
        postgres_isolated.start()
        _wait_value(running, "vigil_db_up", 1, database="main", timeout=15)
        running.wait_for("/health", status=200, timeout=20)
    finally:
        running.stop()


def test_silent_database_never_stalls_scrapes_or_shutdown(redis_server, start_exporter):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    config = {"collectors": {
        "system": {"enabled": False}, "redis": {"enabled": False},
        "business": {"enabled": False},
        "database": {**FAST, "databases": {"main": {
            "url": f"postgresql://vigil:hunter2secret@127.0.0.1:{port}/vigil"}}}}}
    running = start_exporter(config, ready_path="/health/live")
    try:
        time.sleep(2.5)
        worst = 0.0
        for _ in range(20):
            start = time.perf_counter()
            body = running.text()
            worst = max(worst, time.perf_counter() - start)
        assert worst < 0.1, worst
        assert sample_value(body, "vigil_db_up", database="main") in (0, None)
        stopping = time.monotonic()
        running.stop()
        assert time.monotonic() - stopping < 5
        assert running.process.returncode == 0
        assert "hunter2secret" not in running.log()
    finally:
        running.stop()
        silent.close()


def _wait_value(running, name, expected, timeout=10.0, **labels):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = sample_value(running.text(), name, **labels)
        if value == expected:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name}{labels} = {value}, expected {expected}\n{running.log()[-3000:]}")


def test_oversized_request_headers_are_refused(exporter):
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=5)
    connection.request("GET", "/metrics", headers={"X-Padding": "a" * 20000})
    assert connection.getresponse().status == 400
    connection.close()
    assert exporter.text("/health/live")  # and the exporter keeps serving


def test_vigil_metrics_serves_the_same_families_as_the_running_exporter(exporter, postgres_server,
                                                                         redis_server, tmp_path):
    """`vigil metrics` and `/metrics` are built by the same wiring: no family only one has."""
    import yaml
    config = tmp_path / "vigil.yml"
    config.write_text(yaml.safe_dump(full_config(postgres_server, redis_server)))
    result = subprocess.run([sys.executable, "-m", "vigil_exporter", "metrics", "--config",
                             str(config)], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert family_names(result.stdout) == family_names(exporter.text())
