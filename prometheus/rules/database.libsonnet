// Recording rules of the database area: the exporter's probes of each configured database and
// the SQLAlchemy pools of instrumented services.
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
          expr: |||
            sum without (state) (vigil_db_server_connections{%(exporterSelector)s})
              / (vigil_db_server_max_connections{%(exporterSelector)s} > 0)
          ||| % c,
        },
        {
          // Connections checked out as a share of the pool size, for the exporter's own pool
          // of each `database` and for every pool (`pool`) of the instrumented services.
          record: 'pool:vigil_db_pool_usage:ratio',
          expr: |||
            vigil_db_pool_checked_out{%(exporterSelector)s}
              / (vigil_db_pool_size{%(exporterSelector)s} > 0)
            or
            vigil_db_pool_checked_out{%(serviceSelector)s}
              / (vigil_db_pool_size{%(serviceSelector)s} > 0)
          ||| % c,
        },
      ] + rules.histogram(['job', 'pool', 'statement'], 'vigil_db_query_duration_seconds',
                          c.serviceSelector),
    }],
  },
}
