"""A business query that sleeps past its timeout fails alone, on the server too, and never
holds up scrapes or the other queries."""
from __future__ import annotations

import time

import pytest

from vigil_exporter.tools.stack.components import sample_value


@pytest.fixture(scope="module")
def exporter_with_slow_query(postgres_server, start_exporter):
    config = {"collectors": {
        "system": {"enabled": False}, "redis": {"enabled": False},
        "database": {"interval": "5s", "databases": {"main": {"url": postgres_server.url}}},
        "business": {"default_queries": False, "queries": [
            {"name": "vigil_test_slow", "help": "Sleeps.", "interval": "2s", "timeout": "1s",
             "sql": "SELECT 1 AS value FROM pg_sleep(5)"},
            {"name": "vigil_test_fast", "help": "Answers.", "interval": "1s", "timeout": "1s",
             "sql": "SELECT 7 AS value"},
            {"name": "vigil_test_missing_table", "help": "Fails.", "interval": "1s",
             "sql": "SELECT count(*) AS value FROM no_such_table"},
        ]}}}
    running = start_exporter(config, ready_path="/health/live")
    yield running
    running.stop()


def test_slow_query_fails_alone_and_is_cancelled_on_the_server(exporter_with_slow_query,
                                                               postgres_server):
    running = exporter_with_slow_query
    running.wait_for("/health/ready", timeout=15)
    time.sleep(1.5)
    body = running.text()
    assert sample_value(body, "vigil_business_query_success", query="vigil_test_slow") == 0
    assert sample_value(body, "vigil_business_query_success", query="vigil_test_fast") == 1
    assert sample_value(body, "vigil_business_query_success",
                        query="vigil_test_missing_table") == 0
    assert sample_value(body, "vigil_test_fast") == 7
    assert sample_value(body, "vigil_test_slow") is None  # no stale value served as fresh
    # The timed-out statement must be gone from the server, not left sleeping.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        sleeping = postgres_server.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(5)%' "
            "AND pid <> pg_backend_pid() AND state = 'active'")
        if sleeping == 0:
            break
        time.sleep(0.1)
    assert sleeping == 0


def test_fast_query_keeps_its_schedule_and_scrapes_stay_fast(exporter_with_slow_query):
    running = exporter_with_slow_query
    running.wait_for("/health/ready", timeout=15)
    first = sample_value(running.text(), "vigil_business_query_last_success_timestamp_seconds",
                         query="vigil_test_fast")
    latencies = []
    end = time.monotonic() + 4
    while time.monotonic() < end:
        start = time.perf_counter()
        running.text()
        latencies.append(time.perf_counter() - start)
        time.sleep(0.02)
    last = sample_value(running.text(), "vigil_business_query_last_success_timestamp_seconds",
                        query="vigil_test_fast")
    assert last - first >= 2.5  # refreshed about every second while the slow one sleeps
    latencies.sort()
    assert latencies[int(len(latencies) * 0.99) - 1] < 0.05, latencies[-5:]


def test_ready_only_after_the_first_round(postgres_server, start_exporter):
    import json
    import urllib.error
    config = {"collectors": {
        "system": {"enabled": False}, "redis": {"enabled": False},
        "database": {"databases": {"main": {"url": postgres_server.url}}},
        "business": {"default_queries": False, "queries": [
            {"name": "vigil_test_first_round", "help": "Takes 3 s.", "timeout": "10s",
             "sql": "SELECT 1 AS value FROM pg_sleep(3)"}]}}}
    running = start_exporter(config, ready_path="/health/live")
    try:
        with pytest.raises(urllib.error.HTTPError) as starting:
            running.get("/health/ready")
        assert starting.value.code == 503
        assert json.loads(starting.value.read())["status"] == "starting"
        running.wait_for("/health/ready", timeout=15)
        assert sample_value(running.text(), "vigil_test_first_round") == 1
    finally:
        running.stop()
