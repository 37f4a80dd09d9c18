// Recording rules of the service level objectives (`_config.slos`, see lib/slo.libsonnet): the
// error ratios over the windows the burn-rate alerts need, the error budget left and the
// objectives. The windows from the counters are evaluated at the global interval, the long
// windows (averages of recorded rates) every `slowRuleInterval`.
local slo = import '../lib/slo.libsonnet';

{
  prometheusRules+:: {
    local c = $._config,
    groups+: [
      { name: 'vigil-slo.rules', rules: slo.shortRules(c) },
      { name: 'vigil-slo-long.rules', interval: c.slowRuleInterval, rules: slo.longRules(c) },
    ],
  },
}
