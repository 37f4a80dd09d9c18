// The host the exporter runs on: CPU, memory, disk, network (collector `system`).
local v = import 'lib/vigil.libsonnet';
local g = v.g;
local t = v.thresholds;

v.dashboard(
  'system', 'Vigil / System',
  'The host the Vigil exporter runs on: CPU, load, memory, disks and network, from psutil.',
  jobMetric='vigil_system_cpu_usage_ratio', jobSelector=v.selectors.exporter,
  items=[
    g.row('Now'),
    g.stat('CPU usage', 'Share of CPU time busy over the last collection interval, all cores. The SystemCpuUsageHigh alert fires above the red line.',
           'percentunit', [g.target('max(vigil_system_cpu_usage_ratio{%s})' % v.sel())],
           thresholds=[g.threshold(t.cpuUsageRatio)], links=[v.runbook('SystemCpuUsageHigh')]),
    g.stat('Memory usage', '(total - available) / total. The SystemMemoryUsageHigh alert fires above the red line.',
           'percentunit', [g.target('max(instance:vigil_system_memory_usage:ratio{%s})' % v.sel())],
           thresholds=[g.threshold(t.memoryUsageRatio)], links=[v.runbook('SystemMemoryUsageHigh')]),
    g.stat('Fullest disk', 'Usage of the fullest mounted filesystem. The SystemDiskUsageHigh alert fires above the red line.',
           'percentunit', [g.target('max(instance_mountpoint:vigil_system_disk_usage:ratio{%s})' % v.sel())],
           thresholds=[g.threshold(t.diskUsageRatio)], links=[v.runbook('SystemDiskUsageHigh')]),
    g.stat('CPUs', 'Logical CPUs of the host.', 'short',
           [g.target('max(vigil_system_cpus{%s})' % v.sel())], graph=false),
    g.stat('Processes', 'Processes running on the host.', 'short',
           [g.target('max(vigil_system_processes{%s})' % v.sel())]),
    g.stat('Uptime', 'Time since the host booted.', 's',
           [g.target('time() - max(vigil_system_boot_time_seconds{%s})' % v.sel())], graph=false),

    g.row('CPU'),
    g.timeseries('CPU usage', 'Busy share of all cores per instance; the dashed line is the alert threshold.',
                 'percentunit', [g.target('vigil_system_cpu_usage_ratio{%s}' % v.sel(), '{{instance}}')],
                 w=12, min=0, max=1, thresholds=[g.threshold(t.cpuUsageRatio)], links=[v.runbook('SystemCpuUsageHigh')]),
    g.timeseries('Load average', 'Run-queue length averaged over 1, 5 and 15 minutes, against the number of CPUs.',
                 'short', [
                   g.target('vigil_system_load1{%s}' % v.sel(), '1m {{instance}}'),
                   g.target('vigil_system_load5{%s}' % v.sel(), '5m {{instance}}'),
                   g.target('vigil_system_load15{%s}' % v.sel(), '15m {{instance}}'),
                   g.target('vigil_system_cpus{%s}' % v.sel(), 'CPUs {{instance}}'),
                 ], w=12, min=0),

    g.row('Memory'),
    g.timeseries('Memory', 'Used and available memory against the total.', 'bytes', [
      g.target('vigil_system_memory_used_bytes{%s}' % v.sel(), 'used {{instance}}'),
      g.target('vigil_system_memory_available_bytes{%s}' % v.sel(), 'available {{instance}}'),
      g.target('vigil_system_memory_total_bytes{%s}' % v.sel(), 'total {{instance}}'),
    ], w=8, min=0),
    g.timeseries('Memory usage', '(total - available) / total; the dashed line is the alert threshold.',
                 'percentunit', [g.target('instance:vigil_system_memory_usage:ratio{%s}' % v.sel(), '{{instance}}')],
                 w=8, min=0, max=1, thresholds=[g.threshold(t.memoryUsageRatio)], links=[v.runbook('SystemMemoryUsageHigh')]),
    g.timeseries('Swap', 'Swap in use against the swap size.', 'bytes', [
      g.target('vigil_system_swap_used_bytes{%s}' % v.sel(), 'used {{instance}}'),
      g.target('vigil_system_swap_total_bytes{%s}' % v.sel(), 'total {{instance}}'),
    ], w=8, min=0),

    g.row('Disks'),
    g.timeseries('Disk usage by mountpoint', 'Used share of each filesystem; the dashed line is the SystemDiskUsageHigh threshold.',
                 'percentunit', [g.target('instance_mountpoint:vigil_system_disk_usage:ratio{%s}' % v.sel(), '{{mountpoint}}')],
                 w=8, min=0, max=1, thresholds=[g.threshold(t.diskUsageRatio)], links=[v.runbook('SystemDiskUsageHigh')]),
    g.timeseries('Free space and its projection', 'Free bytes per filesystem, and where a linear fit of the last %s puts it in %d hours: below zero (on a disk at least %d%% full) is the SystemDiskFillingUp alert.' % [v.windows.diskFillLookback, t.diskFillHorizonHours, t.diskFillMinUsageRatio * 100],
                 'bytes', [
                   g.target('vigil_system_disk_free_bytes{%s}' % v.sel(), 'free {{mountpoint}}'),
                   g.target('predict_linear(vigil_system_disk_free_bytes{%s}[%s], %d * 3600)' % [v.sel(), v.windows.diskFillLookback, t.diskFillHorizonHours], 'projected {{mountpoint}}'),
                 ], w=8, thresholds=[g.threshold(0)], links=[v.runbook('SystemDiskFillingUp')]),
    g.timeseries('Disk I/O', 'Bytes read (positive) and written per second by device.', 'Bps', [
      g.target(v.rate('vigil_system_disk_read_bytes_total', 'device'), 'read {{device}}'),
      g.target(v.rate('vigil_system_disk_written_bytes_total', 'device'), 'written {{device}}'),
    ], w=8, min=0),

    g.row('Network'),
    g.timeseries('Network received', 'Bytes received per second by interface.', 'Bps',
                 [g.target(v.rate('vigil_system_network_receive_bytes_total', 'interface'), '{{interface}}')],
                 w=12, min=0),
    g.timeseries('Network transmitted', 'Bytes sent per second by interface.', 'Bps',
                 [g.target(v.rate('vigil_system_network_transmit_bytes_total', 'interface'), '{{interface}}')],
                 w=12, min=0),
  ],
)
