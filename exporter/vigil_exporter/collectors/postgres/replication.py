"""Replication, seen from both ends: on a primary, each replica's lag and state; on a replica,
whether it is in recovery, receiving and how far its replay lags; on both, the replication
slots and the WAL each one keeps.

A primary's `replay_lag` is measured only when a replica's replay moves: while replay is
stalled (paused, or waiting on a query that conflicts with it) it keeps its last value, a
fraction of a second, however long the stall lasts. So the exporter also remembers when the
server's WAL reached each position it saw (`WalClock`, one sample per round) and reports the
larger of the two: the time since the oldest WAL a replica has not replayed was written, at
least."""
from __future__ import annotations

import time
from collections import deque

from sqlalchemy import text

from vigil_exporter.collectors.families import Sample, Spec
from vigil_exporter.collectors.postgres.server import PostgresFeature, Server
from vigil_exporter.validation import Int

# The states of pg_stat_replication, each reported (0 or 1) so that a change is a value.
STATES = ("startup", "catchup", "streaming", "backup", "stopping")
# The position WAL is measured against: written on a primary, received on a replica.
HEAD = ("CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() "
        "ELSE pg_current_wal_lsn() END")

RECOVERY = text(
    "SELECT pg_is_in_recovery(), "
    "CASE WHEN pg_is_in_recovery() THEN "
    "pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) END, "
    "CASE WHEN NOT pg_is_in_recovery() THEN NULL "
    "WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END, "
    "CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END, "
    "CASE WHEN pg_is_in_recovery() THEN "
    "EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') END")
REPLICAS = text(
    "SELECT coalesce(nullif(application_name, ''), 'unnamed'), "
    "coalesce(host(client_addr), 'local'), state, "
    f"pg_wal_lsn_diff({HEAD}, replay_lsn), extract(epoch FROM replay_lag), "
    f"pg_wal_lsn_diff({HEAD}, '0/0'), pg_wal_lsn_diff(replay_lsn, '0/0') "
    "FROM pg_stat_replication ORDER BY 1, 2, pid LIMIT :limit")
SLOTS = text(
    f"SELECT slot_name, slot_type, active, coalesce(pg_wal_lsn_diff({HEAD}, restart_lsn), 0) "
    "FROM pg_replication_slots ORDER BY slot_name LIMIT :limit")

REPLICA = ("replica", "client_addr")


class WalClock:
    """When the server's WAL position passed each value, sampled once per round: how long ago
    the WAL after a replica's replay position was written, at least (the sample that first
    showed it is at most one round late)."""

    KEEP = 10_000  # samples: about 40 hours of 15 s rounds

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.samples: deque[tuple[float, float]] = deque(maxlen=self.KEEP)  # (when, position)

    def observe(self, head: float) -> None:
        if self.samples and head < self.samples[-1][1]:
            self.samples.clear()  # WAL went back: another server answers at this URL now
        if not self.samples or head > self.samples[-1][1]:
            self.samples.append((self.clock(), float(head)))

    def written_ago(self, replayed: float) -> float:
        """Seconds since the first sample beyond `replayed` (0: none is beyond it)."""
        first = next((when for when, head in self.samples if head > replayed), None)
        return 0.0 if first is None else self.clock() - first

    def forget_replayed(self, replayed: float) -> None:
        """Drop the samples every replica has replayed (the newest stays)."""
        while len(self.samples) > 1 and self.samples[1][1] <= replayed:
            self.samples.popleft()


