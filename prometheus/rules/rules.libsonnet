// All recording rule groups, by area.
(import 'system.libsonnet')
+ (import 'database.libsonnet')
+ (import 'redis.libsonnet')
+ (import 'usage.libsonnet')
+ (import 'business.libsonnet')
+ (import 'application.libsonnet')
+ (import 'slo.libsonnet')
