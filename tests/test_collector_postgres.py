"""The PostgreSQL features of the database collector against a real primary with
pg_stat_statements and its streaming replica (`postgres_pair`, made with pg_basebackup)."""
from __future__ import annotations

import asyncio
import threading

import psycopg
import pytest

from tests.test_collector_database import by_label, render, value
from vigil_exporter.collectors import features, postgres
from vigil_exporter.collectors.base import DEGRADED, OK
from vigil_exporter.collectors.database import DatabaseCollector
from vigil_exporter.collectors.postgres.statements import short_text
from vigil_exporter.validation import Errors

OFF = {key: {"enabled": False} for key in ("statements", "replication", "activity", "tables",
                                           "io")}


def make(url: str, **features_config) -> DatabaseCollector:
    errors = Errors()
    config = DatabaseCollector.config_schema.validate(
        {"databases": {"main": {"url": url, "postgres": features_config}}},
        "collectors.database", errors)
    assert not errors.faults, errors.faults
    return DatabaseCollector(config)


@pytest.fixture
async def collect():
    """`await collect(url, **features)`: one probe round and one features round; returns the
    families of the features round and the collector (closed at the end of the test)."""
    made = []

    async def run(url: str, **features_config):
        collector = make(url, **features_config)
        made.append(collector)
        await collector.collect()
        return await collector.collect_postgres(), collector
    yield run
    for collector in made:
        await collector.close()


def checks(collector) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.message) for c in collector.checks()}


def pair_url(server, database: str = "vigil", user: str = "vigil") -> str:
    return server.database_url(database).replace("vigil@", f"{user}@", 1)


def wait_for(check, timeout: float = 10.0):
    """Poll a condition that replication makes true within moments."""
    from vigil_exporter.tools.stack.process import wait_until
    result = wait_until(check, timeout, interval=0.05)
    assert result, "condition not reached"
    return result


