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
  'Each database the exporter probes: availability, probe latency, the exporter pool against its size, PostgreSQL server connections against max_connections, size, commits and rollbacks.',
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
  ],
)
