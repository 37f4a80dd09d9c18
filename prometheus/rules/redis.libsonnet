// Recording rules of the Redis area (the exporter's `redis` collector, label `redis`).
local fmt = (import '../lib/format.libsonnet').fmt;
{
  prometheusRules+:: {
    local c = $._config,
    groups+: [{
      name: 'vigil-redis.rules',
      rules: [
        {
          // Memory in use as a share of maxmemory; no series where maxmemory is 0 (no limit).
          record: 'redis:vigil_redis_memory_usage:ratio',
          expr: fmt(|||
            vigil_redis_memory_used_bytes{%(exporterSelector)s}
              / (vigil_redis_memory_max_bytes{%(exporterSelector)s} > 0)
          |||, c),
        },
        {
          record: 'redis:vigil_redis_commands_processed:rate5m',
          expr: fmt('rate(vigil_redis_commands_processed_total{%(exporterSelector)s}[5m])', c),
        },
        {
          // Key lookups per second: hits plus misses.
          record: 'redis:vigil_redis_keyspace_lookups:rate5m',
          expr: fmt(|||
            rate(vigil_redis_keyspace_hits_total{%(exporterSelector)s}[5m])
              + rate(vigil_redis_keyspace_misses_total{%(exporterSelector)s}[5m])
          |||, c),
        },
        {
          // Share of key lookups that found their key; no series without lookups.
          record: 'redis:vigil_redis_keyspace_hits:ratio_rate5m',
          expr: fmt(|||
            rate(vigil_redis_keyspace_hits_total{%(exporterSelector)s}[5m])
              / (redis:vigil_redis_keyspace_lookups:rate5m > 0)
          |||, c),
        },
      ],
    }],
  },
}