async def test_primary_families(postgres_pair, collect):
    primary = postgres_pair.primary
    primary.sql("CREATE TABLE IF NOT EXISTS big_one (n int); CREATE TABLE IF NOT EXISTS small (n int); "
                "INSERT INTO big_one SELECT generate_series(1, 5000); "
                "DELETE FROM big_one WHERE n <= 1000")
    primary.sql("VACUUM ANALYZE big_one")
    primary.sql("DELETE FROM big_one WHERE n <= 2000")
    for _ in range(3):
        primary.sql("SELECT count(*) FROM big_one WHERE n > 42")
    # a sort beyond work_mem writes a temporary file; CHECKPOINT is a requested one
    primary.sql("SET work_mem = '64kB'; SELECT n FROM generate_series(1, 20000) n ORDER BY n DESC")
    primary.sql("CHECKPOINT")
    families, collector = await collect(primary.url, statements={"limit": 50},
                                        tables={"limit": 50})
    assert all(status == OK for status, _ in checks(collector).values()), checks(collector)
    db = {"database": "main"}

    infos = [s.labels for f in families for s in f.samples if s.name == "vigil_db_statement_info"]
    (mine,) = [i for i in infos if i["query"] == "SELECT count(*) FROM big_one WHERE n > $1"]
    assert value(families, "vigil_db_statement_calls_total", queryid=mine["queryid"], **db) >= 3
    assert value(families, "vigil_db_statement_time_seconds_total", queryid=mine["queryid"],
                 **db) > 0
    assert value(families, "vigil_db_statement_shared_blocks_hit_total",
                 queryid=mine["queryid"], **db) > 0
    assert value(families, "vigil_db_statement_rows_total", queryid=mine["queryid"], **db) >= 3
    assert value(families, "vigil_db_statement_shared_blocks_read_total",
                 queryid=mine["queryid"], **db) >= 0
    calls, total = (value(families, f"vigil_db_statement_{n}_total", queryid=mine["queryid"], **db)
                    for n in ("calls", "time_seconds"))
    assert value(families, "vigil_db_statement_mean_time_seconds", queryid=mine["queryid"],
                 **db) == pytest.approx(total / calls)

    tables = by_label(families, "vigil_db_table_dead_tuples", "table")
    assert tables["public.big_one"] >= 1000 and tables["public.small"] == 0
    assert value(families, "vigil_db_table_last_vacuum_timestamp_seconds",
                 table="public.big_one", **db) > 1.7e9
    assert value(families, "vigil_db_table_size_bytes", table="public.big_one", **db) > 8192
    assert value(families, "vigil_db_table_last_analyze_timestamp_seconds",
                 table="public.big_one", **db) > 1.7e9
    assert value(families, "vigil_db_table_vacuums_total", table="public.big_one", **db) >= 1
    assert value(families, "vigil_db_table_analyzes_total", table="public.big_one", **db) >= 1
    assert value(families, "vigil_db_table_live_tuples", table="public.big_one", **db) > 0

    assert value(families, "vigil_db_in_recovery", **db) == 0
    assert value(families, "vigil_db_replication_state", replica="replica",
                 client_addr="127.0.0.1", state="streaming", **db) == 1
    assert value(families, "vigil_db_replication_lag_bytes", replica="replica",
                 client_addr="127.0.0.1", **db) >= 0
    assert value(families, "vigil_db_locks", mode="AccessExclusiveLock", **db) == 0
    assert value(families, "vigil_db_sessions_waiting_on_lock", **db) == 0
    assert value(families, "vigil_db_blocks_hit_total", **db) > 0
    assert value(families, "vigil_db_wal_bytes_total", **db) > 0
    assert value(families, "vigil_db_checkpoints_total", kind="requested", **db) >= 1
    assert value(families, "vigil_db_checkpoints_total", kind="timed", **db) >= 0
    assert value(families, "vigil_db_checkpoint_buffers_written_total", **db) >= 0
    assert value(families, "vigil_db_temp_files_total", **db) >= 1
    assert value(families, "vigil_db_temp_bytes_total", **db) > 0
    assert value(families, "vigil_db_blocks_read_total", **db) >= 0
    assert "vigil_db_replica_replay_lag_bytes" not in render(families)  # a primary's
    # the replica's own slot (pg_basebackup -C)
    assert value(families, "vigil_db_replication_slot_active", slot="replica",
                 slot_type="physical", **db) == 1


async def test_slot_retains_wal(postgres_pair, collect):
    primary = postgres_pair.primary
    primary.sql("SELECT pg_create_physical_replication_slot('vigil_test', true) WHERE NOT EXISTS "
                "(SELECT 1 FROM pg_replication_slots WHERE slot_name = 'vigil_test')")
    try:
        primary.sql("CREATE TABLE IF NOT EXISTS wal_filler (t text); "
                    "INSERT INTO wal_filler SELECT repeat('x', 500) FROM generate_series(1, 2000)")
        families, _ = await collect(primary.url, **{**OFF, "replication": {}})
        slot = {"database": "main", "slot": "vigil_test", "slot_type": "physical"}
        assert value(families, "vigil_db_replication_slot_retained_wal_bytes", **slot) > 1_000_000
        assert value(families, "vigil_db_replication_slot_active", **slot) == 0
        bounded, _ = await collect(primary.url, **{**OFF, "replication": {"max_slots": 1}})
        assert by_label(bounded, "vigil_db_replication_slot_active", "slot") == {"replica": 1}
    finally:
        primary.sql("SELECT pg_drop_replication_slot('vigil_test')")


