// Recording rules of the business area: tenant usage against subscription limits, and the
// per-tenant traffic rates with their seasonal baselines for anomaly detection.
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
    local rates = {
      messages: 'sum without (direction) (rate(vigil_tenant_messages_total{%s}[1h]))' % sel,
      api_calls: 'rate(vigil_tenant_api_calls_total{%s}[1h])' % sel,
    },
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
        // The seasonal baselines of the anomaly alerts, from hourly rates sampled every
        // tenantBaselineInterval (a week is 2,016 samples per tenant, not 40,320 rate5m ones):
        //   rate1h                    traffic over the last hour
        //   change1w_rate1h           minus the same hour one season (anomalySeason) earlier:
        //                             daily and weekly shapes cancel out
        //   avg1w_/stddev1w_change... how that change usually moves over anomalyBaseline
        name: 'vigil-tenants-baseline.rules',
        interval: c.tenantBaselineInterval,
        rules: std.flattenArrays([
          [
            {
              record: 'tenant:vigil_tenant_%s:rate1h' % metric,
              expr: rates[metric],
            },
            {
              record: 'tenant:vigil_tenant_%s:change1w_rate1h' % metric,
              expr: |||
                tenant:vigil_tenant_%(m)s:rate1h
                  - tenant:vigil_tenant_%(m)s:rate1h offset %(season)s
              ||| % { m: metric, season: c.windows.anomalySeason },
            },
          ] + [
            {
              record: 'tenant:vigil_tenant_%s:%s1w_change1w_rate1h' % [metric, op],
              expr: '%s_over_time(tenant:vigil_tenant_%s:change1w_rate1h[%s])'
                    % [op, metric, c.windows.anomalyBaseline],
            }
            for op in ['avg', 'stddev']
          ]
          for metric in ['messages', 'api_calls']
        ]),
      },
    ],
  },
}
