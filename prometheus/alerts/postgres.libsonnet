// Alerts about what happens inside PostgreSQL, from the database collector's `postgres`
// features: replication, slots, long and idle transactions, lock waits, vacuum. Each is a cause
// and so a ticket (warning); the services' SLOs page for what users feel. Part of the
// `vigil-database` group (database.libsonnet): `alert` and `p` come from there.
local fmt = (import '../lib/format.libsonnet').fmt;
function(alert, p) [
  alert('DatabaseReplicationLagHigh', {
    // The primary's view (pg_stat_replication), per replica: needs only the primary to be
    // watched. A disconnected replica leaves this view: DatabaseReplicaDisconnected.
    severity: 'warning',
    expr: fmt('vigil_db_replication_lag_seconds{%(exporterSelector)s} > %(dbReplicationLagSeconds)s', p),
    summary: 'A PostgreSQL replica lags behind its primary.',
    description: fmt('Replica {{ $labels.replica }} ({{ $labels.client_addr }}) of database {{ $labels.database }} watched by {{ $labels.instance }} replays {{ $value | humanizeDuration }} behind the primary, above %(dbReplicationLagSecondsHuman)s.', p),
  }),
  alert('DatabaseReplicaDisconnected', {
    severity: 'warning',
    expr: fmt(|||
      vigil_db_replica_receiving{%(exporterSelector)s} == 0
      and on (job, instance, database) vigil_db_in_recovery{%(exporterSelector)s} == 1
    |||, p),
    summary: 'A PostgreSQL replica does not receive WAL from its primary.',
    description: 'Database {{ $labels.database }} watched by {{ $labels.instance }} is a replica whose WAL receiver is not streaming (receiving = {{ $value }}): it serves older and older data.',
  }),
  alert('DatabaseReplicationSlotRetainingWal', {
    severity: 'warning',
    expr: fmt('vigil_db_replication_slot_retained_wal_bytes{%(exporterSelector)s} > %(dbSlotRetainedWalBytes)s', p),
    summary: 'A replication slot keeps too much WAL on disk.',
    description: fmt('Replication slot {{ $labels.slot }} ({{ $labels.slot_type }}) of the server of database {{ $labels.database }} ({{ $labels.instance }}) retains {{ $value | humanize1024 }}B of WAL, above %(dbSlotRetainedWalBytesHuman)s: its consumer is gone or behind, and the disk fills.', p),
  }),
  alert('DatabaseLongTransaction', {
    severity: 'warning',
    expr: fmt('vigil_db_oldest_transaction_seconds{%(exporterSelector)s} > %(dbTransactionSeconds)s', p),
    summary: 'A PostgreSQL transaction has been open for long.',
    description: fmt('The oldest transaction on the server of database {{ $labels.database }} ({{ $labels.instance }}) has been open for {{ $value | humanizeDuration }}, above %(dbTransactionSecondsHuman)s: it holds back vacuum and may hold locks.', p),
  }),
  alert('DatabaseIdleInTransaction', {
    severity: 'warning',
    expr: fmt('vigil_db_oldest_idle_in_transaction_seconds{%(exporterSelector)s} > %(dbIdleInTransactionSeconds)s', p),
    summary: 'A PostgreSQL session sits idle inside a transaction.',
    description: fmt('A session on the server of database {{ $labels.database }} ({{ $labels.instance }}) has been idle in transaction for {{ $value | humanizeDuration }}, above %(dbIdleInTransactionSecondsHuman)s: an application opened a transaction and stopped talking.', p),
  }),
  alert('DatabaseSessionsBlockedOnLocks', {
    severity: 'warning',
    // The least over the window: a steady queue of waiters, not the brief waits of a busy
    // server sampled at a bad moment.
    expr: fmt('min_over_time(vigil_db_sessions_waiting_on_lock{%(exporterSelector)s}[%(dbLockWait)s]) >= %(dbSessionsWaitingOnLock)s', p),
    summary: 'PostgreSQL sessions keep waiting on locks.',
    description: fmt('At least {{ $value }} sessions on the server of database {{ $labels.database }} ({{ $labels.instance }}) have been waiting on a lock throughout the last %(dbLockWait)s.', p),
  }),
  alert('DatabaseVacuumFallingBehind', {
    severity: 'warning',
    expr: fmt(|||
      table:vigil_db_table_dead_tuples:ratio > %(dbDeadTupleRatio)s
      and on (job, instance, database, table) vigil_db_table_dead_tuples{%(exporterSelector)s} > %(dbDeadTuplesMin)s
      and on (job, instance, database, table) time() - vigil_db_table_last_vacuum_timestamp_seconds{%(exporterSelector)s} > %(dbVacuumAgeSeconds)s
    |||, p),
    summary: 'Vacuum does not keep up with a large table.',
    description: fmt('{{ $value | humanizePercentage }} of the rows of table {{ $labels.table }} in database {{ $labels.database }} ({{ $labels.instance }}) are dead (above %(dbDeadTupleRatioPct)s and %(dbDeadTuplesMin)s rows), and it has not been vacuumed for %(dbVacuumAgeSecondsHuman)s.', p),
  }),
]
