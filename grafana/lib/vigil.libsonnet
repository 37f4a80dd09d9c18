// Vigil's own dashboard helpers on top of grafana.libsonnet: the Prometheus bundle's config
// (selectors, thresholds, runbook URLs), the recording rules' names, common queries and the
// dashboard frame (variables, tags, links) that every Vigil dashboard shares.
local g = import 'grafana.libsonnet';
local bundle = import '../../prometheus/config.libsonnet';
local slo = import '../../prometheus/lib/slo.libsonnet';
local usage = import '../../prometheus/lib/usage.libsonnet';

local c = bundle._config;

{
  g:: g,
  config:: c,

  // Dashboard uids (stable: links, bookmarks and the alerts' dashboard_url rely on them).
  uids:: c.dashboardUids,

  // The alerts' thresholds, read from the Prometheus bundle so a panel's line is the alert's.
  thresholds:: c.thresholds,
  llmBudget:: c.llmBudget,
  // Each tenant's projected LLM cost of the month over its own budget: TenantLlmCostOverBudget's
  // expression without its `> 1` (prometheus/lib/usage.libsonnet), `matchers` on every branch.
  llmBudgetShare(matchers):: std.join('\nor\n', usage.llmBudgetShares(c.llmBudget, matchers)),
  windows:: c.windows,

  // The SLO rules' windows and burn-rate factors (prometheus/lib/slo.libsonnet) for an SLO of
  // the default window: the lines of the burn-rate panels.
  slo:: {
    alertWindows: std.sort(std.set([p[w] for p in c.sloBurnRateAlerts.fast + c.sloBurnRateAlerts.slow
                                    for w in ['short', 'long']]), slo.seconds),
    local defaults = { windowSeconds: slo.seconds(c.sloDefaults.window) },
    fastFactor: slo.factor(defaults, c.sloBurnRateAlerts.fast[0]),
    slowFactor: slo.factor(defaults, c.sloBurnRateAlerts.slow[0]),
    defaultWindow: c.sloDefaults.window,
  },

  selectors:: {
    exporter: c.exporterSelector,
    service: c.serviceSelector,
    prometheus: c.prometheusSelector,
    alertmanager: c.alertmanagerSelector,
    targets: c.targetSelector,
  },

  // A runbook link for an alert: the bundle's own URL pattern, so it lands on the section of
  // docs/runbooks.md that the alert's runbook_url annotation points to.
  runbook(alert):: g.link('Runbook: ' + alert, c.runbookUrlPattern % std.asciiLower(alert)),

  // Matchers every query carries: the dashboard's job and instance variables.
  sel(extra=''):: 'job=~"$job", instance=~"$instance"' + (if extra == '' then '' else ', ' + extra),

  // For recording rules that keep `job` but not `instance` (level `job_...:`).
  jobSel(extra=''):: 'job=~"$job"' + (if extra == '' then '' else ', ' + extra),

  // What a panel says where its queries cannot honour the Job or Instance variable: the
  // dashboard linter (tools/dashboards/lint.py) accepts a recording rule without the matcher
  // only when the description says "not filtered by <label>".
  perJob(description):: description + ' Recording rules summed over the instances of each job: not filtered by instance.',
  perSlo(description):: self.perJob(description) + ' The objective is one series per SLO: not filtered by job or instance.',
  servicesLlmCost(description):: description + " From the services' LLM cost rules, summed over their instances: not filtered by job or instance.",

  // Common queries.
  rate(metric, by='', extra='')::
    local inner = 'rate(%s{%s}[$__rate_interval])' % [metric, self.sel(extra)];
    if by == '' then 'sum(%s)' % inner else 'sum by (%s) (%s)' % [by, inner],

  increase(metric, range, by='', extra='')::
    local inner = 'increase(%s{%s}[%s])' % [metric, self.sel(extra), range];
    if by == '' then 'sum(%s)' % inner else 'sum by (%s) (%s)' % [by, inner],

  // A quantile of a histogram over the dashboard's rate interval.
  quantile(q, histogram, by='', extra='')::
    'histogram_quantile(%s, sum by (%s) (rate(%s_bucket{%s}[$__rate_interval])))'
    % [q, std.join(', ', ['le'] + (if by == '' then [] else [by])), histogram, self.sel(extra)],

  // The p95 of a histogram straight from its buckets, with their exemplars: recorded
  // quantiles carry none, so a latency panel adds this target to show trace ids as points.
  exemplars(histogram, extra=''):: g.target(self.quantile(0.95, histogram, '', extra),
                                            'p95, all (points: exemplars)', exemplar=true),

  // errors / total, as 0 (not "no data") while there are requests but no errors yet.
  errorRatio(metric, errorMatcher, by='', extra='')::
    local sel = if extra == '' then errorMatcher else extra + ', ' + errorMatcher;
    '(%s or %s * 0) / %s' % [self.rate(metric, by, sel), self.rate(metric, by, extra),
                             self.rate(metric, by, extra)],

  // The frame of every Vigil dashboard: datasource, job and instance variables (the job list
  // comes from `jobMetric` restricted by the bundle's selector), the `vigil` tag, a dropdown of
  // the other Vigil dashboards and a link to the runbooks.
  dashboard(key, title, description, items, jobMetric, jobSelector, variables=[], time='now-1h')::
    g.dashboard(
      title,
      uid=$.uids[key],
      description=description,
      tags=['vigil', key],
      time=time,
      variables=[
        g.variables.datasource,
        g.variables.job(jobMetric, jobSelector),
        g.variables.instance(jobMetric),
      ] + variables,
      links=[
        {
          title: 'Vigil dashboards',
          type: 'dashboards',
          tags: ['vigil'],
          asDropdown: true,
          includeVars: true,
          keepTime: true,
          targetBlank: false,
          icon: 'external link',
          tooltip: '',
          url: '',
        },
        {
          title: 'Runbooks',
          type: 'link',
          url: std.rstripChars(c.runbookUrlPattern % '', '#'),
          asDropdown: false,
          includeVars: false,
          keepTime: false,
          targetBlank: true,
          icon: 'doc',
          tooltip: 'What each alert means and what to do',
          tags: [],
        },
      ],
      items=items,
    ),

  // A link from a panel to another Vigil dashboard, keeping the time range and variables.
  dashboardLink(key, title)::
    g.link(title, '/d/%s?${__url_time_range}&${datasource:queryparam}' % $.uids[key]),
}
