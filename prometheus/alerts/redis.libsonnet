// Alerts about the Redis servers the exporter watches (label `redis`).
local lib = import '../lib/alert.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local p = lib.params(c),
    local alert(name, spec) = lib.alert(c, name, spec { area: 'redis' }),
    groups+: [{
      name: 'vigil-redis',
      rules: [
        alert('RedisDown', {
          severity: 'critical',
          // As DatabaseDown: the last answer within probeMemory, so that an exporter restart
          // keeps the page open rather than resolving it and paging again.
          expr: 'last_over_time(vigil_redis_up{%(exporterSelector)s}[%(probeMemory)s]) == 0' % p,
          summary: 'A Redis server does not answer.',
          description: 'Redis {{ $labels.redis }} watched by {{ $labels.instance }} does not answer (up = {{ $value }}).',
        }),
        alert('RedisMemoryNearLimit', {
          severity: 'warning',
          expr: 'redis:vigil_redis_memory_usage:ratio > %(redisMemoryUsageRatio)s' % p,
          summary: 'Redis memory is near its maxmemory limit.',
          description: 'Redis {{ $labels.redis }} watched by {{ $labels.instance }} uses {{ $value | humanizePercentage }} of maxmemory, above %(redisMemoryUsageRatioPct)s.' % p,
        }),
        alert('RedisCacheHitRatioLow', {
          severity: 'warning',
          expr: |||
            redis:vigil_redis_keyspace_hits:ratio_rate5m < %(cacheHitRatio)s
            and on (job, instance, redis) redis:vigil_redis_keyspace_lookups:rate5m >= %(cacheMinLookupsPerSecond)s
          ||| % p,
          summary: 'Redis key lookups miss too often.',
          description: 'Only {{ $value | humanizePercentage }} of key lookups in Redis {{ $labels.redis }} watched by {{ $labels.instance }} find their key, below %(cacheHitRatioPct)s.' % p,
        }),
        alert('RedisRejectingConnections', {
          // A ticket once rejections go on for `for`: a single one is no incident.
          severity: 'warning',
          expr: 'increase(vigil_redis_rejected_connections_total{%(exporterSelector)s}[%(rejectedConnections)s]) > 0' % p,
          summary: 'Redis rejects client connections.',
          description: 'Redis {{ $labels.redis }} watched by {{ $labels.instance }} rejected {{ $value | humanize }} connections in the last %(rejectedConnections)s (maxclients reached).' % p,
        }),
      ] + (import 'redis_replication.libsonnet')(alert, p),
    }],
  },
}
