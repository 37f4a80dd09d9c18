// The site's own alerts (`_config.siteAlerts` -> `prometheusSiteAlerts`, generated into
// site_alerts.yml) and the bundle's alerts it turns off (`_config.disabledAlerts`), with the
// bundle's conventions: labels, runbook and dashboard links (docs/customising.md).
local fmt = (import '../lib/format.libsonnet').fmt;
local lib = import '../lib/alert.libsonnet';

local kept(c, rules) = [r for r in rules if !std.member(c.disabledAlerts, r.alert)];

{
  prometheusAlerts+:: {
    local c = $._config,
    groups: [g { rules: kept(c, g.rules) } for g in super.groups if kept(c, g.rules) != []],
  },

  prometheusSiteAlerts:: {
    local c = $._config,
    local enabled = [n for n in std.objectFields(c.siteAlerts) if std.get(c.siteAlerts[n], 'enabled', true)],
    groups: if enabled == [] then [] else [{
      name: 'vigil-site',
      rules: [$.siteAlert(c, n, c.siteAlerts[n]) for n in enabled],
    }],
  },

  siteAlert(c, name, spec)::
    assert std.objectHas(spec, 'expr') != std.objectHas(spec, 'metric')
           : fmt('siteAlerts.%s: give expr, or metric with operator and threshold', name);
    local expr = if std.objectHas(spec, 'expr') then spec.expr
    else fmt('%s %s %s', [spec.metric, spec.operator, lib.num(spec.threshold)]);
    local withFor = c { forDurations+: { [name]: std.get(spec, 'for', '0s') } };
    lib.alert(withFor, name, {
      severity: spec.severity,
      area: std.get(spec, 'area', 'application'),
      expr: expr,
      summary: spec.summary,
      description: std.get(spec, 'description', spec.summary + ' Value: {{ $value | humanize }}.'),
      labels: std.get(spec, 'labels', {}),
    }) + {
      annotations+: { runbook_url: spec.runbookUrl },
    },
}
