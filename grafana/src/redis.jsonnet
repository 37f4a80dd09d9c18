// The Redis servers the exporter watches (collector `redis`, label `redis`).
local v = import 'lib/vigil.libsonnet';
local g = v.g;
local t = v.thresholds;

local sel(extra='') = v.sel('redis=~"$redis"' + (if extra == '' then '' else ', ' + extra));
local rate(metric) = 'sum by (redis) (rate(%s{%s}[$__rate_interval]))' % [metric, sel()];

v.dashboard(
  'redis', 'Vigil / Redis',
  'Each Redis the exporter watches: availability, latency, clients, commands, keyspace hit ratio, memory against maxmemory, evictions and queue lengths; replication, per-command time and latency, the slowlog and keys by pattern.',
  jobMetric='vigil_redis_up', jobSelector=v.selectors.exporter,
  variables=[g.variables.query('redis', 'Redis', 'label_values(vigil_redis_up{job=~"$job", instance=~"$instance"}, redis)')],
  items=[
    g.row('Availability'),
    g.stat('Up', 'Whether the last PING and INFO succeeded. RedisDown fires when it is 0.', 'none',
           [g.target('vigil_redis_up{%s}' % sel(), '{{redis}}')],
           thresholds=[g.threshold(1, 'green')], base='red', graph=false,
           mappings=[{ type: 'value', options: { '0': { text: 'DOWN', color: 'red' }, '1': { text: 'UP', color: 'green' } } }],
           links=[v.runbook('RedisDown')]),
    g.stat('Ping latency', 'Round trip of PING from the exporter.', 's',
           [g.target('vigil_redis_ping_duration_seconds{%s}' % sel(), '{{redis}}')]),
    g.stat('Keyspace hit ratio', 'Share of key lookups that found their key over 5 minutes. RedisCacheHitRatioLow fires below the red line (with enough lookups).',
           'percentunit', [g.target('redis:vigil_redis_keyspace_hits:ratio_rate5m{%s}' % sel(), '{{redis}}')],
           thresholds=[g.threshold(t.cacheHitRatio, 'green')], base='red', links=[v.runbook('RedisCacheHitRatioLow')]),
    g.stat('Connected clients', 'Client connections open on the server.', 'short',
           [g.target('vigil_redis_connected_clients{%s}' % sel(), '{{redis}}')]),
    g.stat('Uptime', 'Time since the server started.', 's',
           [g.target('vigil_redis_uptime_seconds{%s}' % sel(), '{{redis}}')], graph=false),
    g.table('Servers', 'Role and version of each Redis, from vigil_redis_info.', 'none',
            [g.target('vigil_redis_info{%s}' % sel())], w=4, h=4,
            hide=['Value', 'job', 'instance'], columns={ redis: 'Redis', role: 'Role', version: 'Version' }),

    g.row('Traffic'),
    g.timeseries('Commands', 'Commands processed per second.', 'ops',
                 [g.target('redis:vigil_redis_commands_processed:rate5m{%s}' % sel(), '{{redis}}')], w=8, min=0),
    g.timeseries('Keyspace lookups', 'Key lookups per second that hit and missed.', 'ops', [
      g.target(rate('vigil_redis_keyspace_hits_total'), 'hits {{redis}}'),
      g.target(rate('vigil_redis_keyspace_misses_total'), 'misses {{redis}}'),
    ], w=8, min=0, stack=true),
    g.timeseries('Keyspace hit ratio', 'Share of lookups that hit over 5 minutes; RedisCacheHitRatioLow fires below the dashed line while there are at least %s lookups per second.' % t.cacheMinLookupsPerSecond,
                 'percentunit', [g.target('redis:vigil_redis_keyspace_hits:ratio_rate5m{%s}' % sel(), '{{redis}}')],
                 w=8, min=0, max=1, thresholds=[g.threshold(t.cacheHitRatio, 'green')], links=[v.runbook('RedisCacheHitRatioLow')]),
    g.timeseries('Clients', 'Connected clients and clients blocked on a blocking command (BLPOP ...).', 'short', [
      g.target('vigil_redis_connected_clients{%s}' % sel(), 'connected {{redis}}'),
      g.target('vigil_redis_blocked_clients{%s}' % sel(), 'blocked {{redis}}'),
    ], w=8, min=0),
    g.timeseries('Rejected connections', 'Connections refused per second because maxclients was reached. RedisRejectingConnections opens a ticket when rejections go on for 10 minutes.', 'ops',
                 [g.target(rate('vigil_redis_rejected_connections_total'), '{{redis}}')],
                 w=8, min=0, thresholds=[g.threshold(0)], links=[v.runbook('RedisRejectingConnections')]),
    g.timeseries('Evicted and expired keys', 'Keys evicted to stay under maxmemory and keys that expired, per second.', 'ops', [
      g.target(rate('vigil_redis_evicted_keys_total'), 'evicted {{redis}}'),
      g.target(rate('vigil_redis_expired_keys_total'), 'expired {{redis}}'),
    ], w=8, min=0),

    g.row('Memory and keys'),
    g.timeseries('Memory', 'Memory used by Redis, and maxmemory where one is set (no line: no limit).', 'bytes', [
      g.target('vigil_redis_memory_used_bytes{%s}' % sel(), 'used {{redis}}'),
      g.target('vigil_redis_memory_max_bytes{%s} > 0' % sel(), 'maxmemory {{redis}}'),
    ], w=8, min=0),
    g.timeseries('Memory used of maxmemory', 'used / maxmemory; RedisMemoryNearLimit fires above the dashed line. A server without maxmemory has no series here.',
                 'percentunit', [g.target('redis:vigil_redis_memory_usage:ratio{%s}' % sel(), '{{redis}}')],
                 w=8, min=0, max=1, thresholds=[g.threshold(t.redisMemoryUsageRatio)], links=[v.runbook('RedisMemoryNearLimit')]),
    g.timeseries('Memory fragmentation', 'RSS / used memory: well above 1 means memory is fragmented, below 1 means Redis is being swapped out.',
                 'none', [g.target('vigil_redis_memory_fragmentation_ratio{%s}' % sel(), '{{redis}}')], w=8, min=0),
    g.timeseries('Keys by database', 'Keys in each logical database.', 'short',
                 [g.target('sum by (redis, db) (vigil_redis_db_keys{%s})' % sel(), '{{db}} {{redis}}')], w=12, min=0),
    g.timeseries('Queue lengths', 'Length of the configured keys (lists, sets, streams ...), e.g. work queues.', 'short',
                 [g.target('vigil_redis_key_length{%s}' % sel(), '{{key}} ({{type}}) {{redis}}')], w=12, min=0),
    g.timeseries('Keys by pattern', 'Keys matching each configured pattern, from the last complete SCAN pass (key_patterns).', 'short',
                 [g.target('vigil_redis_pattern_keys{%s}' % sel(), '{{pattern}} {{redis}}')], w=24, min=0),

    // The collector's features (docs/postgres-redis.md); empty where one is off or not available.
    g.row('Replication'),
    g.timeseries('Replica lag', 'On a primary: how far each replica has acknowledged behind the primary. RedisReplicaLagging fires above the dashed line.', 'bytes',
                 [g.target('vigil_redis_replica_lag_bytes{%s}' % sel(), '{{replica}} of {{redis}}')],
                 w=8, min=0, thresholds=[g.threshold(t.redisReplicaLagBytes)], links=[v.runbook('RedisReplicaLagging')]),
    g.timeseries('Replica links', 'On a replica: 1 while its link to the primary is up (RedisReplicaLinkDown fires at 0); on a primary: connected replicas.', 'short', [
      g.target('vigil_redis_master_link_up{%s}' % sel(), 'link up {{redis}}'),
      g.target('vigil_redis_connected_replicas{%s}' % sel(), 'replicas of {{redis}}'),
    ], w=8, min=0, links=[v.runbook('RedisReplicaLinkDown')]),
    g.timeseries('Replication offset', 'Replication stream written per second (a primary) or processed (a replica).', 'Bps',
                 [g.target('rate(vigil_redis_replication_offset_bytes{%s}[$__rate_interval])' % sel(), '{{redis}}')], w=8, min=0),

    g.row('Commands and slowlog'),
    g.timeseries('Time per command', 'Server time spent per second by each of the most called commands (INFO commandstats).', 's',
                 [g.target('topk(8, sum by (redis, command) (rate(vigil_redis_command_duration_seconds_total{%s}[$__rate_interval])))' % sel(), '{{command}} {{redis}}')],
                 w=8, min=0, stack=true),
    g.timeseries('p99 latency per command', '99th percentile latency of each command since the statistics were reset (INFO latencystats, Redis 7).', 's',
                 [g.target('topk(8, vigil_redis_command_latency_seconds{%s})' % sel('percentile="99"'), '{{command}} {{redis}}')], w=8, min=0),
    g.timeseries('Slowlog', 'New slowlog entries per minute (RedisSlowlogGrowing fires above the dashed line) and the slowlog length.', 'short', [
      g.target('sum by (redis) (rate(vigil_redis_slowlog_entries_total{%s}[$__rate_interval])) * 60' % sel(), 'new per minute {{redis}}'),
      g.target('vigil_redis_slowlog_length{%s}' % sel(), 'length {{redis}}'),
    ], w=8, min=0, thresholds=[g.threshold(t.redisSlowlogEntriesPerMinute)], links=[v.runbook('RedisSlowlogGrowing')]),
  ],
)
