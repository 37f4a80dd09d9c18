// Alerts about tenants: subscription limits and traffic anomalies.
local lib = import '../lib/alert.libsonnet';

// Fires while a tenant's hourly rate has changed from the same hour a season (week) ago by
// more than `stddevs` standard deviations of its usual change, and by more than a share of last
// season's rate (the floor on sigma), unless the tenant is too quiet to judge, now and then.
local anomaly(m, p) = |||
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
||| % (p { m: m });

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
          expr: 'tenant:vigil_tenant_limit_usage:ratio > %(tenantLimitUsageRatio)s' % p,
          summary: 'A tenant is close to a subscription limit.',
          description: 'Tenant {{ $labels.tenant }} uses {{ $value | humanizePercentage }} of its {{ $labels.resource }} limit, above %(tenantLimitUsageRatioPct)s.' % p,
        }),
        alert('TenantMessageVolumeAnomaly', {
          severity: 'warning',
          expr: anomaly('messages', p { minRate: p.anomalyMinMessagesPerSecond }),
          summary: 'A tenant sends an unusual volume of messages.',
          description: 'Tenant {{ $labels.tenant }} exchanged {{ $value | humanize }} messages per second over the last hour, a change from the same hour %(anomalySeason)s ago more than %(anomalyStddevs)s standard deviations beyond its usual change.' % p,
        }),
        alert('TenantApiCallsAnomaly', {
          severity: 'warning',
          expr: anomaly('api_calls', p { minRate: p.anomalyMinApiCallsPerSecond }),
          summary: 'A tenant makes an unusual number of API calls.',
          description: 'Tenant {{ $labels.tenant }} made {{ $value | humanize }} API calls per second over the last hour, a change from the same hour %(anomalySeason)s ago more than %(anomalyStddevs)s standard deviations beyond its usual change.' % p,
        }),
      ],
    }],
  },
}
