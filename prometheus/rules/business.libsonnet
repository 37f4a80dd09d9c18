// Recording rules of the business area: tenant usage against subscription limits (the daily
// quotas from the rollups of usage.libsonnet), the forecasts of when a limit is reached, and
// the per-tenant traffic rates with their seasonal baselines for anomaly detection.
local fmt = (import '../lib/format.libsonnet').fmt;
local limitUsage(resource, usage, limit, selector) = fmt(|||
  label_replace(
    %(usage)s
      / (%(limit)s{%(selector)s} > 0),
    "resource", "%(resource)s", "tenant", ".*"
  )
|||, { resource: resource, usage: std.strReplace(usage, '%s', selector), limit: limit, selector: selector });

// Usage of a day: the exporter's own "today" gauge, counted by the database, where the business
// queries have one (exact from the first scrape on); the rollup of the counters otherwise.
local dailyCount(gauge, rollup) = fmt('(%s or %s)', [gauge, rollup]);

// (limit - usage) / growth per day, where usage grows and is below a set limit.
local daysLeft(resource, usage, limit, window, selector) = fmt(|||
  label_replace(
    (%(limit)s{%(selector)s} - %(usage)s{%(selector)s})
      / (deriv(%(usage)s{%(selector)s}[%(window)s]) * 86400 > 0)
      and %(usage)s{%(selector)s} < %(limit)s{%(selector)s},
    "resource", "%(resource)s", "tenant", ".*"
  )
|||, { resource: resource, usage: usage, limit: limit, selector: selector, window: window });

// The capacity limits: resource, usage gauge, limit gauge.
local capacity = [
  ['agents', 'vigil_tenant_agents', 'vigil_tenant_agents_limit'],
  ['channels', 'vigil_tenant_channels', 'vigil_tenant_channels_limit'],
  ['storage', 'vigil_tenant_storage_bytes', 'vigil_tenant_storage_limit_bytes'],
];

{
  prometheusRules+:: {
    local c = $._config,
    local sel = c.exporterSelector,
    local rates = {
      messages: fmt('sum without (direction) (rate(vigil_tenant_messages_total{%s}[1h]))', sel),
      api_calls: fmt('rate(vigil_tenant_api_calls_total{%s}[1h])', sel),
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
              limitUsage('messages_per_day', dailyCount('sum without (direction) (vigil_tenant_messages_today{%s})',
                                                        'sum without (direction) (tenant:vigil_tenant_messages:increase_today{%s})'),
                         'vigil_tenant_messages_per_day_limit', sel),
              limitUsage('api_calls_per_day', dailyCount('vigil_tenant_api_calls_today{%s}',
                                                         'tenant:vigil_tenant_api_calls:increase_today{%s}'),
                         'vigil_tenant_api_calls_per_day_limit', sel),
              limitUsage('storage', 'vigil_tenant_storage_bytes{%s}', 'vigil_tenant_storage_limit_bytes', sel),
              limitUsage('connections', 'vigil_tenant_connections{%s}', 'vigil_tenant_connections_limit', sel),
            ]),
          },
          {
            // Daily quotas at today's average rate (usage since 00:00 UTC over the time since),
            // projected to the end of the UTC day; only once `dailyQuotaForecastAfterHours`
            // of the day have passed, so that the first minutes of a day predict nothing.
            record: 'tenant:vigil_tenant_limit_usage:ratio_projected_today',
            expr: fmt(|||
              tenant:vigil_tenant_limit_usage:ratio{resource=~"messages_per_day|api_calls_per_day"}
                * 86400 / (time() %% 86400)
                and on () (vector(time()) %% 86400 >= %d)
            |||, (c.thresholds.dailyQuotaForecastAfterHours * 3600)),
          },
          {
            // Messages per second per tenant, both directions.
            record: 'tenant:vigil_tenant_messages:rate5m',
            expr: fmt('sum without (direction) (rate(vigil_tenant_messages_total{%s}[5m]))', sel),
          },
          {
            record: 'tenant:vigil_tenant_api_calls:rate5m',
            expr: fmt('rate(vigil_tenant_api_calls_total{%s}[5m])', sel),
          },
        ],
      },
      {
        // Capacity limits (agents, channels, storage) at the trend of `usage.forecastLookback`.
        name: 'vigil-tenants-forecast.rules',
        interval: c.slowRuleInterval,
        rules: [
          {
            // Usage over limit `tenantCapacityForecastDays` from now, by predict_linear().
            record: 'tenant:vigil_tenant_limit_usage:ratio_predicted',
            expr: std.join('or\n', [
              limitUsage(r[0], fmt('predict_linear(%s{%%s}[%s], %d)', [r[1], c.usage.forecastLookback,
                                                                   c.thresholds.tenantCapacityForecastDays * 86400]),
                         r[2], sel)
              for r in capacity
            ]),
          },
          {
            // Days until the limit at the same trend, for tenants below it whose usage grows.
            record: 'tenant:vigil_tenant_limit_days_left:deriv',
            expr: std.join('or\n', [
              daysLeft(r[0], r[1], r[2], c.usage.forecastLookback, sel)
              for r in capacity
            ]),
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
              record: fmt('tenant:vigil_tenant_%s:rate1h', metric),
              expr: rates[metric],
            },
            {
              record: fmt('tenant:vigil_tenant_%s:change1w_rate1h', metric),
              expr: fmt(|||
                tenant:vigil_tenant_%(m)s:rate1h
                  - tenant:vigil_tenant_%(m)s:rate1h offset %(season)s
              |||, { m: metric, season: c.windows.anomalySeason }),
            },
          ] + [
            {
              record: fmt('tenant:vigil_tenant_%s:%s1w_change1w_rate1h', [metric, op]),
              expr: fmt('%s_over_time(tenant:vigil_tenant_%s:change1w_rate1h[%s])',
                        [op, metric, c.windows.anomalyBaseline]),
            }
            for op in ['avg', 'stddev']
          ]
          for metric in ['messages', 'api_calls']
        ]),
      },
    ],
  },
}
