// alert(config, name, spec): one alerting rule with the bundle's conventions filled in.
//
// spec: { severity: 'critical'|'warning'|'info', area: ..., expr: ..., summary: ...,
//         description: ..., labels: {...} (optional),
//         dashboard: a key of config.dashboardUids (optional, default: the area's dashboard),
//         dashboardQuery: 'var-x=y' (optional, appended to the dashboard URL) }
// The `for` window comes from config.forDurations[name], `keep_firing_for` from
// config.keepFiringFor[name] (alerts that would otherwise flap); runbook_url and dashboard_url
// are generated from config, so every alert links to its own runbook section and its dashboard.
local format = import 'format.libsonnet';
local fmt = format.fmt;
{
  num:: format.num,
  pct(x):: format.num(x * 100) + '%',
  // The largest unit that divides x evenly (bytes in IEC units, seconds up to days).
  human(name, x)::
    local units = if std.endsWith(name, 'Bytes')
    then [['GiB', 1073741824], ['MiB', 1048576], ['KiB', 1024]]
    else [['d', 86400], ['h', 3600], ['m', 60]];
    local fits = [u for u in units if x >= u[1] && x % u[1] == 0];
    if std.length(fits) == 0 then $.num(x) + (if std.endsWith(name, 'Bytes') then ' B' else 's')
    else if std.endsWith(name, 'Bytes') then fmt('%s %s', [$.num(x / fits[0][1]), fits[0][0]])
    else fmt('%s%s', [$.num(x / fits[0][1]), fits[0][0]]),

  // The strings alert expressions and descriptions are formatted with: selectors, windows,
  // thresholds as numbers, `<name>Pct` for every ratio threshold (0.8 -> "80%"), and the LLM
  // budget as budgetPerHour / budgetPerDay.
  params(c):: c + c.windows + c.usage + {
    [k]: $.num(c.thresholds[k])
    for k in std.objectFields(c.thresholds)
  } + {
    [k + 'Pct']: $.pct(c.thresholds[k])
    for k in std.objectFields(c.thresholds)
    if std.endsWith(k, 'Ratio')
  } + {
    // `<name>Human` for every size and duration threshold: 4294967296 -> "4 GiB", 86400 -> "1d"
    [k + 'Human']: $.human(k, c.thresholds[k])
    for k in std.objectFields(c.thresholds)
    if std.endsWith(k, 'Bytes') || std.endsWith(k, 'Seconds')
  } + {
    budgetPerHour: $.num(c.llmBudget.perHourUsd),
    budgetPerDay: $.num(c.llmBudget.perDayUsd),
  },

  alert(c, name, spec):: {
    alert: name,
    expr: spec.expr,
    [if std.objectHas(c.forDurations, name) && c.forDurations[name] != '0s' then 'for']:
      c.forDurations[name],
    [if std.objectHas(c.keepFiringFor, name) then 'keep_firing_for']: c.keepFiringFor[name],
    labels: { severity: spec.severity, area: spec.area } + std.get(spec, 'labels', {}),
    annotations: {
      summary: spec.summary,
      description: spec.description,
      runbook_url: fmt(c.runbookUrlPattern, std.asciiLower(name)),
      dashboard_url: fmt('%s/d/%s', [c.grafanaUrl, c.dashboardUids[std.get(spec, 'dashboard', c.areaDashboards[spec.area])]])
                     + (if std.objectHas(spec, 'dashboardQuery') then '?' + spec.dashboardQuery else ''),
    },
  },
}
