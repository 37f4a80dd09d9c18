// Alerts about the databases the exporter probes and the connection pools of the services.
local fmt = (import '../lib/format.libsonnet').fmt;
local lib = import '../lib/alert.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local p = lib.params(c),
    local alert(name, spec) = lib.alert(c, name, spec { area: 'database' }),
    groups+: [{
      name: 'vigil-database',
      rules: [
        alert('DatabaseDown', {
          severity: 'critical',
          // The last probe within probeMemory: an exporter restart during the outage (no
          // series for a few scrapes) keeps the page open instead of resolving and re-paging;
          // the first successful probe resolves it.
          expr: fmt('last_over_time(vigil_db_up{%(exporterSelector)s}[%(probeMemory)s]) == 0', p),
          summary: 'A database does not answer.',
          description: 'Database {{ $labels.database }} probed by {{ $labels.instance }} does not answer its probe query (up = {{ $value }}).',
        }),
        alert('DatabaseConnectionsNearLimit', {
          severity: 'warning',
          expr: fmt('database:vigil_db_server_connections_usage:ratio > %(dbConnectionsUsageRatio)s', p),
          summary: 'Database connections are near max_connections.',
          description: fmt('Database {{ $labels.database }} probed by {{ $labels.instance }} uses {{ $value | humanizePercentage }} of max_connections, above %(dbConnectionsUsageRatioPct)s.', p),
        }),
        alert('DatabaseConnectionsAtLimit', {
          // The critical tier: new connections are about to be refused.
          severity: 'critical',
          expr: fmt('database:vigil_db_server_connections_usage:ratio > %(dbConnectionsCriticalRatio)s', p),
          summary: 'Database connections are at max_connections.',
          description: fmt('Database {{ $labels.database }} probed by {{ $labels.instance }} uses {{ $value | humanizePercentage }} of max_connections, above %(dbConnectionsCriticalRatioPct)s: new connections are about to be refused.', p),
        }),
        alert('DatabaseDeadlocks', {
          severity: 'warning',
          expr: fmt('increase(vigil_db_deadlocks_total{%(exporterSelector)s}[%(deadlocks)s]) > %(dbDeadlocks)s', p),
          summary: 'Transactions deadlock.',
          description: fmt('Database {{ $labels.database }} probed by {{ $labels.instance }} detected {{ $value | humanize }} deadlocks in the last %(deadlocks)s, more than %(dbDeadlocks)s.', p),
        }),
        alert('DatabaseRollbackRatioHigh', {
          severity: 'warning',
          expr: fmt(|||
            rate(vigil_db_rollbacks_total{%(exporterSelector)s}[%(dbRollbacks)s])
              / (rate(vigil_db_rollbacks_total{%(exporterSelector)s}[%(dbRollbacks)s]) + rate(vigil_db_commits_total{%(exporterSelector)s}[%(dbRollbacks)s]))
              > %(dbRollbackRatio)s
            and on (job, instance, database)
              rate(vigil_db_rollbacks_total{%(exporterSelector)s}[%(dbRollbacks)s]) + rate(vigil_db_commits_total{%(exporterSelector)s}[%(dbRollbacks)s])
              >= %(dbMinTransactionsPerSecond)s
          |||, p),
          summary: 'Many transactions roll back.',
          description: fmt('{{ $value | humanizePercentage }} of the transactions of database {{ $labels.database }} probed by {{ $labels.instance }} rolled back over the last %(dbRollbacks)s, above %(dbRollbackRatioPct)s.', p),
        }),
        alert('DatabasePoolExhausted', {
          // Both the exporter's pools (label database) and the services' pools (label pool).
          severity: 'warning',
          expr: fmt('pool:vigil_db_pool_usage:ratio > %(dbPoolUsageRatio)s', p),
          summary: 'A database connection pool is nearly exhausted.',
          description: fmt('Connection pool {{ with $labels.pool }}{{ . }}{{ else }}{{ $labels.database }}{{ end }} of {{ $labels.instance }} (job {{ $labels.job }}) has {{ $value | humanizePercentage }} of its connections checked out, above %(dbPoolUsageRatioPct)s.', p),
        }),
        alert('DatabaseProbeSlow', {
          severity: 'warning',
          // The median over a window: one fast probe among slow ones does not reset `for`,
          // one slow probe among fast ones does not start it.
          expr: fmt(|||
            quantile_over_time(0.5, vigil_db_probe_duration_seconds{%(exporterSelector)s}[%(dbProbeSlow)s]) > %(dbProbeSeconds)s
            and on (job, instance, database) vigil_db_up{%(exporterSelector)s} == 1
          |||, p),
          summary: 'A database answers slowly.',
          description: fmt('The median probe query of database {{ $labels.database }} from {{ $labels.instance }} over the last %(dbProbeSlow)s took {{ $value | humanizeDuration }}, above %(dbProbeSeconds)ss.', p),
        }),
      ] + (import 'postgres.libsonnet')(alert, p),
    }],
  },
}
