// Alerts about tenants: subscription limits, their forecasts, LLM budgets and traffic anomalies.
local fmt = (import '../lib/format.libsonnet').fmt;
local lib = import '../lib/alert.libsonnet';
local usage = import '../lib/usage.libsonnet';

// Projected LLM cost of the month over the tenant's budget, its own or the default.
local overBudget(budget) =
  std.join('\nor\n', [share + ' > 1' for share in usage.llmBudgetShares(budget)]);

// Fires while a tenant's hourly rate has changed from the same hour a season (week) ago by
// more than `stddevs` standard deviations of its usual change, and by more than a share of last
// season's rate (the floor on sigma), unless the tenant is too quiet to judge, now and then.
local anomaly(m, p) = fmt(|||
  tenant:vigil_tenant_%(m)s:rate1h
  and on (job, instance, tenant)
    abs(tenant:vigil_tenant_%(m)s:change1w_rate1h - tenant:vigil_tenant_%(m)s:avg1w_change1w_rate1h)
      > %(anomalyStddevs)s * tenant:vigil_tenant_%(m)s:stddev1w_change1w_rate1h
  and on (job, instance, tenant)
    abs(tenant:vigil_tenant_%(m)s:change1w_rate1h - tenant:vigil_tenant_%(m)s:avg1w_change1w_rate1h)
      > %(anomalyMinChangeRatio)s * (tenant:vigil_tenant_%(m)s:rate1h offset %(anomalySeason)s)
  and on (job, instance, tenant)
    abs(tenant:vigil_tenant_%(m)s:change1w_rate1h) >= %(minRate)s
  and on (job, instance, tenant) (
    tenant:vigil_tenant_%(m)s:rate1h >= %(minRate)s
    or tenant:vigil_tenant_%(m)s:rate1h offset %(anomalySeason)s >= %(minRate)s
  )
|||, (p { m: m }));

{
  prometheusAlerts+:: {
    local c = $._config,
    local p = lib.params(c),
    local alert(name, spec) = lib.alert(c, name, spec { area: 'business' }),
    groups+: [{
      name: 'vigil-tenants',
      rules: [
        alert('TenantNearLimit', {
          severity: 'warning',
          expr: fmt('tenant:vigil_tenant_limit_usage:ratio > %(tenantLimitUsageRatio)s', p),
          summary: 'A tenant is close to a subscription limit.',
          description: fmt('Tenant {{ $labels.tenant }} uses {{ $value | humanizePercentage }} of its {{ $labels.resource }} limit, above %(tenantLimitUsageRatioPct)s.', p),
        }),
        alert('TenantCapacityRunningOut', {
          severity: 'warning',
          expr: fmt(|||
            tenant:vigil_tenant_limit_days_left:deriv < %(tenantCapacityForecastDays)s
              and tenant:vigil_tenant_limit_usage:ratio_predicted >= 1
          |||, p),
          summary: 'A tenant will reach a capacity limit soon at its current trend.',
          description: fmt('Tenant {{ $labels.tenant }} will reach its {{ $labels.resource }} limit in about {{ $value | printf "%%.1f" }} days at the trend of the last %(forecastLookback)s.', p),
          dashboard: 'tenants',
          dashboardQuery: 'var-tenant={{ $labels.tenant }}',
        }),
        alert('TenantDailyQuotaRunningOut', {
          severity: 'warning',
          expr: |||
            tenant:vigil_tenant_limit_usage:ratio_projected_today >= 1
              and tenant:vigil_tenant_limit_usage:ratio < 1
          |||,
          summary: 'A tenant will use up a daily quota before 00:00 UTC at today\'s rate.',
          description: 'At its rate since 00:00 UTC, tenant {{ $labels.tenant }} will use {{ $value | humanizePercentage }} of its {{ $labels.resource }} limit by the end of the UTC day.',
          dashboard: 'tenants',
          dashboardQuery: 'var-tenant={{ $labels.tenant }}',
        }),
        alert('TenantLlmCostOverBudget', {
          severity: 'warning',
          expr: overBudget(c.llmBudget),
          summary: 'A tenant\'s LLM cost is heading above its monthly budget.',
          description: 'At the pace of the last 24 hours, the LLM calls of tenant {{ $labels.tenant }} will cost {{ $value | humanizePercentage }} of its monthly budget by the end of the month (UTC).',
          dashboard: 'tenants',
          dashboardQuery: 'var-tenant={{ $labels.tenant }}',
        }),
        alert('TenantMessageVolumeAnomaly', {
          severity: 'warning',
          expr: anomaly('messages', p { minRate: p.anomalyMinMessagesPerSecond }),
          summary: 'A tenant sends an unusual volume of messages.',
          description: fmt('Tenant {{ $labels.tenant }} exchanged {{ $value | humanize }} messages per second over the last hour, a change from the same hour %(anomalySeason)s ago more than %(anomalyStddevs)s standard deviations beyond its usual change.', p),
        }),
        alert('TenantApiCallsAnomaly', {
          severity: 'warning',
          expr: anomaly('api_calls', p { minRate: p.anomalyMinApiCallsPerSecond }),
          summary: 'A tenant makes an unusual number of API calls.',
          description: fmt('Tenant {{ $labels.tenant }} made {{ $value | humanize }} API calls per second over the last hour, a change from the same hour %(anomalySeason)s ago more than %(anomalyStddevs)s standard deviations beyond its usual change.', p),
        }),
      ],
    }],
  },
}
