// Business and tenants: the exporter's business queries (users, keys, sessions, per-tenant usage
// against subscription limits, message and API-call volume) and the LLM spend of the services.
local v = import 'lib/vigil.libsonnet';
local g = v.g;
local t = v.thresholds;
local budget = v.llmBudget;

local sel(extra='') = v.sel(extra);
local tsel(extra='') = v.sel('tenant=~"$tenant"' + (if extra == '' then '' else ', ' + extra));
// The LLM cost rules keep `job` only: the `service` variable picks the instrumented services.
local svc = 'job=~"$service"';
local costNote(description) = v.servicesLlmCost(description) + ' The Service variable picks the services.';

local usage(resource) =
  g.target('max by (tenant) (tenant:vigil_tenant_limit_usage:ratio{%s})' % tsel('resource="%s"' % resource));
local value(expr) = g.target(expr % tsel());

// The hourly rate, and the band of "normal" the anomaly alerts use: the same hour a season ago
// plus the usual change, plus or minus `anomalyStddevs` standard deviations of that change
// (never below 0).
local expected(metric) = '(tenant:vigil_tenant_%(m)s:rate1h{%(s)s} offset %(season)s + tenant:vigil_tenant_%(m)s:avg1w_change1w_rate1h{%(s)s})' % {
  m: metric, s: tsel(), season: v.windows.anomalySeason,
};
local band(metric) = [
  g.target('tenant:vigil_tenant_%s:rate1h{%s}' % [metric, tsel()], '{{tenant}}'),
  g.target('%s + %s * tenant:vigil_tenant_%s:stddev1w_change1w_rate1h{%s}'
           % [expected(metric), t.anomalyStddevs, metric, tsel()], '{{tenant}} upper'),
  g.target('clamp_min(%s - %s * tenant:vigil_tenant_%s:stddev1w_change1w_rate1h{%s}, 0)'
           % [expected(metric), t.anomalyStddevs, metric, tsel()], '{{tenant}} lower'),
];
local bandOverrides = [
  g.override('.* (upper|lower)$', { 'custom.lineStyle': { fill: 'dash', dash: [4, 4] }, 'custom.fillOpacity': 0 }),
];
// How far the current rate sits outside (> 0) or inside (< 0) that band: exactly the condition
// of the anomaly alerts, and defined even while the baseline has no variance yet.
local outside(metric) = g.target(|||
  abs(tenant:vigil_tenant_%(m)s:change1w_rate1h{%(s)s} - tenant:vigil_tenant_%(m)s:avg1w_change1w_rate1h{%(s)s})
    - %(k)s * tenant:vigil_tenant_%(m)s:stddev1w_change1w_rate1h{%(s)s}
||| % { m: metric, s: tsel(), k: t.anomalyStddevs }, '{{tenant}}');

// Dollars per second of the services' LLM calls, at the pace of the last hour.
local pace = 'sum(job:llm_cost_usd:increase1h{%s}) / 3600' % svc;

