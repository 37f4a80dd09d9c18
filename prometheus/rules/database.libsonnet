// Recording rules of the database area: the exporter's probes of each configured database and
// the SQLAlchemy pools of instrumented services.
local fmt = (import '../lib/format.libsonnet').fmt;
local rules = import '../lib/rules.libsonnet';

{
  prometheusRules+:: {
    local c = $._config,
    groups+: [{
      name: 'vigil-database.rules',
      rules: [
        {
          // Server connections (all states) as a share of max_connections (PostgreSQL).
          record: 'database:vigil_db_server_connections_usage:ratio',
          expr: fmt(|||
            sum without (state) (vigil_db_server_connections{%(exporterSelector)s})
              / (vigil_db_server_max_connections{%(exporterSelector)s} > 0)
          |||, c),
        },
        {
          // Connections checked out as a share of the pool size, for the exporter's own pool
          // of each `database` and for every pool (`pool`) of the instrumented services.
          record: 'pool:vigil_db_pool_usage:ratio',
          expr: fmt(|||
            vigil_db_pool_checked_out{%(exporterSelector)s}
              / (vigil_db_pool_size{%(exporterSelector)s} > 0)
            or
            vigil_db_pool_checked_out{%(serviceSelector)s}
              / (vigil_db_pool_size{%(serviceSelector)s} > 0)
          |||, c),
        },
        {
          // Share of block reads served by PostgreSQL's buffer cache.
          record: 'database:vigil_db_cache_hit:ratio_rate5m',
          expr: fmt(|||
            rate(vigil_db_blocks_hit_total{%(exporterSelector)s}[5m])
              / (rate(vigil_db_blocks_hit_total{%(exporterSelector)s}[5m])
                 + rate(vigil_db_blocks_read_total{%(exporterSelector)s}[5m]) > 0)
          |||, c),
        },
        {
          // Dead rows as a share of all rows of each of the largest tables (vacuum's backlog).
          record: 'table:vigil_db_table_dead_tuples:ratio',
          expr: fmt(|||
            vigil_db_table_dead_tuples{%(exporterSelector)s}
              / (vigil_db_table_dead_tuples{%(exporterSelector)s}
                 + vigil_db_table_live_tuples{%(exporterSelector)s} > 0)
          |||, c),
        },
      ] + rules.histogram(['job', 'pool', 'statement'], 'vigil_db_query_duration_seconds',
                          c.serviceSelector),
    }],
  },
}