async def test_replicas_are_bounded(postgres_pair, collect, tmp_path):
    """A second WAL receiver (pg_receivewal) next to the replica: max_replicas keeps one."""
    import subprocess

    from vigil_exporter.tools.stack.process import find_binary
    primary = postgres_pair.primary
    receiver = subprocess.Popen([find_binary("pg_receivewal"), "-h", primary.host, "-p",
                                 str(primary.port), "-U", primary.user, "-D", str(tmp_path),
                                 "--no-loop", "--no-password"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: primary.scalar("SELECT count(*) FROM pg_stat_replication") == 2)
        every, _ = await collect(primary.url, **{**OFF, "replication": {}})
        bounded, _ = await collect(primary.url, **{**OFF, "replication": {"max_replicas": 1}})
    finally:
        receiver.terminate()
        receiver.wait(10)
    # (pg_receivewal replays nothing: no replay_lsn, so a state but no lag)
    assert set(by_label(every, "vigil_db_replication_state", "replica")) == {
        "pg_receivewal", "replica"}
    assert set(by_label(bounded, "vigil_db_replication_state", "replica")) == {"pg_receivewal"}


async def test_replica_lag_while_replay_is_paused(postgres_pair, collect):
    primary, replica = postgres_pair.primary, postgres_pair.replica
    only_replication = {**OFF, "replication": {}}
    primary.sql("CREATE TABLE IF NOT EXISTS lagging (n int)")
    wait_for(lambda: replica.sql("SELECT to_regclass('lagging')")[0][0])
    replica.sql("SELECT pg_wal_replay_pause()")
    try:
        primary.sql("INSERT INTO lagging SELECT generate_series(1, 20000)")
        wait_for(lambda: replica.scalar("SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
                                        "pg_last_wal_replay_lsn())") > 0)
        on_replica, collector = await collect(replica.url, **only_replication)
        on_primary, watching_primary = await collect(primary.url, **only_replication)
        # replay_lag freezes while replay stalls; the exporter's WAL clock keeps counting
        wal = watching_primary.targets[0].features.features[0].wal
        started = wal.clock()
        wal.clock = lambda: started + 600
        stalled = await watching_primary.collect_postgres()
    finally:
        replica.sql("SELECT pg_wal_replay_resume()")
    db = {"database": "main"}
    assert value(on_replica, "vigil_db_in_recovery", **db) == 1
    assert value(on_replica, "vigil_db_replica_receiving", **db) == 1
    assert value(on_replica, "vigil_db_replica_replay_paused", **db) == 1
    assert value(on_replica, "vigil_db_replica_replay_lag_bytes", **db) > 100_000
    assert value(on_replica, "vigil_db_replica_replay_lag_seconds", **db) > 0
    assert value(on_primary, "vigil_db_replication_lag_bytes", replica="replica",
                 client_addr="127.0.0.1", **db) > 100_000
    frozen = primary.scalar("SELECT extract(epoch FROM replay_lag) FROM pg_stat_replication")
    assert frozen is None or frozen < 600
    assert value(stalled, "vigil_db_replication_lag_seconds", replica="replica",
                 client_addr="127.0.0.1", **db) >= 600
    assert checks(collector)["database:main:replication"][0] == OK
    # resumed: the replica catches up and says so
    wait_for(lambda: replica.scalar("SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()"))
    caught_up, _ = await collect(replica.url, **only_replication)
    assert value(caught_up, "vigil_db_replica_replay_lag_bytes", **db) < 100_000
    assert value(caught_up, "vigil_db_replica_replay_paused", **db) == 0


async def test_lock_wait_and_old_transactions(postgres_pair, collect):
    primary = postgres_pair.primary
    primary.sql("CREATE TABLE IF NOT EXISTS contended (n int)")
    holder = psycopg.connect(primary.dsn)
    holder.execute("LOCK TABLE contended IN ACCESS EXCLUSIVE MODE")  # and stays idle in it
    waiter = psycopg.connect(primary.dsn, autocommit=True)
    blocked = threading.Thread(target=lambda: waiter.execute("SELECT * FROM contended"))
    blocked.start()
    try:
        wait_for(lambda: primary.scalar("SELECT count(*) FROM pg_stat_activity "
                                        "WHERE wait_event_type = 'Lock'") >= 1)
        await asyncio.sleep(0.05)  # transaction ages are measured in seconds: make them > 0
        families, _ = await collect(primary.url, **{**OFF, "activity": {}})
    finally:
        holder.rollback()
        blocked.join(10)
        holder.close()
        waiter.close()
    db = {"database": "main"}
    assert value(families, "vigil_db_sessions_waiting_on_lock", **db) == 1
    assert value(families, "vigil_db_locks", mode="AccessExclusiveLock", **db) >= 1
    assert value(families, "vigil_db_oldest_transaction_seconds", **db) > 0
    assert value(families, "vigil_db_oldest_idle_in_transaction_seconds", **db) > 0


async def test_missing_extension_is_not_available(postgres_pair, collect):
    primary = postgres_pair.primary
    if not primary.sql("SELECT 1 FROM pg_database WHERE datname = 'no_statements'"):
        primary.sql("CREATE DATABASE no_statements")
    families, collector = await collect(pair_url(primary, "no_statements"))
    status, message = checks(collector)["database:main:statements"]
    assert status == DEGRADED
    assert "CREATE EXTENSION pg_stat_statements" in message and "no_statements" in message
    assert checks(collector)["database:main:io"][0] == OK
    assert "vigil_db_statement_" not in render(families)
    assert "vigil_db_blocks_hit_total" in render(families)


async def test_role_without_pg_monitor_is_not_available(postgres_pair, collect):
    primary = postgres_pair.primary
    primary.sql("DO $$ BEGIN CREATE ROLE plain LOGIN; EXCEPTION WHEN duplicate_object THEN "
                "NULL; END $$")
    families, collector = await collect(pair_url(primary, user="plain"))
    found = checks(collector)
    for key in ("statements", "replication", "activity"):
        status, message = found[f"database:main:{key}"]
        assert status == DEGRADED and 'GRANT pg_monitor TO "plain"' in message, message
    assert found["database:main:tables"][0] == found["database:main:io"][0] == OK
    text = render(families)
    assert "vigil_db_replication_" not in text and "vigil_db_locks" not in text


async def test_extension_without_preload_is_not_retried_every_round(postgres_server, collect,
                                                                     monkeypatch):
    """pg_stat_statements created but not in shared_preload_libraries: the query fails with
    SQLSTATE 55000, which reads as not available, and is not sent again for a while."""
    if not postgres_server.sql("SELECT 1 FROM pg_database WHERE datname = 'no_preload'"):
        postgres_server.sql("CREATE DATABASE no_preload")
    postgres_server.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
                        database="no_preload")
    families, collector = await collect(postgres_server.database_url("no_preload"),
                                        **{**OFF, "statements": {}})
    status, message = checks(collector)["database:main:statements"]
    assert status == DEGRADED and "shared_preload_libraries" in message, message
    sent = []
    target = collector.targets[0]
    feature = target.features.features[0]
    monkeypatch.setattr(feature, "read", lambda source: sent.append(source))
    await collector.collect_postgres()
    assert sent == []  # within RETRY_AFTER: not asked again
    monkeypatch.setattr(target.features, "clock", lambda: 1e12)
    await collector.collect_postgres()
    assert len(sent) == 1


