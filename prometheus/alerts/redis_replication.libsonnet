// Alerts about Redis replication and slow commands, from the Redis collector's features. Each
// is a ticket (warning). Part of the `vigil-redis` group (redis.libsonnet): `alert` and `p`
// come from there.
local fmt = (import '../lib/format.libsonnet').fmt;
function(alert, p) [
  alert('RedisReplicaLinkDown', {
    severity: 'warning',
    expr: fmt('vigil_redis_master_link_up{%(exporterSelector)s} == 0', p),
    summary: 'A Redis replica lost its link to the primary.',
    description: 'Redis replica {{ $labels.redis }} watched by {{ $labels.instance }} has no link to its primary (link up = {{ $value }}): it serves older and older data and cannot take over.',
  }),
  alert('RedisReplicaLagging', {
    severity: 'warning',
    expr: fmt('vigil_redis_replica_lag_bytes{%(exporterSelector)s} > %(redisReplicaLagBytes)s', p),
    summary: 'A Redis replica lags behind its primary.',
    description: fmt('Replica {{ $labels.replica }} of Redis {{ $labels.redis }} watched by {{ $labels.instance }} has acknowledged {{ $value | humanize1024 }}B less than the primary wrote, above %(redisReplicaLagBytesHuman)s.', p),
  }),
  alert('RedisSlowlogGrowing', {
    severity: 'warning',
    expr: fmt('rate(vigil_redis_slowlog_entries_total{%(exporterSelector)s}[%(redisSlowlog)s]) * 60 > %(redisSlowlogEntriesPerMinute)s', p),
    summary: 'Redis logs slow commands steadily.',
    description: fmt('Redis {{ $labels.redis }} watched by {{ $labels.instance }} added {{ $value | humanize }} slowlog entries a minute over the last %(redisSlowlog)s, above %(redisSlowlogEntriesPerMinute)s.', p),
  }),
]
