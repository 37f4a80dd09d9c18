// Service level objectives: one row per SLO (repeated over the `slo` variable), read from the
// recording rules of prometheus/lib/slo.libsonnet, so an SLO added in Jsonnet or in a YAML file
// gets its row without rebuilding this dashboard. SloFastBurn and SloSlowBurn link here.
local v = import 'lib/vigil.libsonnet';
local g = v.g;
local s = v.slo;

// The SLO recording rules keep `job` and `slo`.
local sel = 'job=~"$job", slo=~"$slo"';
local objective = 'slo:objective:ratio{slo=~"$slo"}';
// An error ratio divided by the SLO's budget: the burn rate (1 spends the budget in the window).
local burn(w) = 'job_slo:sli_error:ratio_rate%s{%s} / on (slo) group_left () (1 - %s)' % [w, sel, objective];
// 1 - error ratio over the SLO window, from the budget left (exact, whatever the window).
local sliOverWindow = '1 - (1 - job_slo:error_budget_remaining:ratio{%s}) * on (slo) group_left () (1 - %s)' % [sel, objective];
local num(x) = '%.15g' % x;
// The objective with the labels of the other per-job series, for tables.
local objectivePerJob = 'job_slo:error_budget_remaining:ratio{%s} * 0 + on (slo) group_left () %s' % [sel, objective];
local budgetColors = [g.threshold(0, 'orange'), g.threshold(0.25, 'green')];

v.dashboard(
  'slo', 'Vigil / Service level objectives',
  'Every SLO of the bundle (prometheus/config.libsonnet `_config.slos`, or an SLO file): the SLI against its objective, the error budget left over the window, the burn rate over each alert window and how long the budget lasts at the current burn. docs/slos.md explains the math.',
  jobMetric='job_slo:error_budget_remaining:ratio', jobSelector='',
  variables=[g.variables.query('slo', 'SLO', 'label_values(slo:objective:ratio, slo)')],
  time='now-6h',
  items=[
    g.row('All objectives'),
    g.table('Objectives', v.perSlo('One line per SLO and job: the objective, the SLI over the SLO window, the error budget left, the burn rate over the last hour and day (1 = spends the budget exactly in the window) and the time until the budget is gone at the last hour\'s burn. `vigil slo status` prints the same.'),
            'none', [
              g.target(objectivePerJob),
              g.target(sliOverWindow),
              g.target('job_slo:error_budget_remaining:ratio{%s}' % sel),
              g.target(burn('1h')),
              g.target(burn('1d')),
              g.target('job_slo:error_budget_time_left:seconds{%s}' % sel),
            ], h=7,
            columns={ slo: 'SLO', job: 'Job', 'Value #A': 'Objective', 'Value #B': 'SLI over the window',
                      'Value #C': 'Budget left', 'Value #D': 'Burn rate 1h', 'Value #E': 'Burn rate 1d',
                      'Value #F': 'Budget gone in' },
            order=['slo', 'job', 'Value #A', 'Value #B', 'Value #C', 'Value #D', 'Value #E', 'Value #F'],
            overrides=[
              g.override('Objective|SLI over the window|Budget left', { unit: 'percentunit', decimals: 2 }),
              g.override('Burn rate.*', { unit: 'none', decimals: 2 }),
              g.override('Budget gone in', { unit: 's' }),
            ],
            links=[v.runbook('SloFastBurn'), v.runbook('SloSlowBurn')]),

    g.row('SLO $slo', repeat='slo'),
    g.stat('SLI over the window', v.perSlo('Good events out of all events over the SLO window (30 or 28 days), against the objective below it.'),
           'percentunit', [g.target(sliOverWindow, '{{job}}')], decimals=3, graph=false),
    g.stat('Objective', 'The share of good events the SLO promises over its window. One series per SLO: not filtered by job or instance.', 'percentunit',
           [g.target(objective, '{{window}}')], decimals=3, graph=false),
    g.stat('Error budget left', v.perJob('Share of the window\'s error budget not spent yet: 100 % untouched, 0 % spent, below 0 overspent (the objective is missed).'),
           'percentunit', [g.target('job_slo:error_budget_remaining:ratio{%s}' % sel, '{{job}}')],
           thresholds=budgetColors, base='red', decimals=1),
    g.stat('Budget gone in', v.perJob('How long what is left of the error budget lasts at the burn rate of the last hour; at most the window (the budget outlasts it).'),
           's', [g.target('job_slo:error_budget_time_left:seconds{%s}' % sel, '{{job}}')], graph=false),
    g.stat('Burn rate 1h', v.perSlo('Error ratio over the last hour divided by the budget. SloFastBurn fires above %s (with the 5-minute window confirming).' % num(s.fastFactor)),
           'none', [g.target(burn('1h'), '{{job}}')], decimals=2,
           thresholds=[g.threshold(1, 'orange'), g.threshold(s.fastFactor, 'red')], links=[v.runbook('SloFastBurn')]),
    g.stat('Burn rate 1d', v.perSlo('Error ratio over the last day divided by the budget. SloSlowBurn fires above %s (with the 2-hour window confirming).' % num(s.slowFactor)),
           'none', [g.target(burn('1d'), '{{job}}')], decimals=2,
           thresholds=[g.threshold(1, 'orange'), g.threshold(s.slowFactor, 'red')], links=[v.runbook('SloSlowBurn')]),
    g.timeseries('SLI against the objective', v.perSlo('Good events out of all events over the last 5 minutes and the last hour, and the objective.'),
                 'percentunit', [
                   g.target('1 - job_slo:sli_error:ratio_rate5m{%s}' % sel, '5m {{job}}'),
                   g.target('1 - job_slo:sli_error:ratio_rate1h{%s}' % sel, '1h {{job}}'),
                   g.target(objective, 'objective'),
                 ], w=8, max=1),
    g.timeseries('Error budget left', v.perJob('Share of the error budget of the SLO window not spent yet, over time; below 0 the objective is missed.'),
                 'percentunit', [g.target('job_slo:error_budget_remaining:ratio{%s}' % sel, '{{job}}')],
                 w=8, thresholds=[g.threshold(0)]),
    g.timeseries('Burn rate per alert window', v.perSlo('Error ratio over each window of the burn-rate alerts divided by the budget. Dashed: %s (SloFastBurn over 1h and 5m) and %s (SloSlowBurn over 1d and 2h) for a %s window; 1 spends the budget exactly in the window.' % [num(s.fastFactor), num(s.slowFactor), s.defaultWindow]),
                 'none', [g.target(burn(w), w + ' {{job}}') for w in s.alertWindows], w=8, min=0,
                 thresholds=[g.threshold(s.slowFactor, 'orange'), g.threshold(s.fastFactor, 'red')],
                 links=[v.runbook('SloFastBurn'), v.runbook('SloSlowBurn')]),
    g.timeseries('Events', v.perJob('Events per second the SLI counts, and the bad ones, over 5 minutes. With few events one bad one is a large share: no burn-rate alert fires with fewer than the SLO\'s minBadEvents bad events in its long window.'),
                 'ops', [
                   g.target('job_slo:sli_events:rate5m{%s}' % sel, 'all {{job}}'),
                   g.target('job_slo:sli_errors:rate5m{%s}' % sel, 'bad {{job}}'),
                 ], w=24, h=6, min=0),
  ],
)
