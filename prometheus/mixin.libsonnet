// The Vigil monitoring mixin: `prometheusAlerts` and `prometheusRules` (hidden fields), built
// from `_config` (config.libsonnet). `vigil bundle build` renders them into
// prometheus/generated/*.yml. Override `_config` to customise; see prometheus/README.md.
(import 'config.libsonnet')
+ (import 'alerts/alerts.libsonnet')
+ (import 'rules/rules.libsonnet')
