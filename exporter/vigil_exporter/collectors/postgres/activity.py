"""What sessions are doing to each other: locks held by mode, sessions waiting on a lock, the
oldest running transaction and the oldest session idle in a transaction (the two that hold
back vacuum and keep locks)."""
from __future__ import annotations

from sqlalchemy import text

from vigil_exporter.collectors.families import Sample, Spec
from vigil_exporter.collectors.postgres.server import PostgresFeature, Server

# Table-level lock modes, always reported (0 when none is held) so that series stay put.
LOCK_MODES = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock",
              "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")

LOCKS = text("SELECT mode, count(*) FROM pg_locks WHERE granted GROUP BY mode")
SESSIONS = text(
    "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), "
    "coalesce(extract(epoch FROM max(now() - xact_start)), 0), "
    "coalesce(extract(epoch FROM max(now() - state_change) "
    "FILTER (WHERE state LIKE 'idle in transaction%')), 0) "
    "FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")


class Activity(PostgresFeature):
    key = "activity"
    help = "locks by mode, sessions waiting on a lock and the oldest transactions"
    metrics = {
        "vigil_db_locks": Spec("gauge", "Locks granted on the server, by mode (pg_locks).",
                               ("mode",)),
        "vigil_db_sessions_waiting_on_lock": Spec(
            "gauge", "Client sessions waiting to acquire a lock."),
        "vigil_db_oldest_transaction_seconds": Spec(
            "gauge", "Age of the oldest open transaction of a client session (0: none)."),
        "vigil_db_oldest_idle_in_transaction_seconds": Spec(
            "gauge", "Time the longest idle-in-transaction session has been idle (0: none)."),
    }

    async def read(self, source: Server) -> list[Sample]:
        source.require_monitor("the state of sessions")
        held = dict.fromkeys(LOCK_MODES, 0)
        held.update(dict(await source.rows(LOCKS)))
        waiting, oldest, idle = await source.row(SESSIONS)
        return [*(Sample("vigil_db_locks", count, (mode,)) for mode, count in held.items()),
                Sample("vigil_db_sessions_waiting_on_lock", waiting),
                Sample("vigil_db_oldest_transaction_seconds", oldest),
                Sample("vigil_db_oldest_idle_in_transaction_seconds", idle)]
