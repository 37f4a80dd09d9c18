// Multi-window, multi-burn-rate alerts of the service level objectives (`_config.slos`): for
// each SLO, SloFastBurn (pages by default) and SloSlowBurn (a ticket). lib/slo.libsonnet
// builds them; docs/slos.md explains the math.
local slo = import '../lib/slo.libsonnet';

{
  prometheusAlerts+:: {
    groups+: [{ name: 'vigil-slo', rules: slo.build($._config).alerts }],
  },
}
