"""The Prometheus bundle against the live pieces: a real Prometheus, started from Debian's binary
with the bundle's own config (vigil_exporter.tools.bundle.local_prometheus_config via the local stack),
scrapes the real exporter and the demo service with traffic.

- every metric name that a rule reads is exposed by a target (no rule watches a name that
  nothing emits);
- every recording rule returns series;
- a real fault (Redis stopped) takes RedisDown through pending to firing.

The rules are the bundle's with one override, a short `for` of RedisDown, built the way a user
customises the bundle (`vigil bundle build --override`).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from vigil_exporter.tools import bundle, promql

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

DATA_TIMEOUT = 180  # the anomaly rules (2-minute season here) have series after about 3 minutes


def raw_inputs(groups: list[dict]) -> dict[str, set[str]]:
    """Recording rule name -> the raw metric names it reads, through other recording rules."""
    direct: dict[str, set[str]] = {}
    for group in groups:
        for rule in group["rules"]:
            if "record" in rule:
                direct.setdefault(rule["record"], set()).update(promql.metric_names_in(rule["expr"]))

    def resolve(name: str, seen: frozenset = frozenset()) -> set[str]:
        if name not in direct:
            return {name}
        if name in seen:
            return set()
        return set().union(*(resolve(n, seen | {name}) for n in direct[name]))

    return {name: resolve(name) for name in direct}


@pytest.fixture(scope="module")
def live(live_stack):
    return live_stack


# Names only a clustered Alertmanager exposes (the HA profile; test_alert_pipeline runs it).
ROOT = Path(__file__).resolve().parent.parent
HA_ONLY = {"alertmanager_cluster_members"}
# Only a replica, or a primary with one, has these; the live stack runs none. docs/metrics.md
# is generated against a real PostgreSQL and Redis replica pair (tools/docgen.py), and
# tests/test_collector_postgres.py and test_collector_redis_stats.py read them from one.
REPLICA_ONLY = {"vigil_db_replica_receiving", "vigil_db_replication_lag_seconds",
                "vigil_db_replication_slot_retained_wal_bytes", "vigil_redis_master_link_up",
                "vigil_redis_replica_lag_bytes"}


def _exposed_names(live) -> set[str]:
    data = live.get_json("prometheus", "/api/v1/label/__name__/values",
                         {"match[]": '{job=~"vigil|vigil-demo|prometheus|alertmanager"}'})
    return set(data["data"])


def test_every_metric_name_used_by_rules_is_exposed(live):
    used = bundle.metric_names_used_by_rules()
    wanted = {name for name in used if name != "up"} - HA_ONLY - REPLICA_ONLY  # `up`: Prometheus' own
    deadline = time.monotonic() + DATA_TIMEOUT
    while True:
        missing = sorted(wanted - _exposed_names(live))
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not missing, "rules read names no target exposes:\n" + "\n".join(
        f"  {name} (read by {', '.join(used[name])})" for name in missing)


def test_the_replica_only_names_are_in_the_reference_made_with_replicas():
    reference = (ROOT / "docs" / "metrics.md").read_text()
    assert REPLICA_ONLY <= set(bundle.metric_names_used_by_rules())
    assert not [name for name in sorted(REPLICA_ONLY) if f"`{name}`" not in reference]


def time_of_day_starts(groups: list[dict]) -> dict[str, int]:
    """Recording rule name -> the second of the UTC day from which it records (a projection of
    the day's quotas: none in its first hours), for the rules that say `vector(time()) % 86400 >= N`."""
    starts = {}
    for group in groups:
        for rule in group["rules"]:
            found = re.search(r"vector\(time\(\)\) % 86400 >= (\d+)", rule.get("expr", ""))
            if "record" in rule and found:
                starts[rule["record"]] = int(found.group(1))
    return starts


@pytest.mark.aged_live_stack  # the anomaly and forecast rules need minutes of history
def test_every_recording_rule_returns_series(live):
    groups = bundle.load_groups()
    # before its time of day a rule must record nothing; a minute after it, series
    now = time.time() % 86400
    early = {name for name, start in time_of_day_starts(groups).items() if now < start + 60}
    assert early <= set(raw_inputs(groups)), early
    for name in early:
        if time.time() % 86400 < time_of_day_starts(groups)[name]:
            assert not live.query(f"count({name})"), f"{name} records before its time of day"
    wanted = sorted(set(raw_inputs(groups)) - early)
    deadline = time.monotonic() + DATA_TIMEOUT
    while True:
        empty = [name for name in wanted if not live.query(f"count({name})")]
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not empty, f"recording rules without series: {empty}"


def _redis_down(live) -> list[str]:
    return [series["metric"]["alertstate"]
            for series in live.query('ALERTS{alertname="RedisDown"}')]


def test_stopping_redis_makes_redis_down_pending_then_firing(live):
    live.wait_for_query('vigil_redis_up == 1', timeout=30)
    assert _redis_down(live) == []
    live.redis.stop()
    try:
        states = []
        deadline = time.monotonic() + 60
        while "firing" not in states and time.monotonic() < deadline:
            state = _redis_down(live)
            if state and (not states or states[-1] != state[0]):
                states.append(state[0])
            time.sleep(0.25)
        assert states == ["pending", "firing"], states
        alert = live.query('ALERTS{alertname="RedisDown", alertstate="firing"}')[0]["metric"]
        assert alert["severity"] == "critical" and alert["area"] == "redis"
        assert alert["redis"] and alert["job"] == "vigil"
        # what Prometheus sends to Alertmanager carries the rendered annotations
        firing = [a for a in live.get_json("prometheus", "/api/v1/alerts")["data"]["alerts"]
                  if a["labels"]["alertname"] == "RedisDown"]
        assert firing and firing[0]["annotations"]["runbook_url"].endswith("#redisdown")
        assert "does not answer (up = 0)" in firing[0]["annotations"]["description"]
    finally:
        live.redis.start()
    live.wait_for_query('vigil_redis_up == 1', timeout=60)
    live.wait_for_query('ALERTS{alertname="RedisDown"}', predicate=lambda r: not r, timeout=30)