async def test_features_are_off_switchable_and_bounded(postgres_pair, collect):
    primary = postgres_pair.primary
    collector = make(primary.url, **OFF)
    assert [job.name for job in collector.jobs()] == ["database"]
    assert [c.name for c in collector.checks()] == ["database:main"]
    await collector.close()
    for i in range(4):
        primary.sql(f"SELECT {i} AS distinct_statement_{i}")
    families, _ = await collect(primary.url, **{**OFF, "statements": {"limit": 2}})
    assert len(by_label(families, "vigil_db_statement_calls_total", "queryid")) == 2
    assert len(by_label(families, "vigil_db_statement_info", "queryid")) == 2
    families, _ = await collect(primary.url, **{**OFF, "tables": {"limit": 1}})
    assert len(by_label(families, "vigil_db_table_dead_tuples", "table")) == 1


async def test_database_down_leaves_features_unread(collect):
    from vigil_exporter.tools.stack.process import free_port
    families, collector = await collect(f"postgresql://vigil@127.0.0.1:{free_port()}/vigil")
    assert families == []
    status, message = checks(collector)["database:main:statements"]
    assert status == DEGRADED and "down" in message


def test_wal_clock_dates_the_oldest_unreplayed_wal():
    from vigil_exporter.collectors.postgres.replication import WalClock
    now = [100.0]
    wal = WalClock(clock=lambda: now[0])
    for when, head in ((100, 1000), (115, 1000), (130, 5000), (145, 9000)):
        now[0] = when
        wal.observe(head)
    assert [head for _, head in wal.samples] == [1000, 5000, 9000]  # only when it moves
    now[0] = 160
    assert wal.written_ago(9000) == 0  # caught up with every sample
    assert wal.written_ago(4000) == 30  # WAL past 4000 was there at 130, not at 100
    assert wal.written_ago(500) == 60
    wal.forget_replayed(5000)
    assert [head for _, head in wal.samples] == [5000, 9000]
    assert wal.written_ago(6000) == 15
    wal.observe(300)  # a restored or new server at the same URL: its positions start lower
    assert [head for _, head in wal.samples] == [300]
    assert wal.written_ago(100) == 0


