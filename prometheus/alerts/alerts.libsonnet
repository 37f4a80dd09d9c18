// All alerting rule groups, by area.
(import 'meta.libsonnet')
+ (import 'exporter.libsonnet')
+ (import 'system.libsonnet')
+ (import 'database.libsonnet')
+ (import 'redis.libsonnet')
+ (import 'business.libsonnet')
+ (import 'application.libsonnet')
+ (import 'slo.libsonnet')