class Replication(PostgresFeature):
    key = "replication"
    help = "replication: replicas' lag and state, replay on a replica, slots"
    fields = {
        "max_replicas": Int(10, "Replicas reported by a primary at most.", minimum=1),
        "max_slots": Int(20, "Replication slots reported at most.", minimum=1),
    }
    metrics = {
        "vigil_db_in_recovery": Spec("gauge", "1 on a replica (in recovery), 0 on a primary."),
        "vigil_db_replica_receiving": Spec(
            "gauge", "On a replica: 1 while its WAL receiver streams from the primary."),
        "vigil_db_replica_replay_paused": Spec(
            "gauge", "On a replica: 1 while replay is paused (pg_wal_replay_pause)."),
        "vigil_db_replica_replay_lag_bytes": Spec(
            "gauge", "On a replica: WAL received but not replayed yet."),
        "vigil_db_replica_replay_lag_seconds": Spec(
            "gauge", "On a replica: age of the last replayed transaction while WAL waits to "
                     "be replayed; 0 when replay has caught up."),
        "vigil_db_replication_lag_bytes": Spec(
            "gauge", "On a primary: WAL a replica has not replayed yet (pg_stat_replication).",
            REPLICA),
        "vigil_db_replication_lag_seconds": Spec(
            "gauge", "On a primary: how far behind a replica replays, the larger of its "
                     "replay_lag and the time since the oldest WAL it has not replayed was "
                     "written (0 when caught up).",
            REPLICA),
        "vigil_db_replication_state": Spec(
            "gauge", "On a primary: a replica's WAL sender state, 1 for the current one.",
            (*REPLICA, "state")),
        "vigil_db_replication_slot_retained_wal_bytes": Spec(
            "gauge", "WAL kept on disk for a replication slot (from its restart_lsn).",
            ("slot", "slot_type")),
        "vigil_db_replication_slot_active": Spec(
            "gauge", "1 while a consumer is connected to the replication slot.",
            ("slot", "slot_type")),
    }

    def __init__(self, config: dict):
        super().__init__(config)
        self.wal = WalClock()

    async def read(self, source: Server) -> list[Sample]:
        source.require_monitor("the replication statistics")
        recovery, replay_bytes, replay_seconds, paused, receiving = await source.row(RECOVERY)
        samples = [Sample("vigil_db_in_recovery", int(recovery))]
        if recovery:
            samples += [Sample("vigil_db_replica_receiving", int(receiving)),
                        Sample("vigil_db_replica_replay_paused", int(paused)),
                        Sample("vigil_db_replica_replay_lag_bytes", replay_bytes),
                        Sample("vigil_db_replica_replay_lag_seconds", replay_seconds)]
        replicas = await source.rows(REPLICAS, limit=self.config["max_replicas"])
        for name, addr, state, lag_bytes, lag_seconds in self._with_stalls(replicas):
            labels = (name, addr)
            samples += [Sample("vigil_db_replication_lag_bytes", lag_bytes, labels),
                        Sample("vigil_db_replication_lag_seconds", lag_seconds, labels)]
            samples += [Sample("vigil_db_replication_state", int(state == s), (*labels, s))
                        for s in STATES]
        for slot, kind, active, retained in await source.rows(
                SLOTS, limit=self.config["max_slots"]):
            samples += [Sample("vigil_db_replication_slot_retained_wal_bytes", retained,
                               (slot, kind)),
                        Sample("vigil_db_replication_slot_active", int(active), (slot, kind))]
        return samples

    def _with_stalls(self, replicas: list[tuple]) -> list[tuple]:
        """(name, addr, state, lag bytes, lag seconds) per replica, the seconds corrected for a
        stalled replay by the WAL clock."""
        if replicas and replicas[0][5] is not None:
            self.wal.observe(replicas[0][5])
        shown = []
        for name, addr, state, lag_bytes, lag_seconds, _, replayed in replicas:
            if lag_seconds is None and lag_bytes == 0:
                lag_seconds = 0  # replay_lag is NULL once an idle replica has caught up
            if replayed is not None and lag_bytes:
                lag_seconds = max(float(lag_seconds or 0), self.wal.written_ago(float(replayed)))
            shown.append((name, addr, state, lag_bytes, lag_seconds))
        positions = [float(row[6]) for row in replicas if row[6] is not None]
        if positions:
            self.wal.forget_replayed(min(positions))
        return shown
