// The Vigil monitoring mixin: `prometheusAlerts`, `prometheusRules` and the site's own
// `prometheusSiteAlerts` (hidden fields), built from `_config` (config.libsonnet).
// `vigil bundle build` renders them into prometheus/generated/*.yml. Override `_config` to
// customise; see prometheus/README.md and docs/customising.md.
(import 'config.libsonnet')
+ (import 'alerts/alerts.libsonnet')
+ (import 'rules/rules.libsonnet')
+ (import 'alerts/site.libsonnet')
