// Recording rules of the system area (the exporter's `system` collector).
local fmt = (import '../lib/format.libsonnet').fmt;
{
  prometheusRules+:: {
    local c = $._config,
    groups+: [{
      name: 'vigil-system.rules',
      rules: [
        {
          // Memory in use as a share of the total, as the exporter defines it.
          record: 'instance:vigil_system_memory_usage:ratio',
          expr: fmt(|||
            1 - vigil_system_memory_available_bytes{%(exporterSelector)s}
              / vigil_system_memory_total_bytes{%(exporterSelector)s}
          |||, c),
        },
        {
          // Disk space in use as a share of what unprivileged users can use, as df shows it.
          record: 'instance_mountpoint:vigil_system_disk_usage:ratio',
          expr: fmt(|||
            vigil_system_disk_used_bytes{%(exporterSelector)s}
              / (vigil_system_disk_used_bytes{%(exporterSelector)s} + vigil_system_disk_free_bytes{%(exporterSelector)s} > 0)
          |||, c),
        },
        {
          // Load average per logical CPU: above 1 means work is queueing.
          record: 'instance:vigil_system_load1_per_cpu:ratio',
          expr: fmt(|||
            vigil_system_load1{%(exporterSelector)s}
              / (vigil_system_cpus{%(exporterSelector)s} > 0)
          |||, c),
        },
      ],
    }],
  },
}
