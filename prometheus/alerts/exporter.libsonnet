// Alerts about the Vigil exporter itself: collectors and business queries failing or stale.
local fmt = (import '../lib/format.libsonnet').fmt;
local lib = import '../lib/alert.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local p = lib.params(c),
    local alert(name, spec) = lib.alert(c, name, spec { area: 'exporter' }),
    groups+: [{
      name: 'vigil-exporter',
      rules: [
        alert('VigilCollectorFailing', {
          severity: 'warning',
          expr: fmt('vigil_collector_success{%(exporterSelector)s} == 0', p),
          summary: 'A Vigil collector keeps failing.',
          description: 'Collector {{ $labels.collector }} of {{ $labels.instance }} has failed every run (success = {{ $value }}); its metrics are missing.',
        }),
        alert('VigilCollectorStale', {
          severity: 'warning',
          // Before its first success the timestamp is 0: VigilCollectorFailing speaks then.
          expr: fmt(|||
            time() - (vigil_collector_last_success_timestamp_seconds{%(exporterSelector)s} > 0)
              > %(staleIntervals)s * vigil_collector_interval_seconds{%(exporterSelector)s}
          |||, p),
          summary: 'A Vigil collector has not succeeded for several intervals.',
          description: fmt('Collector {{ $labels.collector }} of {{ $labels.instance }} last succeeded {{ $value | humanizeDuration }} ago, more than %(staleIntervals)s of its intervals.', p),
        }),
        alert('VigilBusinessQueryFailing', {
          severity: 'warning',
          expr: fmt('vigil_business_query_success{%(exporterSelector)s} == 0', p),
          summary: 'A Vigil business query keeps failing.',
          description: 'Business query {{ $labels.query }} of {{ $labels.instance }} has failed every run (success = {{ $value }}); its metrics are missing.',
        }),
        alert('VigilBusinessQueryStale', {
          severity: 'warning',
          // Before its first success the timestamp is 0: VigilBusinessQueryFailing speaks then.
          expr: fmt(|||
            time() - (vigil_business_query_last_success_timestamp_seconds{%(exporterSelector)s} > 0)
              > %(staleIntervals)s * vigil_business_query_interval_seconds{%(exporterSelector)s}
          |||, p),
          summary: 'A Vigil business query has not succeeded for several intervals.',
          description: fmt('Business query {{ $labels.query }} of {{ $labels.instance }} last succeeded {{ $value | humanizeDuration }} ago, more than %(staleIntervals)s of its intervals.', p),
        }),
        // Rows past max_series are missing from every per-tenant rule and alert (TenantNearLimit
        // cannot see those tenants): a ticket, since nothing users feel is broken yet.
        alert('VigilBusinessQuerySeriesCapped', {
          severity: 'warning',
          expr: fmt('vigil_business_query_series_dropped{%(exporterSelector)s} > 0', p),
          summary: 'A Vigil business query returns more rows than its series cap.',
          description: 'Business query {{ $labels.query }} of {{ $labels.instance }} dropped {{ $value }} rows beyond its max_series; those tenants are missing from its metric and from the limit alerts.',
        }),
      ],
    }],
  },
}
