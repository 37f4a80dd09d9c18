// The databases the exporter probes (collector `database`, label `database`).
local v = import 'lib/vigil.libsonnet';
local g = v.g;
local t = v.thresholds;

// Every query of this dashboard also carries the `database` variable. The exporter's pool
// gauges share their names with the instrumented services' pools (label `pool`), which have no
// `database` label and so stay out.
local sel(extra='') = v.sel('database=~"$database"' + (if extra == '' then '' else ', ' + extra));

v.dashboard(
  'database', 'Vigil / Database',
  'Each database the exporter probes: availability, probe latency, the exporter pool against its size, PostgreSQL server connections against max_connections, size, commits and rollbacks; for PostgreSQL the top statements, replication, old transactions and locks, vacuum and I/O.',
  jobMetric='vigil_db_up', jobSelector=v.selectors.exporter,
  variables=[g.variables.query('database', 'Database', 'label_values(vigil_db_up{job=~"$job", instance=~"$instance"}, database)')],
  items=[
    g.row('Availability'),
    g.stat('Up', 'Whether the last probe (connect and SELECT 1) succeeded, per database. DatabaseDown fires when it is 0.',
           'none', [g.target('vigil_db_up{%s}' % sel(), '{{database}}')],
           thresholds=[g.threshold(1, 'green')], base='red', graph=false, w=4,
           mappings=[{ type: 'value', options: { '0': { text: 'DOWN', color: 'red' }, '1': { text: 'UP', color: 'green' } } }],
           links=[v.runbook('DatabaseDown')]),
    g.stat('Probe latency', 'Round trip of SELECT 1 on the exporter connection. DatabaseProbeSlow fires above the red line.',
           's', [g.target('vigil_db_probe_duration_seconds{%s}' % sel(), '{{database}}')],
           thresholds=[g.threshold(t.dbProbeSeconds)], w=4, links=[v.runbook('DatabaseProbeSlow')]),
    g.stat('Server connections used', 'Server connections in every state as a share of max_connections (PostgreSQL). DatabaseConnectionsNearLimit fires above the red line.',
           'percentunit', [g.target('database:vigil_db_server_connections_usage:ratio{%s}' % sel(), '{{database}}')],
           thresholds=[g.threshold(t.dbConnectionsUsageRatio)], w=4, links=[v.runbook('DatabaseConnectionsNearLimit')]),
    g.stat('Size', 'Size of the database on disk (PostgreSQL: pg_database_size; SQLite: the file).',
           'bytes', [g.target('vigil_db_size_bytes{%s}' % sel(), '{{database}}')], w=4),
    g.table('Servers', 'Dialect and server version of each database, from vigil_db_info.', 'none',
            [g.target('vigil_db_info{%s}' % sel())], w=8, h=4,
            hide=['Value', 'job', 'instance'], columns={ database: 'Database', dialect: 'Dialect', server_version: 'Version' }),

    g.row('Exporter pool'),
    g.timeseries('Pool connections', "The exporter's own SQLAlchemy pool: connections checked out, idle in the pool and in overflow, against the pool size.",
                 'short', [
                   g.target('vigil_db_pool_checked_out{%s}' % sel(), 'checked out {{database}}'),
                   g.target('vigil_db_pool_checked_in{%s}' % sel(), 'idle {{database}}'),
                   g.target('vigil_db_pool_overflow{%s}' % sel(), 'overflow {{database}}'),
                   g.target('vigil_db_pool_size{%s}' % sel(), 'size {{database}}'),
                 ], w=12, min=0),
    g.timeseries('Pool use', 'Connections checked out as a share of the pool size. DatabasePoolExhausted fires above the dashed line.',
                 'percentunit', [g.target('pool:vigil_db_pool_usage:ratio{%s}' % sel(), '{{database}}')],
                 w=12, min=0, max=1, thresholds=[g.threshold(t.dbPoolUsageRatio)], links=[v.runbook('DatabasePoolExhausted')]),

    g.row('Server (PostgreSQL)'),
    g.timeseries('Server connections by state', "pg_stat_activity by state, stacked, against the server's max_connections.",
                 'short', [
                   g.target('sum by (database, state) (vigil_db_server_connections{%s})' % sel(), '{{state}} {{database}}'),
                   g.target('vigil_db_server_max_connections{%s}' % sel(), 'max_connections {{database}}'),
                 ], w=12, min=0,
                 overrides=[g.override('max_connections.*', { 'custom.stacking': { mode: 'none', group: 'B' }, 'custom.fillOpacity': 0, 'color': { mode: 'fixed', fixedColor: 'red' } })],
                 stack=true),
    g.timeseries('Server connections used', 'All server connections as a share of max_connections; the dashed line is the DatabaseConnectionsNearLimit threshold.',
                 'percentunit', [g.target('database:vigil_db_server_connections_usage:ratio{%s}' % sel(), '{{database}}')],
                 w=12, min=0, max=1, thresholds=[g.threshold(t.dbConnectionsUsageRatio)], links=[v.runbook('DatabaseConnectionsNearLimit')]),
    g.timeseries('Connections by application', 'Server connections by application_name (the largest ones; the rest are summed as "other").',
                 'short', [g.target('sum by (database, application) (vigil_db_server_connections_by_application{%s})' % sel(), '{{application}} {{database}}')],
                 w=12, min=0, stack=true),
    g.timeseries('Transactions', 'Commits, rollbacks and deadlocks per second.', 'ops', [
      g.target('sum by (database) (rate(vigil_db_commits_total{%s}[$__rate_interval]))' % sel(), 'commits {{database}}'),
      g.target('sum by (database) (rate(vigil_db_rollbacks_total{%s}[$__rate_interval]))' % sel(), 'rollbacks {{database}}'),
      g.target('sum by (database) (rate(vigil_db_deadlocks_total{%s}[$__rate_interval]))' % sel(), 'deadlocks {{database}}'),
    ], w=12, min=0),

    g.row('Latency and size'),
    g.timeseries('Probe and connect latency', 'SELECT 1 round trip and the time to open a connection; the dashed line is the DatabaseProbeSlow threshold.',
                 's', [
                   g.target('vigil_db_probe_duration_seconds{%s}' % sel(), 'probe {{database}}'),
                   g.target('vigil_db_connect_duration_seconds{%s}' % sel(), 'connect {{database}}'),
                 ], w=12, min=0, thresholds=[g.threshold(t.dbProbeSeconds)], links=[v.runbook('DatabaseProbeSlow')]),
    g.timeseries('Database size', 'Size on disk over time.', 'bytes',
                 [g.target('vigil_db_size_bytes{%s}' % sel(), '{{database}}')], w=12, min=0),

    // The collector's `postgres` features (docs/postgres-redis.md); empty where one is off or
    // not available (see /health).
    g.row('Top statements (pg_stat_statements)'),
    g.table('Top statements by time', 'The statements that took most execution time per second over the dashboard range, with their normalised text (vigil_db_statement_info).', 's',
            [g.target(|||
              topk(10, sum by (database, queryid) (rate(vigil_db_statement_time_seconds_total{%s}[$__range])))
                * on (database, queryid) group_left (query) max by (database, queryid, query) (vigil_db_statement_info{%s})
            ||| % [sel(), sel()], instant=true, format='table')],
            w=24, h=8, hide=['Time'], columns={ database: 'Database', queryid: 'queryid', query: 'Statement', Value: 'Seconds per second' }),
    g.timeseries('Statement time', 'Execution time per second of the top statements (by queryid; the table above has the text).', 's',
                 [g.target('topk(5, sum by (database, queryid) (rate(vigil_db_statement_time_seconds_total{%s}[$__rate_interval])))' % sel(), '{{queryid}} {{database}}')],
                 w=8, min=0, stack=true),
    g.timeseries('Statement calls', 'Calls per second of the top statements.', 'ops',
                 [g.target('topk(5, sum by (database, queryid) (rate(vigil_db_statement_calls_total{%s}[$__rate_interval])))' % sel(), '{{queryid}} {{database}}')],
                 w=8, min=0),
    g.timeseries('Statement mean time', 'Mean execution time of each top statement since its statistics began.', 's',
                 [g.target('topk(5, vigil_db_statement_mean_time_seconds{%s})' % sel(), '{{queryid}} {{database}}')],
                 w=8, min=0),

    g.row('Replication'),
    g.timeseries('Replication lag', "Seen from the primary, per replica (replay_lag, or the age of the oldest WAL not replayed when replay stalls), and on a watched replica (age of the last replayed transaction while WAL waits). DatabaseReplicationLagHigh fires above the dashed line.", 's', [
      g.target('vigil_db_replication_lag_seconds{%s}' % sel(), '{{replica}} ({{client_addr}}) of {{database}}'),
      g.target('vigil_db_replica_replay_lag_seconds{%s}' % sel(), 'replay on {{database}}'),
    ], w=8, min=0, thresholds=[g.threshold(t.dbReplicationLagSeconds)], links=[v.runbook('DatabaseReplicationLagHigh')]),
    g.timeseries('Replication lag in bytes', 'WAL a replica has not replayed yet, from the primary and on a replica.', 'bytes', [
      g.target('vigil_db_replication_lag_bytes{%s}' % sel(), '{{replica}} ({{client_addr}}) of {{database}}'),
      g.target('vigil_db_replica_replay_lag_bytes{%s}' % sel(), 'replay on {{database}}'),
    ], w=8, min=0),
    g.timeseries('WAL kept by replication slots', 'WAL each slot keeps on disk. DatabaseReplicationSlotRetainingWal fires above the dashed line.', 'bytes',
                 [g.target('vigil_db_replication_slot_retained_wal_bytes{%s}' % sel(), '{{slot}} ({{slot_type}}) {{database}}')],
                 w=8, min=0, thresholds=[g.threshold(t.dbSlotRetainedWalBytes)], links=[v.runbook('DatabaseReplicationSlotRetainingWal')]),

    g.row('Sessions and locks'),
    g.timeseries('Oldest transactions', 'Age of the oldest open transaction and time of the longest idle-in-transaction session. DatabaseLongTransaction and DatabaseIdleInTransaction fire above their dashed lines.', 's', [
      g.target('vigil_db_oldest_transaction_seconds{%s}' % sel(), 'open transaction {{database}}'),
      g.target('vigil_db_oldest_idle_in_transaction_seconds{%s}' % sel(), 'idle in transaction {{database}}'),
    ], w=8, min=0, thresholds=[g.threshold(t.dbIdleInTransactionSeconds, 'orange'), g.threshold(t.dbTransactionSeconds)],
                 links=[v.runbook('DatabaseLongTransaction'), v.runbook('DatabaseIdleInTransaction')]),
    g.timeseries('Sessions waiting on a lock', 'Client sessions waiting to acquire a lock. DatabaseSessionsBlockedOnLocks fires when at least the dashed line wait throughout %s.' % v.config.windows.dbLockWait, 'short',
                 [g.target('vigil_db_sessions_waiting_on_lock{%s}' % sel(), '{{database}}')],
                 w=8, min=0, thresholds=[g.threshold(t.dbSessionsWaitingOnLock)], links=[v.runbook('DatabaseSessionsBlockedOnLocks')]),
    g.timeseries('Locks by mode', 'Locks granted on the server by mode (pg_locks).', 'short',
                 [g.target('sum by (database, mode) (vigil_db_locks{%s})' % sel(), '{{mode}} {{database}}')], w=8, min=0, stack=true),

    g.row('Vacuum and I/O'),
    g.timeseries('Dead rows of the largest tables', 'Dead rows as a share of all rows. DatabaseVacuumFallingBehind fires above the dashed line when the table has enough dead rows and no vacuum for a while.', 'percentunit',
                 [g.target('table:vigil_db_table_dead_tuples:ratio{%s}' % sel(), '{{table}} {{database}}')],
                 w=8, min=0, max=1, thresholds=[g.threshold(t.dbDeadTupleRatio)], links=[v.runbook('DatabaseVacuumFallingBehind')]),
    g.timeseries('Time since the last vacuum', 'Since the last vacuum or autovacuum of each of the largest tables (tables never vacuumed are left out).', 's',
                 [g.target('time() - (vigil_db_table_last_vacuum_timestamp_seconds{%s} > 0)' % sel(), '{{table}} {{database}}')],
                 w=8, min=0, thresholds=[g.threshold(t.dbVacuumAgeSeconds)]),
    g.timeseries('Buffer cache hit ratio', 'Share of block reads found in shared buffers over 5 minutes.', 'percentunit',
                 [g.target('database:vigil_db_cache_hit:ratio_rate5m{%s}' % sel(), '{{database}}')], w=8, min=0, max=1),
    g.timeseries('WAL and temporary files', 'WAL generated and bytes written to temporary files (sorts and hashes beyond work_mem), per second.', 'Bps', [
      g.target('sum by (database) (rate(vigil_db_wal_bytes_total{%s}[$__rate_interval]))' % sel(), 'WAL {{database}}'),
      g.target('sum by (database) (rate(vigil_db_temp_bytes_total{%s}[$__rate_interval]))' % sel(), 'temporary files {{database}}'),
    ], w=12, min=0),
    g.timeseries('Checkpoints', 'Checkpoints per minute, timed (checkpoint_timeout) and requested (WAL reached max_wal_size: raise it if these dominate).', 'short',
                 [g.target('sum by (database, kind) (rate(vigil_db_checkpoints_total{%s}[$__rate_interval])) * 60' % sel(), '{{kind}} {{database}}')],
                 w=12, min=0),
  ],
)
