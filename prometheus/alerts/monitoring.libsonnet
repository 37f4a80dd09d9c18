// Alerts about the monitoring stack itself, after kube-prometheus' prometheus and alertmanager
// mixins: a Prometheus that cannot evaluate, store, notify or remote-write, and an Alertmanager
// that cannot load its config, notify, or agree with its HA peers. Tickets (warning): the
// Watchdog heartbeat and its outside receiver page when the pipeline is down altogether.
local fmt = (import '../lib/format.libsonnet').fmt;
local lib = import '../lib/alert.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local p = lib.params(c),
    local alert(name, spec) = lib.alert(c, name, spec { area: 'meta' }),
    groups+: [
      {
        name: 'vigil-prometheus',
        rules: [
          alert('PrometheusReplicaDown', {
            // The HA pair scrapes each other (prometheus.yml's `prometheus` job, one `replica`
            // label per server): the survivor sees its peer's `up` fall. Watchdog cannot tell,
            // since the survivor keeps sending it. A ticket: alerting still works.
            severity: 'warning',
            expr: fmt('up{%(prometheusSelector)s} == 0', p),
            summary: 'A Prometheus server of the HA pair is down.',
            description: fmt('Prometheus {{ $labels.replica }} ({{ $labels.instance }}) has not answered a scrape for %s (up = {{ $value }}): the pair runs on one server, and the heartbeat cannot tell.', c.forDurations.PrometheusReplicaDown),
          }),
          alert('PrometheusBadConfig', {
            severity: 'warning',
            expr: fmt('max_over_time(prometheus_config_last_reload_successful{%(prometheusSelector)s}[5m]) == 0', p),
            summary: 'Prometheus failed to reload its configuration.',
            description: 'Prometheus {{ $labels.instance }} has failed to reload its configuration (success = {{ $value }}): it runs the previous one, and a restart would fail.',
          }),
          alert('PrometheusRuleFailures', {
            severity: 'warning',
            expr: fmt('increase(prometheus_rule_evaluation_failures_total{%(prometheusSelector)s}[5m]) > 0', p),
            summary: 'Prometheus fails to evaluate rules.',
            description: 'Prometheus {{ $labels.instance }} failed {{ $value | humanize }} evaluations of rule group {{ $labels.rule_group }} in the last 5 minutes: its alerts may be blind.',
          }),
          alert('PrometheusMissingRuleEvaluations', {
            severity: 'warning',
            expr: fmt('increase(prometheus_rule_group_iterations_missed_total{%(prometheusSelector)s}[5m]) > 0', p),
            summary: 'Prometheus misses rule group evaluations.',
            description: 'Prometheus {{ $labels.instance }} missed {{ $value | humanize }} evaluations of rule group {{ $labels.rule_group }} in the last 5 minutes: the group takes longer than its interval.',
          }),
          alert('PrometheusNotificationQueueRunningFull', {
            severity: 'warning',
            expr: fmt(|||
              predict_linear(prometheus_notifications_queue_length{%(prometheusSelector)s}[5m], 60 * 30)
                > min_over_time(prometheus_notifications_queue_capacity{%(prometheusSelector)s}[5m])
            |||, p),
            summary: 'The alert queue of Prometheus is filling up.',
            description: 'The notification queue of Prometheus {{ $labels.instance }} is predicted to hold {{ $value | humanize }} alerts within 30 minutes, more than its capacity: alerts will be dropped.',
          }),
          alert('PrometheusErrorSendingAlerts', {
            severity: 'warning',
            expr: fmt(|||
              rate(prometheus_notifications_errors_total{%(prometheusSelector)s}[5m])
                / rate(prometheus_notifications_sent_total{%(prometheusSelector)s}[5m])
                > %(notificationErrorRatio)s
            |||, p),
            summary: 'Prometheus fails to send alerts to an Alertmanager.',
            description: fmt('Prometheus {{ $labels.instance }} fails {{ $value | humanizePercentage }} of its sends to Alertmanager {{ $labels.alertmanager }}, above %(notificationErrorRatioPct)s.', p),
          }),
          alert('PrometheusNotConnectedToAlertmanagers', {
            severity: 'warning',
            expr: fmt('max_over_time(prometheus_notifications_alertmanagers_discovered{%(prometheusSelector)s}[5m]) < 1', p),
            summary: 'Prometheus is connected to no Alertmanager.',
            description: 'Prometheus {{ $labels.instance }} has discovered {{ $value }} Alertmanagers: no alert it raises reaches anybody.',
          }),
          alert('PrometheusTsdbCompactionsFailing', {
            severity: 'warning',
            expr: fmt('increase(prometheus_tsdb_compactions_failed_total{%(prometheusSelector)s}[%(tsdbFailures)s]) > 0', p),
            summary: 'Prometheus fails to compact its storage.',
            description: fmt('Prometheus {{ $labels.instance }} failed {{ $value | humanize }} compactions in the last %(tsdbFailures)s: the head grows and disk use with it.', p),
          }),
          alert('PrometheusTsdbHeadTruncationsFailing', {
            severity: 'warning',
            expr: fmt('increase(prometheus_tsdb_head_truncations_failed_total{%(prometheusSelector)s}[%(tsdbFailures)s]) > 0', p),
            summary: 'Prometheus fails to truncate its in-memory head.',
            description: fmt('Prometheus {{ $labels.instance }} failed {{ $value | humanize }} head truncations in the last %(tsdbFailures)s: memory use grows.', p),
          }),
          alert('PrometheusRemoteWriteBehind', {
            // Scale-out profile: the long-term store lags behind what was scraped.
            severity: 'warning',
            expr: fmt(|||
              (
                max_over_time(prometheus_remote_storage_highest_timestamp_in_seconds{%(prometheusSelector)s}[5m])
                - ignoring (remote_name, url) group_right
                max_over_time(prometheus_remote_storage_queue_highest_sent_timestamp_seconds{%(prometheusSelector)s}[5m])
              ) > %(remoteWriteBehindSeconds)s
            |||, p),
            summary: 'Prometheus remote write falls behind.',
            description: fmt('Remote write of Prometheus {{ $labels.instance }} to {{ $labels.remote_name }} is {{ $value | humanizeDuration }} behind, more than %(remoteWriteBehindSeconds)ss.', p),
          }),
        ],
      },
      {
        name: 'vigil-alertmanager',
        rules: [
          alert('AlertmanagerFailedReload', {
            severity: 'warning',
            expr: fmt('max_over_time(alertmanager_config_last_reload_successful{%(alertmanagerSelector)s}[5m]) == 0', p),
            summary: 'Alertmanager failed to reload its configuration.',
            description: 'Alertmanager {{ $labels.instance }} has failed to reload its configuration (success = {{ $value }}): it runs the previous one.',
          }),
          alert('AlertmanagerFailedToSendAlerts', {
            severity: 'warning',
            expr: fmt(|||
              rate(alertmanager_notifications_failed_total{%(alertmanagerSelector)s}[5m])
                / (rate(alertmanager_notifications_total{%(alertmanagerSelector)s}[5m]) > 0)
                > %(alertmanagerFailedNotificationRatio)s
            |||, p),
            summary: 'An Alertmanager fails to send notifications.',
            description: fmt('Alertmanager {{ $labels.instance }} fails {{ $value | humanizePercentage }} of its notifications to {{ $labels.integration }}, above %(alertmanagerFailedNotificationRatioPct)s.', p),
          }),
          alert('AlertmanagerClusterFailedToSendAlerts', {
            // Every member fails for the same integration: notifications are lost, not retried
            // by a peer (HA profile; a single Alertmanager is a cluster of one).
            severity: 'warning',
            expr: fmt(|||
              min by (job, integration) (
                rate(alertmanager_notifications_failed_total{%(alertmanagerSelector)s}[5m])
                  / (rate(alertmanager_notifications_total{%(alertmanagerSelector)s}[5m]) > 0)
              ) > %(alertmanagerFailedNotificationRatio)s
            |||, p),
            summary: 'Every Alertmanager fails to send notifications to an integration.',
            description: 'All Alertmanagers of job {{ $labels.job }} fail at least {{ $value | humanizePercentage }} of their notifications to {{ $labels.integration }}: they are lost.',
          }),
          alert('AlertmanagerConfigInconsistent', {
            severity: 'warning',
            expr: fmt(|||
              count by (job) (
                count_values by (job) ("config_hash", alertmanager_config_hash{%(alertmanagerSelector)s})
              ) != 1
            |||, p),
            summary: 'The Alertmanagers of a cluster run different configurations.',
            description: 'The Alertmanagers of job {{ $labels.job }} run {{ $value }} different configurations: they route and inhibit differently.',
          }),
          alert('AlertmanagerMembersInconsistent', {
            severity: 'warning',
            expr: fmt(|||
              max_over_time(alertmanager_cluster_members{%(alertmanagerSelector)s}[5m])
                < on (job) group_left
              count by (job) (max_over_time(alertmanager_cluster_members{%(alertmanagerSelector)s}[5m]))
            |||, p),
            summary: 'An Alertmanager does not see every member of its cluster.',
            description: 'Alertmanager {{ $labels.instance }} sees {{ $value }} members of its cluster, fewer than job {{ $labels.job }} has: notifications may be sent twice.',
          }),
        ],
      },
    ],
  },
}
