// Alerts about the Redis servers the exporter watches (label `redis`).
local fmt = (import '../lib/format.libsonnet').fmt;
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
          expr: fmt('last_over_time(vigil_redis_up{%(exporterSelector)s}[%(probeMemory)s]) == 0', p),
          summary: 'A Redis server does not answer.',
          description: 'Redis {{ $labels.redis }} watched by {{ $labels.instance }} does not answer (up = {{ $value }}).',
        }),
        alert('RedisMemoryNearLimit', {
          severity: 'warning',
          expr: fmt('redis:vigil_redis_memory_usage:ratio > %(redisMemoryUsageRatio)s', p),
          summary: 'Redis memory is near its maxmemory limit.',
          description: fmt('Redis {{ $labels.redis }} watched by {{ $labels.instance }} uses {{ $value | humanizePercentage }} of maxmemory, above %(redisMemoryUsageRatioPct)s.', p),
        }),
        alert('RedisCacheHitRatioLow', {
          severity: 'warning',
          expr: fmt(|||
            redis:vigil_redis_keyspace_hits:ratio_rate5m < %(cacheHitRatio)s
            and on (job, instance, redis) redis:vigil_redis_keyspace_lookups:rate5m >= %(cacheMinLookupsPerSecond)s
          |||, p),
          summary: 'Redis key lookups miss too often.',
          description: fmt('Only {{ $value | humanizePercentage }} of key lookups in Redis {{ $labels.redis }} watched by {{ $labels.instance }} find their key, below %(cacheHitRatioPct)s.', p),
        }),
        alert('RedisMemoryFragmented', {
          severity: 'warning',
          expr: fmt(|||
            vigil_redis_memory_fragmentation_ratio{%(exporterSelector)s} > %(redisFragmentationRatio)s
            and on (job, instance, redis)
              vigil_redis_memory_used_bytes{%(exporterSelector)s} >= %(redisFragmentationMinBytes)s
          |||, p),
          summary: 'Redis memory is fragmented.',
          description: fmt('Redis {{ $labels.redis }} watched by {{ $labels.instance }} holds {{ $value | humanize }} times the memory it uses from the system, above %(redisFragmentationRatio)s.', p),
        }),
        alert('RedisEvictingKeys', {
          severity: 'warning',
          expr: fmt('rate(vigil_redis_evicted_keys_total{%(exporterSelector)s}[5m]) > %(redisEvictionsPerSecond)s', p),
          summary: 'Redis evicts keys fast.',
          description: fmt('Redis {{ $labels.redis }} watched by {{ $labels.instance }} evicts {{ $value | humanize }} keys per second to stay under maxmemory, above %(redisEvictionsPerSecond)s: the working set does not fit.', p),
        }),
        alert('RedisFullWithoutEviction', {
          // maxmemory-policy noeviction: at the limit Redis refuses writes instead of evicting.
          severity: 'warning',
          expr: fmt(|||
            redis:vigil_redis_memory_usage:ratio > %(redisMemoryUsageRatio)s
            and on (job, instance, redis)
              vigil_redis_info{%(exporterSelector)s, maxmemory_policy="noeviction"}
          |||, p),
          summary: 'Redis is near maxmemory and evicts nothing.',
          description: fmt('Redis {{ $labels.redis }} watched by {{ $labels.instance }} uses {{ $value | humanizePercentage }} of maxmemory with maxmemory-policy noeviction: writes fail once it is full.', p),
        }),
        alert('RedisCacheWithoutMaxmemory', {
          // Keys expire, so it is used as a cache, yet nothing bounds its memory.
          severity: 'warning',
          expr: fmt(|||
            vigil_redis_memory_max_bytes{%(exporterSelector)s} == 0
            and on (job, instance, redis)
              rate(vigil_redis_expired_keys_total{%(exporterSelector)s}[1h]) > 0
          |||, p),
          summary: 'A Redis used as a cache has no maxmemory.',
          description: 'Redis {{ $labels.redis }} watched by {{ $labels.instance }} expires keys like a cache but has no maxmemory (maxmemory = {{ $value }}): it grows until the host runs out of memory.',
        }),
        alert('RedisRestarted', {
          // Its uptime went back: without persistence, its data is gone.
          severity: 'warning',
          expr: fmt('resets(vigil_redis_uptime_seconds{%(exporterSelector)s}[%(redisRestart)s]) > 0', p),
          summary: 'Redis restarted.',
          description: fmt('Redis {{ $labels.redis }} watched by {{ $labels.instance }} restarted {{ $value }} times in the last %(redisRestart)s.', p),
        }),
        alert('RedisRejectingConnections', {
          // A ticket once rejections go on for `for`: a single one is no incident.
          severity: 'warning',
          expr: fmt('increase(vigil_redis_rejected_connections_total{%(exporterSelector)s}[%(rejectedConnections)s]) > 0', p),
          summary: 'Redis rejects client connections.',
          description: fmt('Redis {{ $labels.redis }} watched by {{ $labels.instance }} rejected {{ $value | humanize }} connections in the last %(rejectedConnections)s (maxclients reached).', p),
        }),
      ] + (import 'redis_replication.libsonnet')(alert, p),
    }],
  },
}
