// Alerts about the host the exporter runs on (the `system` collector).
local fmt = (import '../lib/format.libsonnet').fmt;
local lib = import '../lib/alert.libsonnet';

// node-mixin's NodeFilesystemSpaceFillingUp: free space extrapolated over the lookback reaches 0
// within `hours`, on a file system already `minUsage` full, writable and not tiny (a small
// volume's usage swings by whole percents with one log file; a read-only one cannot fill).
local fillingUpTemplate = |||
  predict_linear(vigil_system_disk_free_bytes{%(exporterSelector)s}[%(diskFillLookback)s], %(hours)s * 3600) < 0
  and on (job, instance, mountpoint)
    instance_mountpoint:vigil_system_disk_usage:ratio > %(minUsage)s
  and on (job, instance, mountpoint)
    vigil_system_disk_readonly{%(exporterSelector)s} == 0
  and on (job, instance, mountpoint)
    vigil_system_disk_total_bytes{%(exporterSelector)s} >= %(diskFillMinSizeBytes)s
|||;

{
  prometheusAlerts+:: {
    local c = $._config,
    local p = lib.params(c),
    local alert(name, spec) = lib.alert(c, name, spec { area: 'system' }),
    local fillingUp(hours, minUsage) = fmt(fillingUpTemplate, p { hours: hours, minUsage: minUsage }),
    groups+: [{
      name: 'vigil-system',
      rules: [
        alert('SystemCpuUsageHigh', {
          severity: 'warning',
          expr: fmt('vigil_system_cpu_usage_ratio{%(exporterSelector)s} > %(cpuUsageRatio)s', p),
          summary: 'CPU usage is high.',
          description: fmt('CPU usage on {{ $labels.instance }} is {{ $value | humanizePercentage }}, above %(cpuUsageRatioPct)s.', p),
        }),
        alert('SystemLoadHigh', {
          // The load average per CPU (the recording rule): processes waiting for a CPU or for
          // I/O, which CPU usage alone does not show.
          severity: 'warning',
          expr: fmt('instance:vigil_system_load1_per_cpu:ratio > %(loadPerCpu)s', p),
          summary: 'The load average is high for the number of CPUs.',
          description: fmt('The 1-minute load average on {{ $labels.instance }} is {{ $value | humanize }} per CPU, above %(loadPerCpu)s: work is queueing for CPUs or I/O.', p),
        }),
        alert('SystemMemoryUsageHigh', {
          severity: 'warning',
          expr: fmt('instance:vigil_system_memory_usage:ratio > %(memoryUsageRatio)s', p),
          summary: 'Memory usage is high.',
          description: fmt('Memory usage on {{ $labels.instance }} is {{ $value | humanizePercentage }}, above %(memoryUsageRatioPct)s.', p),
        }),
        alert('SystemMemoryUsageCritical', {
          // The critical tier: a name of its own, so the warning is never muted (docs/alerting.md).
          severity: 'critical',
          expr: fmt('instance:vigil_system_memory_usage:ratio > %(memoryUsageCriticalRatio)s', p),
          summary: 'Memory is almost exhausted.',
          description: fmt('Memory usage on {{ $labels.instance }} is {{ $value | humanizePercentage }}, above %(memoryUsageCriticalRatioPct)s: the kernel is about to kill processes.', p),
        }),
        alert('SystemDiskUsageHigh', {
          severity: 'warning',
          expr: fmt('instance_mountpoint:vigil_system_disk_usage:ratio > %(diskUsageRatio)s', p),
          summary: 'Disk space is running out.',
          description: fmt('Disk usage of {{ $labels.mountpoint }} on {{ $labels.instance }} is {{ $value | humanizePercentage }}, above %(diskUsageRatioPct)s.', p),
        }),
        alert('SystemDiskUsageCritical', {
          severity: 'critical',
          expr: fmt('instance_mountpoint:vigil_system_disk_usage:ratio > %(diskUsageCriticalRatio)s', p),
          summary: 'A disk is almost full.',
          description: fmt('Disk usage of {{ $labels.mountpoint }} on {{ $labels.instance }} is {{ $value | humanizePercentage }}, above %(diskUsageCriticalRatioPct)s: writes are about to fail.', p),
        }),
        alert('SystemDiskFillingUp', {
          severity: 'warning',
          expr: fillingUp(p.diskFillHorizonHours, p.diskFillMinUsageRatio),
          summary: 'A disk is predicted to fill up within a day.',
          description: fmt('At the rate of the last %(diskFillLookback)s, {{ $labels.mountpoint }} on {{ $labels.instance }} fills up within %(diskFillHorizonHours)s hours (predicted free space {{ $value | humanize1024 }}B).', p),
        }),
        alert('SystemDiskFillingUpSoon', {
          severity: 'critical',
          expr: fillingUp(p.diskFillSoonHorizonHours, p.diskFillSoonMinUsageRatio),
          summary: 'A disk is predicted to fill up within hours.',
          description: fmt('At the rate of the last %(diskFillLookback)s, {{ $labels.mountpoint }} on {{ $labels.instance }} fills up within %(diskFillSoonHorizonHours)s hours (predicted free space {{ $value | humanize1024 }}B).', p),
        }),
      ],
    }],
  },
}
