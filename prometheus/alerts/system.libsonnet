// Alerts about the host the exporter runs on (the `system` collector).
local lib = import '../lib/alert.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local p = lib.params(c),
    local alert(name, spec) = lib.alert(c, name, spec { area: 'system' }),
    groups+: [{
      name: 'vigil-system',
      rules: [
        alert('SystemCpuUsageHigh', {
          severity: 'warning',
          expr: 'vigil_system_cpu_usage_ratio{%(exporterSelector)s} > %(cpuUsageRatio)s' % p,
          summary: 'CPU usage is high.',
          description: 'CPU usage on {{ $labels.instance }} is {{ $value | humanizePercentage }}, above %(cpuUsageRatioPct)s.' % p,
        }),
        alert('SystemMemoryUsageHigh', {
          severity: 'warning',
          expr: 'instance:vigil_system_memory_usage:ratio > %(memoryUsageRatio)s' % p,
          summary: 'Memory usage is high.',
          description: 'Memory usage on {{ $labels.instance }} is {{ $value | humanizePercentage }}, above %(memoryUsageRatioPct)s.' % p,
        }),
        alert('SystemDiskUsageHigh', {
          severity: 'warning',
          expr: 'instance_mountpoint:vigil_system_disk_usage:ratio > %(diskUsageRatio)s' % p,
          summary: 'Disk space is running out.',
          description: 'Disk usage of {{ $labels.mountpoint }} on {{ $labels.instance }} is {{ $value | humanizePercentage }}, above %(diskUsageRatioPct)s.' % p,
        }),
        alert('SystemDiskFillingUp', {
          severity: 'warning',
          expr: |||
            predict_linear(vigil_system_disk_free_bytes{%(exporterSelector)s}[%(diskFillLookback)s], %(diskFillHorizonHours)s * 3600) < 0
            and on (job, instance, mountpoint)
              instance_mountpoint:vigil_system_disk_usage:ratio > %(diskFillMinUsageRatio)s
          ||| % p,
          summary: 'A disk is predicted to fill up.',
          description: 'At the rate of the last %(diskFillLookback)s, {{ $labels.mountpoint }} on {{ $labels.instance }} fills up within %(diskFillHorizonHours)s hours (predicted free space {{ $value | humanize1024 }}B).' % p,
        }),
      ],
    }],
  },
}