v.dashboard(
  'business', 'Vigil / Business and tenants',
  'Users, API keys and sessions; every tenant against its subscription limits; message and API-call volume against their one-week norm; the LLM spend of the day and where the month is heading.',
  jobMetric='vigil_business_users', jobSelector=v.selectors.exporter,
  variables=[
    g.variables.query('tenant', 'Tenant', 'label_values(vigil_tenant_agents{job=~"$job", instance=~"$instance"}, tenant)'),
    g.variables.query('service', 'Service', 'label_values(llm_cost_usd_total{%s}, job)' % v.selectors.service),
  ],
  items=[
    g.row('Users and access'),
    g.stat('Active users', 'Users with is_active set.', 'short', [g.target('sum(vigil_business_users{%s})' % sel())]),
    g.stat('Active API keys', 'API keys neither revoked nor expired.', 'short', [g.target('sum(vigil_business_api_keys_active{%s})' % sel())]),
    g.stat('Active sessions', 'Sessions neither ended nor expired.', 'short', [g.target('sum(vigil_business_sessions_active{%s})' % sel())]),
    g.stat('Tenants', 'Tenants the business queries report.', 'short', [g.target('count(vigil_tenant_agents_limit{%s})' % sel())]),
    g.stat('Messages today', 'Messages of the selected tenants since 00:00 UTC, both directions.', 'short',
           [g.target('sum(vigil_tenant_messages_today{%s})' % tsel())]),
    g.stat('Tenants near a limit', 'Selected tenants using more than %d%% of one of their limits, the condition of TenantNearLimit.' % (t.tenantLimitUsageRatio * 100),
           'short', [g.target('count(max by (tenant) (tenant:vigil_tenant_limit_usage:ratio{%s}) > %s) or vector(0)' % [tsel(), t.tenantLimitUsageRatio])],
           thresholds=[g.threshold(1)], links=[v.runbook('TenantNearLimit')]),

    g.row('Tenants against their limits'),
    g.bargauge('Closest to a limit', 'The selected tenants and resources closest to their subscription limit (usage / limit, top 10). TenantNearLimit fires at the red mark.',
               'percentunit', [g.target('topk(10, tenant:vigil_tenant_limit_usage:ratio{%s})' % tsel(), '{{tenant}} {{resource}}', instant=true)],
               w=10, h=10, max=1, thresholds=[g.threshold(t.tenantLimitUsageRatio * 0.8, 'orange'), g.threshold(t.tenantLimitUsageRatio)],
               links=[v.runbook('TenantNearLimit')]),
    g.timeseries('Usage against limits', 'usage / limit for every selected tenant and limited resource; the dashed line is the TenantNearLimit threshold.',
                 'percentunit', [g.target('tenant:vigil_tenant_limit_usage:ratio{%s}' % tsel(), '{{tenant}} {{resource}}')],
                 w=14, h=10, min=0, thresholds=[g.threshold(t.tenantLimitUsageRatio)], links=[v.runbook('TenantNearLimit')]),
    g.table('Usage by tenant', 'Share of each limit in use per tenant (empty: no limit). Red cells are at or above the TenantNearLimit threshold.',
            'percentunit', [usage(r) for r in ['agents', 'channels', 'messages_per_day', 'api_calls_per_day', 'storage', 'connections']],
            w=12, h=8, thresholds=[g.threshold(t.tenantLimitUsageRatio * 0.8, 'orange'), g.threshold(t.tenantLimitUsageRatio)],
            columns={ tenant: 'Tenant', 'Value #A': 'Agents', 'Value #B': 'Channels', 'Value #C': 'Messages/day',
                      'Value #D': 'API calls/day', 'Value #E': 'Storage', 'Value #F': 'Connections' }),
    g.table('Usage in numbers', 'What each tenant uses now: active agents, active channels, messages and API calls since 00:00 UTC, stored bytes and open sessions.',
            'short', [
              value('sum by (tenant) (vigil_tenant_agents_active{%s})'),
              value('sum by (tenant) (vigil_tenant_channels_active{%s})'),
              value('sum by (tenant) (vigil_tenant_messages_today{%s})'),
              value('sum by (tenant) (vigil_tenant_api_calls_today{%s})'),
              value('sum by (tenant) (vigil_tenant_storage_bytes{%s})'),
              value('sum by (tenant) (vigil_tenant_connections{%s})'),
            ], w=12, h=8,
            columns={ tenant: 'Tenant', 'Value #A': 'Agents', 'Value #B': 'Channels', 'Value #C': 'Messages today',
                      'Value #D': 'API calls today', 'Value #E': 'Storage', 'Value #F': 'Connections' },
            overrides=[g.override('^Storage$', { unit: 'bytes' })]),
    g.timeseries('Storage by tenant', 'Bytes stored per tenant (documents), stacked.', 'bytes',
                 [g.target('sum by (tenant) (vigil_tenant_storage_bytes{%s})' % tsel(), '{{tenant}}')], w=12, h=7, min=0, stack=true),
    g.timeseries('Connections by tenant', 'Active sessions per tenant, stacked.', 'short',
                 [g.target('sum by (tenant) (vigil_tenant_connections{%s})' % tsel(), '{{tenant}}')], w=12, h=7, min=0, stack=true),

    g.row('Volume against the same hour last week'),
    g.timeseries('Message volume and its normal band', 'Messages per second per tenant over the last hour, with the band of the same hour a week ago plus its usual change, plus or minus %s standard deviations of that change (dashed). TenantMessageVolumeAnomaly fires when a tenant stays outside it by more than a quarter of last week\'s rate.' % t.anomalyStddevs,
                 'ops', band('messages'), w=12, h=9, min=0, overrides=bandOverrides, links=[v.runbook('TenantMessageVolumeAnomaly')]),
    g.timeseries('Messages outside the normal band', 'How far each tenant\'s message rate is outside its band (above 0) or inside it (below 0). TenantMessageVolumeAnomaly fires while a tenant stays above 0 for %s and sends, or usually sends, at least %s messages per second.' % [v.config.forDurations.TenantMessageVolumeAnomaly, t.anomalyMinMessagesPerSecond],
                 'ops', [outside('messages')], w=12, h=9, thresholds=[g.threshold(0)],
                 links=[v.runbook('TenantMessageVolumeAnomaly')]),
    g.timeseries('API-call volume and its normal band', 'API calls per second per tenant over the last hour, with the band of the same hour a week ago plus its usual change, plus or minus %s standard deviations of that change (dashed). TenantApiCallsAnomaly fires when a tenant stays outside it by more than a quarter of last week\'s rate.' % t.anomalyStddevs,
                 'reqps', band('api_calls'), w=12, h=9, min=0, overrides=bandOverrides, links=[v.runbook('TenantApiCallsAnomaly')]),
    g.timeseries('API calls outside the normal band', 'How far each tenant\'s API-call rate is outside its band (above 0) or inside it (below 0). TenantApiCallsAnomaly fires while a tenant stays above 0 for %s and calls, or usually calls, at least %s times per second.' % [v.config.forDurations.TenantApiCallsAnomaly, t.anomalyMinApiCallsPerSecond],
                 'reqps', [outside('api_calls')], w=12, h=9, thresholds=[g.threshold(0)],
                 links=[v.runbook('TenantApiCallsAnomaly')]),

    g.row('LLM spend'),
    g.stat('LLM cost today', costNote('US dollars the selected services spent on LLM calls since 00:00 UTC. LlmCostTodayOverBudget fires at the red mark.'),
           'currencyUSD', [g.target('sum(job:llm_cost_usd:increase_today{%s})' % svc)], decimals=2, w=3, h=6,
           thresholds=[g.threshold(budget.perDayUsd * 0.8, 'orange'), g.threshold(budget.perDayUsd)], links=[v.runbook('LlmCostTodayOverBudget')]),
    g.stat('LLM cost, last hour', costNote('US dollars spent over the last hour. LlmCostPerHourOverBudget fires at the red mark.'),
           'currencyUSD', [g.target('sum(job:llm_cost_usd:increase1h{%s})' % svc)], decimals=2, w=3, h=6,
           thresholds=[g.threshold(budget.perHourUsd * 0.8, 'orange'), g.threshold(budget.perHourUsd)], links=[v.runbook('LlmCostPerHourOverBudget')]),
    g.stat('Projected by the end of the month', costNote("Today's spend plus the last hour's pace until the end of the month (UTC): what will have been spent from 00:00 today to the month's last second if nothing changes."),
           'currencyUSD', [g.target('sum(job:llm_cost_usd:increase_today{%s}) + %s * ((days_in_month() - day_of_month()) * 86400 + 86400 - time() %% 86400)' % [svc, pace])],
           decimals=2, w=3, h=6),
    g.stat('Month at the current pace', costNote("The last hour's pace over the whole month: a monthly run rate to compare with the daily budget (%s USD) times the days of the month." % budget.perDayUsd),
           'currencyUSD', [g.target('%s * 86400 * days_in_month()' % pace)], decimals=2, w=3, h=6),
    g.timeseries('LLM cost per hour', costNote('US dollars per hour at the 5-minute pace, by service; the dashed line is the hourly budget of LlmCostPerHourOverBudget.'),
                 'currencyUSD', [g.target('sum by (job) (job:llm_cost_usd:rate5m{%s}) * 3600' % svc, '{{job}}')],
                 w=6, h=6, min=0, thresholds=[g.threshold(budget.perHourUsd)], links=[v.runbook('LlmCostPerHourOverBudget')]),
    g.timeseries('LLM spend since 00:00 UTC', costNote('Spend of the day as it accumulates, by service; the dashed line is the daily budget of LlmCostTodayOverBudget.'),
                 'currencyUSD', [g.target('sum by (job) (job:llm_cost_usd:increase_today{%s})' % svc, '{{job}}')],
                 w=6, h=6, min=0, thresholds=[g.threshold(budget.perDayUsd)], links=[v.runbook('LlmCostTodayOverBudget')]),
  ],
)
