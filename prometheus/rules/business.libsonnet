// Recording rules of the business area: tenant usage against subscription limits, and the
// per-tenant traffic rates with their one-week baselines for anomaly detection.
local limitUsage(resource, usage, limit, selector) = |||
  label_replace(
    %(usage)s
      / (%(limit)s{%(selector)s} > 0),
    "resource", "%(resource)s", "tenant", ".*"
  )
||| % { resource: resource, usage: usage % selector, limit: limit, selector: selector };

{
  prometheusRules+:: {
    local c = $._config,
    local sel = c.exporterSelector,
    groups+: [
      {
        name: 'vigil-tenants.rules',
        rules: [
          {
            // Usage over limit for every tenant and every limited resource, one series per
            // {tenant, resource}; tenants without a limit (0) have no series for it.
            record: 'tenant:vigil_tenant_limit_usage:ratio',
            expr: std.join('or\n', [
              limitUsage('agents', 'vigil_tenant_agents{%s}', 'vigil_tenant_agents_limit', sel),
              limitUsage('channels', 'vigil_tenant_channels{%s}', 'vigil_tenant_channels_limit', sel),
              limitUsage('messages_per_day', 'sum without (direction) (vigil_tenant_messages_today{%s})',
                         'vigil_tenant_messages_per_day_limit', sel),
              limitUsage('api_calls_per_day', 'vigil_tenant_api_calls_today{%s}',
                         'vigil_tenant_api_calls_per_day_limit', sel),
              limitUsage('storage', 'vigil_tenant_storage_bytes{%s}', 'vigil_tenant_storage_limit_bytes', sel),
              limitUsage('connections', 'vigil_tenant_connections{%s}', 'vigil_tenant_connections_limit', sel),
            ]),
          },
          {
            // Messages per second per tenant, both directions.
            record: 'tenant:vigil_tenant_messages:rate5m',
            expr: 'sum without (direction) (rate(vigil_tenant_messages_total{%s}[5m]))' % sel,
          },
          {
            record: 'tenant:vigil_tenant_api_calls:rate5m',
            expr: 'rate(vigil_tenant_api_calls_total{%s}[5m])' % sel,
          },
        ],
      },
      {
        // The one-week baselines read a week of samples: evaluated less often.
        name: 'vigil-tenants-baseline.rules',
        interval: c.slowRuleInterval,
        rules: [
          {
            record: 'tenant:vigil_tenant_%s:%s1w_rate5m' % [metric, op],
            expr: '%s_over_time(tenant:vigil_tenant_%s:rate5m[1w])' % [op, metric],
          }
          for metric in ['messages', 'api_calls']
          for op in ['avg', 'stddev']
        ],
      },
    ],
  },
}
