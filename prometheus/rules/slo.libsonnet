// Recording rules of the service level objectives (`_config.slos`, see lib/slo.libsonnet): the
// error ratios over the windows the burn-rate alerts need, the error budget left and the
// objectives. The windows from the counters are evaluated at the global interval, the long
// windows (from recorded rates) every `slowRuleInterval`.
local slo = import '../lib/slo.libsonnet';

{
  prometheusRules+:: {
    local built = slo.build($._config),
    groups+: [
      { name: 'vigil-slo.rules', rules: built.shortRules },
      { name: 'vigil-slo-long.rules', interval: $._config.slowRuleInterval, rules: built.longRules },
    ],
  },
}
