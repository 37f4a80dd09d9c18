// The Vigil monitoring mixin: `prometheusAlerts` and `prometheusRules` (hidden fields), built
// from `_config` (config.libsonnet). `python -m exporter.bundle` renders them into
// prometheus/generated/*.yml. Override `_config` to customise; see prometheus/README.md.
(import 'config.libsonnet')
+ (import 'alerts/alerts.libsonnet')
+ (import 'rules/rules.libsonnet')