def test_short_text():
    assert short_text("SELECT  a,\n\t b FROM t", 40) == "SELECT a, b FROM t"
    assert short_text("SELECT " + "x, " * 50 + "y", 20) == "SELECT x, x, x, x..."
    assert len(short_text("SELECT " + "x, " * 50 + "y", 20)) == 20


def test_every_feature_declares_its_metrics_once():
    names = [name for cls in postgres.FEATURES for name in cls.metrics]
    assert len(names) == len(set(names)) == len(features.all_metrics(postgres.FEATURES))


def test_health_says_what_is_not_available(postgres_pair, start_exporter):
    """Through `vigil serve`: a role without pg_monitor and a database without the extension
    read "not available" with what to do, the exporter stays healthy enough to serve, and the
    features it can read are served."""
    primary = postgres_pair.primary
    primary.sql("DO $$ BEGIN CREATE ROLE plain LOGIN; EXCEPTION WHEN duplicate_object THEN "
                "NULL; END $$")
    exporter = start_exporter({"collectors": {
        "business": {"enabled": False}, "redis": {"enabled": False},
        "database": {"databases": {"app": {"url": pair_url(primary, user="plain")}}}}})
    try:
        health = {c["name"]: c for c in exporter.get_json("/health")["checks"]}
        metrics = exporter.text("/metrics")
    finally:
        exporter.stop()
    assert health["database:app"]["status"] == OK
    activity = health["database:app:activity"]
    assert activity["status"] == DEGRADED
    assert activity["message"].startswith("not available: ") and "GRANT pg_monitor" in activity["message"]
    assert health["collector:postgres"]["status"] == OK  # the round itself succeeds
    assert 'vigil_db_blocks_hit_total{database="app"}' in metrics
    assert "vigil_db_locks" not in metrics


async def test_every_feature_reads_through_asyncpg(postgres_pair, postgres_server, collect):
    """The same features through the other driver, and its errors recognised as well."""
    families, collector = await collect(
        postgres_pair.primary.url.replace("+psycopg", "+asyncpg"))
    assert all(status == OK for status, _ in checks(collector).values()), checks(collector)
    assert "vigil_db_statement_info" in render(families)
    if not postgres_server.sql("SELECT 1 FROM pg_database WHERE datname = 'no_preload'"):
        postgres_server.sql("CREATE DATABASE no_preload")
    postgres_server.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
                        database="no_preload")
    _, collector = await collect(
        postgres_server.database_url("no_preload").replace("+psycopg", "+asyncpg"),
        **{**OFF, "statements": {}})
    status, message = checks(collector)["database:main:statements"]
    assert status == DEGRADED and "shared_preload_libraries" in message, message
