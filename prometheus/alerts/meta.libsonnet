// Alerts about the monitoring pipeline itself: the dead man's switch and the scrape targets.
local fmt = (import '../lib/format.libsonnet').fmt;
local lib = import '../lib/alert.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local p = lib.params(c),
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
          // A ticket, as in kube-prometheus: a share of a job's targets down, whatever the job.
          // One target of a job that users depend on is a page only when it is the whole job
          // (JobDown); the symptoms it causes page through the SLOs.
          severity: 'warning',
          expr: fmt(|||
            count by (job) (up{%(targetSelector)s} == 0)
              / count by (job) (up{%(targetSelector)s})
              > %(targetDownRatio)s
          |||, p),
          summary: 'Targets of a scrape job are down.',
          description: fmt('{{ $value | humanizePercentage }} of the targets of job {{ $labels.job }} cannot be scraped, more than %(targetDownRatioPct)s.', p),
        }),
        alert('JobDown', {
          // The whole job gone: the exporter (every database, Redis, system and business alert
          // goes blind) or an instrumented service (its SLO alerts go blind). Judged over a
          // window: one failed scrape of a job's only target is not the job gone.
          severity: 'critical',
          expr: fmt('sum by (job) (max_over_time(up{%(criticalJobSelector)s}[%(jobDown)s])) == 0', p),
          summary: 'Every target of a scrape job is down.',
          description: 'Prometheus cannot scrape any target of job {{ $labels.job }} (targets up = {{ $value }}); its alerts are blind.',
        }),
        alert('TargetAbsent', {
          // absent() keeps the job label of an equality matcher, so each selector is its own
          // alert: one per job that has no target at all.
          severity: 'warning',
          expr: std.join('\nor\n', [fmt('absent(up{%s})', s) for s in c.absentTargetSelectors]) + '\n',
          summary: 'A scrape job has no target.',
          description: 'Prometheus has no target for job {{ $labels.job }} (absent = {{ $value }}); its alerts cannot fire.',
        }),
      ],
    }],
  },
}
