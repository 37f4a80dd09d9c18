// One tenant (variable) against its subscription: the share of every limit in use, the days
// until each capacity limit at the current trend, daily usage over 30 and 90 days, the LLM cost
// of the month and where it is heading; and the tenants closest to any limit. The numbers are
// the ones `vigil usage` reports (prometheus/rules/usage.libsonnet, docs/tenant-usage.md).
local v = import 'lib/vigil.libsonnet';
local g = v.g;
local t = v.thresholds;
local budget = v.llmBudget;

local one = 'tenant=~"$tenant"';
local tsel(extra='') = v.sel(one + (if extra == '' then '' else ', ' + extra));
// The LLM cost rules are the services' (their own jobs), summed over their instances.
local cost = one;
local limitColors = [g.threshold(t.tenantLimitUsageRatio * 0.8, 'orange'), g.threshold(t.tenantLimitUsageRatio)];

// The count of a day: the exporter's database count where it has one, the counter rollup
// otherwise (the same choice as the daily quota ratio and `vigil usage`); the last value of
// each UTC day, one bar per day.
local daily(gauge, rollup, extra, legend) = g.target(|||
  sum(last_over_time(%(gauge)s{%(s)s}[1d]))
    or sum(last_over_time(%(rollup)s{%(s)s}[1d]))
||| % { gauge: gauge, rollup: rollup, s: tsel(extra) }, legend, interval='1d');
local dailyUsage = [
  daily('vigil_tenant_messages_today', 'tenant:vigil_tenant_messages:increase_today', 'direction="in"', 'messages in'),
  daily('vigil_tenant_messages_today', 'tenant:vigil_tenant_messages:increase_today', 'direction="out"', 'messages out'),
  daily('vigil_tenant_api_calls_today', 'tenant:vigil_tenant_api_calls:increase_today', '', 'API calls'),
];
local days(range) = { timeFrom: range, hideTimeOverride: false };

