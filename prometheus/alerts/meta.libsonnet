// Alerts about the monitoring pipeline itself: the dead man's switch and the scrape targets.
local lib = import '../lib/alert.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local alert(name, spec) = lib.alert(c, name, spec { area: 'meta' }),
    groups+: [{
      name: 'vigil-meta',
      rules: [
        alert('Watchdog', {
          // Always firing: Alertmanager routes it to a heartbeat receiver, which raises the
          // alarm when the heartbeat stops (Prometheus, rules or Alertmanager broken).
          severity: 'info',
          expr: 'vector(1)',
          summary: 'Alerting pipeline heartbeat; this alert always fires.',
          description: 'This alert fires all the time (value {{ $value }}) to prove that rules are evaluated and notifications delivered; raise the alarm when it stops arriving.',
        }),
        alert('TargetDown', {
          severity: 'critical',
          expr: 'up{%(targetSelector)s} == 0' % c,
          summary: 'A scrape target is down.',
          description: 'Prometheus cannot scrape {{ $labels.instance }} of job {{ $labels.job }} (up = {{ $value }}).',
        }),
        alert('TargetAbsent', {
          // absent() keeps the job label of an equality matcher, so each selector is its own
          // alert: one per job that has no target at all.
          severity: 'warning',
          expr: std.join('\nor\n', ['absent(up{%s})' % s for s in c.absentTargetSelectors]) + '\n',
          summary: 'A scrape job has no target.',
          description: 'Prometheus has no target for job {{ $labels.job }} (absent = {{ $value }}); its alerts cannot fire.',
        }),
      ],
    }],
  },
}
