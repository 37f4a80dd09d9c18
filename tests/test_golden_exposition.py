"""Golden exposition: the exporter's whole `/metrics`, normalised, compared with the committed
tests/golden/exposition.txt (as node_exporter does with collector/fixtures/e2e-output.txt).

`vigil serve --demo` runs with every collector: the database collector on the embedded SQLite
default (which --demo fills with the demo data set) and on the session's PostgreSQL, the Redis
collector on the session's Redis with keys of fixed lengths, the business queries on the demo
data, system. Every family's HELP, TYPE, sample names and label names are compared, and label
values and values wherever a run gives the same ones on any machine (the demo data's business
figures, up, success, the configured intervals, key lengths, ...). A renamed family or label,
a changed HELP or TYPE, a lost or new family or a changed demo figure shows up as a diff.

Values that differ between runs or machines (durations, timestamps, system and process figures,
server-wide statistics of the shared servers) become `<varies>`, as do the label values that do
(versions, disks, interfaces); samples that become identical are listed once.

Regenerate it after an intended change, and review the diff:

    python -m pytest tests/test_golden_exposition.py --update-golden
"""
from __future__ import annotations

import difflib
import re
from datetime import datetime, timezone
from pathlib import Path

import redis
from prometheus_client.parser import text_string_to_metric_families

GOLDEN = Path(__file__).resolve().parent / "golden" / "exposition.txt"
UPDATE = "python -m pytest tests/test_golden_exposition.py --update-golden"
VARIES = "<varies>"
REDIS_DB = 9  # this module's own database on the shared server

# Samples whose values differ between runs or machines.
VARYING_VALUES = re.compile("|".join([
    r"process_\w+", r"python_gc_\w+",                      # prometheus-client's own
    r"\w+_duration_seconds", r"\w+_timestamp_seconds", r"vigil_start_time_seconds",
    r"vigil_system_\w+",                                   # the machine
    r"vigil_exposition_\w+",                               # sizes follow the values; renders
    # server-wide figures of the shared PostgreSQL and Redis (other tests use them too)
    r"vigil_db_(size_bytes|server_connections\w*|commits_total|rollbacks_total|deadlocks_total)",
    r"vigil_db_(blocks_\w+|temp_\w+|checkpoint\w*|wal_bytes_total|locks|sessions_waiting_on_lock"
    r"|oldest_\w+|table_\w+)",
    # the probe and the PostgreSQL features' round share the exporter's pool
    r"vigil_db_pool_checked_(out|in)",
    r"vigil_redis_(connected_clients|memory_used_bytes|memory_fragmentation_ratio|uptime_seconds"
    r"|commands_processed_total|keyspace_\w+|evicted_keys_total|expired_keys_total"
    r"|rejected_connections_total|db_keys|command_\w+|slowlog_\w+|replication_offset_bytes)",
]))
# Labels whose values differ between machines or runs.
VARYING_LABELS = {
    "version", "python_version", "major", "minor", "patchlevel",  # builds of Python, Redis, ...
    "server_version",                                             # SQLite's and PostgreSQL's
    "mountpoint", "device", "interface",                          # the machine's
    "application", "db",                      # other tests' connections and Redis databases
    "table",                                  # other tests' tables in the shared PostgreSQL
    "command",                                # the commands other tests sent to the shared Redis
}


def normalise(exposition: str) -> str:
    """Families sorted by name, each with HELP, TYPE and its samples (labels sorted), with what
    varies masked and the samples that then coincide listed once."""
    out = []
    for family in sorted(text_string_to_metric_families(exposition), key=lambda f: f.name):
        name = f"{family.name}_total" if family.type == "counter" else family.name
        out += [f"# HELP {name} {family.documentation}", f"# TYPE {name} {family.type}"]
        out += sorted({_sample(sample) for sample in family.samples})
    return "\n".join(out) + "\n"


def _sample(sample) -> str:
    labels = ",".join(f'{k}="{VARIES if k in VARYING_LABELS else v}"'
                      for k, v in sorted(sample.labels.items()))
    if VARYING_VALUES.fullmatch(sample.name):
        value = VARIES
    elif float(sample.value).is_integer():
        value = str(int(sample.value))
    else:
        value = repr(float(sample.value))
    return f"{sample.name}{{{labels}}} {value}" if labels else f"{sample.name} {value}"


def config(postgres_server, redis_server, alert_log: Path) -> dict:
    return {
        "alerts": {"log_file": str(alert_log)},
        "collectors": {
            "database": {"databases": {
                "main": {"url": "sqlite:///vigil.db"},  # the embedded default
                "pg": {"url": postgres_server.url}}},
            "redis": {"instances": {"cache": {
                "url": redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}",
                "keys": [{"key": "golden:queue", "type": "list"}, {"key": "golden:tags"},
                         {"key": "golden:missing", "type": "list"}]}}},
            "business": {"database": "main"},
        },
    }


def scrape(start_exporter, settings: dict) -> str:
    """One scrape of `vigil serve --demo` once its first round is done."""
    running = start_exporter(settings, seed=True)
    try:
        return running.text("/metrics")
    finally:
        running.stop()


def test_exposition_matches_the_golden_file(request, start_exporter, postgres_server,
                                            redis_server, tmp_path):
    client = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}")
    client.flushdb()
    client.rpush("golden:queue", "a", "b", "c")
    client.sadd("golden:tags", "x", "y")
    postgres_server.sql("CREATE TABLE IF NOT EXISTS golden_table (n int)")  # a table to report
    settings = config(postgres_server, redis_server, tmp_path / "alerts.jsonl")
    for _ in range(2):  # the demo data's "today" figures: again if UTC midnight fell in between
        day = datetime.now(timezone.utc).date()
        actual = normalise(scrape(start_exporter, settings))
        if datetime.now(timezone.utc).date() == day:
            break
    if request.config.getoption("--update-golden"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(actual)
        return
    expected = GOLDEN.read_text() if GOLDEN.exists() else ""
    diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                        "tests/golden/exposition.txt", "/metrics"))
    assert not diff, f"/metrics differs from the golden file (if intended: {UPDATE}):\n{diff}"


def test_normalise_masks_what_varies_and_keeps_the_rest():
    exposition = """\
# HELP vigil_db_up Whether the database answered.
# TYPE vigil_db_up gauge
vigil_db_up{database="main"} 1.0
# HELP vigil_system_network_receive_bytes_total Bytes received.
# TYPE vigil_system_network_receive_bytes_total counter
vigil_system_network_receive_bytes_total{interface="eth0"} 123.0
vigil_system_network_receive_bytes_total{interface="lo"} 456.0
# HELP vigil_tenant_storage_bytes Storage.
# TYPE vigil_tenant_storage_bytes gauge
vigil_tenant_storage_bytes{tenant="acme"} 0.5
"""
    assert normalise(exposition) == """\
# HELP vigil_db_up Whether the database answered.
# TYPE vigil_db_up gauge
vigil_db_up{database="main"} 1
# HELP vigil_system_network_receive_bytes_total Bytes received.
# TYPE vigil_system_network_receive_bytes_total counter
vigil_system_network_receive_bytes_total{interface="<varies>"} <varies>
# HELP vigil_tenant_storage_bytes Storage.
# TYPE vigil_tenant_storage_bytes gauge
vigil_tenant_storage_bytes{tenant="acme"} 0.5
"""
    renamed = exposition.replace('{database="main"}', '{db_name="main"}')
    assert 'vigil_db_up{db_name="main"} 1' in normalise(renamed)
