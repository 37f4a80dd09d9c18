// Alerts about tenants: subscription limits and traffic anomalies.
local lib = import '../lib/alert.libsonnet';

// Fires while the current rate of a tenant sits more than N standard deviations from its
// one-week average, unless both the current rate and the average are too low to judge.
local anomaly(metric, minRate, stddevs) = |||
  tenant:vigil_tenant_%(metric)s:rate5m
  and
    abs(tenant:vigil_tenant_%(metric)s:rate5m - tenant:vigil_tenant_%(metric)s:avg1w_rate5m)
      > %(stddevs)s * tenant:vigil_tenant_%(metric)s:stddev1w_rate5m
  and (
    tenant:vigil_tenant_%(metric)s:rate5m >= %(minRate)s
    or tenant:vigil_tenant_%(metric)s:avg1w_rate5m >= %(minRate)s
  )
||| % { metric: metric, minRate: minRate, stddevs: stddevs };

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
          expr: anomaly('messages', p.anomalyMinMessagesPerSecond, p.anomalyStddevs),
          summary: 'A tenant sends an unusual volume of messages.',
          description: 'Tenant {{ $labels.tenant }} exchanges {{ $value | humanize }} messages per second, more than %(anomalyStddevs)s standard deviations away from its one-week average.' % p,
        }),
        alert('TenantApiCallsAnomaly', {
          severity: 'warning',
          expr: anomaly('api_calls', p.anomalyMinApiCallsPerSecond, p.anomalyStddevs),
          summary: 'A tenant makes an unusual number of API calls.',
          description: 'Tenant {{ $labels.tenant }} makes {{ $value | humanize }} API calls per second, more than %(anomalyStddevs)s standard deviations away from its one-week average.' % p,
        }),
      ],
    }],
  },
}