v.dashboard(
  'tenants', 'Vigil / Tenant',
  'One tenant against its subscription: every limit as a share, days until each capacity limit at the current trend, daily usage over 30 and 90 days, LLM cost of the month and its projection; the tenants closest to a limit.',
  jobMetric='vigil_tenant_agents_limit', jobSelector=v.selectors.exporter, time='now-7d',
  variables=[
    g.variables.query('tenant', 'Tenant', 'label_values(vigil_tenant_agents_limit{%s}, tenant)' % v.sel(), multi=false),
  ],
  items=[
    g.row('Limits'),
    g.bargauge('Share of every limit in use', 'Usage / limit for each limited resource of the tenant (daily quotas since 00:00 UTC). TenantNearLimit fires at the red mark.',
               'percentunit', [g.target('max by (resource) (tenant:vigil_tenant_limit_usage:ratio{%s})' % tsel(), '{{resource}}', instant=true)],
               w=8, h=8, max=1, thresholds=limitColors, links=[v.runbook('TenantNearLimit')]),
    g.bargauge('Days until each capacity limit', 'At the trend of the last %s (linear), the days until agents, channels and storage reach their limit; no bar where usage does not grow. TenantCapacityRunningOut fires under %s days.' % [v.config.usage.forecastLookback, t.tenantCapacityForecastDays],
               'd', [g.target('min by (resource) (tenant:vigil_tenant_limit_days_left:deriv{%s})' % tsel(), '{{resource}}', instant=true)],
               w=8, h=8, max=30, thresholds=[g.threshold(t.tenantCapacityForecastDays, 'green')], links=[v.runbook('TenantCapacityRunningOut')]),
    g.bargauge('Daily quotas by 00:00 UTC', "At the tenant's average rate since 00:00 UTC, the share of each daily quota it will have used by midnight (judged after %s hours of the day). TenantDailyQuotaRunningOut fires at 100 %%." % t.dailyQuotaForecastAfterHours,
               'percentunit', [g.target('max by (resource) (tenant:vigil_tenant_limit_usage:ratio_projected_today{%s})' % tsel(), '{{resource}}', instant=true)],
               w=8, h=8, max=2, thresholds=[g.threshold(1)], links=[v.runbook('TenantDailyQuotaRunningOut')]),
    g.timeseries('Share of every limit over time', 'Usage / limit by resource; the dashed line is the TenantNearLimit threshold.',
                 'percentunit', [g.target('max by (resource) (tenant:vigil_tenant_limit_usage:ratio{%s})' % tsel(), '{{resource}}')],
                 w=24, h=8, min=0, thresholds=[g.threshold(t.tenantLimitUsageRatio)]),

    g.row('Daily usage'),
    g.timeseries('Daily usage, 30 days', 'Messages in and out and API calls of each UTC day (the bar at a midnight is the day before it).',
                 'short', dailyUsage, w=12, h=8, min=0, drawStyle='bars', fill=80) + days('30d'),
    g.timeseries('Daily usage, 90 days', 'The same over 90 days, the retention of Prometheus.',
                 'short', dailyUsage, w=12, h=8, min=0, drawStyle='bars', fill=80) + days('90d'),
    g.timeseries('Agents, channels and storage', 'Agents and channels (left) and stored bytes (right) at the end of each UTC day over 90 days.',
                 'short', [
                   g.target('sum(last_over_time(vigil_tenant_agents{%s}[1d]))' % tsel(), 'agents', interval='1d'),
                   g.target('sum(last_over_time(vigil_tenant_channels{%s}[1d]))' % tsel(), 'channels', interval='1d'),
                   g.target('sum(last_over_time(vigil_tenant_storage_bytes{%s}[1d]))' % tsel(), 'storage', interval='1d'),
                 ], w=24, h=8, min=0,
                 overrides=[g.override('^storage$', { unit: 'bytes', 'custom.axisPlacement': 'right' })]) + days('90d'),

    g.row('LLM cost'),
    g.stat('Month to date', v.servicesLlmCost('US dollars of LLM calls made for the tenant since the 1st of the month, 00:00 UTC.'),
           'currencyUSD', [g.target('sum(job_tenant:llm_cost_usd:increase_month{%s})' % cost)], decimals=2, w=4, h=6),
    g.stat('Projected by the end of the month', v.servicesLlmCost('Month to date plus the pace of the last 24 hours until the end of the month.'),
           'currencyUSD', [g.target('sum(job_tenant:llm_cost_usd:projected_month{%s})' % cost)], decimals=2, w=4, h=6),
    g.stat('Projected share of the budget', v.servicesLlmCost("The projection over the tenant's monthly budget (%s USD unless it has its own, llmBudget.perTenantPerMonthUsdOverrides). TenantLlmCostOverBudget fires above 100 %%." % budget.perTenantPerMonthUsd),
           'percentunit', [g.target(v.llmBudgetShare(cost))], decimals=1, w=4, h=6,
           thresholds=[g.threshold(0.8, 'orange'), g.threshold(1)],
           links=[v.runbook('TenantLlmCostOverBudget')]),
    g.timeseries('LLM cost per day', v.servicesLlmCost('US dollars of each UTC day, 30 days.'),
                 'currencyUSD', [g.target('sum(last_over_time(job_tenant:llm_cost_usd:increase_today{%s}[1d]))' % cost, 'cost', interval='1d')],
                 w=12, h=6, min=0, drawStyle='bars', fill=80) + days('30d'),

    g.row('Every tenant'),
    g.table('Closest to a limit', 'The 20 tenants and resources with the largest share of a limit in use, over the selected jobs and instances.',
            'percentunit', [g.target('topk(20, max by (tenant, resource) (tenant:vigil_tenant_limit_usage:ratio{%s}))' % v.sel())],
            w=24, h=9, thresholds=limitColors, sortBy='Share',
            columns={ tenant: 'Tenant', resource: 'Resource', Value: 'Share' }),
  ],
)
