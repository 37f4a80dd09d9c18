// Service level objectives: from the declarations in `_config.slos` to recording rules and
// multi-window, multi-burn-rate alerts. docs/slos.md explains the math; the names are
//
//   job_slo:sli_events:rate<w>      events per second over window w, per job and SLO
//   job_slo:sli_errors:rate<w>      bad events per second
//   job_slo:sli_error:ratio_rate<w> bad / all events (absent while there are no events)
//   job_slo:error_budget_remaining:ratio   1 - error ratio over the SLO window / budget
//   job_slo:error_budget_time_left:seconds at the burn rate of the first fast long window
//   slo:objective:ratio{window}     the objective, 0..1
//
// Windows up to `sloCounterWindowMax` are rates of the counters; longer ones are computed from
// the recorded rates of the shortest window, which keeps their cost to one series per SLO and
// job.
//
// Written for the speed of the C++ Jsonnet: strings are joined with `+` (its std.format takes
// milliseconds a call) and every derived value is a local, computed once (object fields are
// computed again on every access).
local lib = import 'alert.libsonnet';

local units = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
local num = lib.num;

local indentLines(text) =
  std.join('\n', ['  ' + l for l in std.split(std.rstripChars(text, '\n'), '\n')]) + '\n';
local joinMatchers(parts) = std.join(', ', [p for p in parts if p != null && p != '']);

{
  // '5m' -> 300 (one number and one unit, as the configuration writes windows).
  seconds(d)::
    local n = std.length(d);
    assert n >= 2 && std.objectHas(units, d[n - 1]) : 'not a window like "5m": ' + d;
    std.parseInt(d[:n - 1]) * units[d[n - 1]],

  // 299 -> '4m59s'.
  duration(seconds)::
    local parts = [[std.floor(seconds / 86400), 'd'], [std.floor(seconds % 86400 / 3600), 'h'],
                   [std.floor(seconds % 3600 / 60), 'm'], [seconds % 60, 's']];
    std.join('', [std.toString(p[0]) + p[1] for p in parts if p[0] > 0]),

  // The `le` matcher of a bucket bound as every client writes it: prometheus_client writes a
  // whole number with ".0" (le="1.0"), Go clients and Prometheus 3 may not (le="1").
  leMatcher(bound)::
    if bound == std.floor(bound) then 'le=~"' + std.toString(bound) + '(\\\\.0)?"'
    else 'le="' + num(bound) + '"',

  // The SLI kinds, each a function of the SLO's sli. A kind gives `what` (for descriptions),
  // `total` and `bad` or `good`: [metric, extra matchers], counted with rate(). `unmatched`
  // routes (404s, 405s and redirects the router answers) are left out of the HTTP kinds:
  // scanners would otherwise dilute the errors of the real routes. 4xx answers count as good:
  // the service answered as it should.
  kinds:: {
    'http-availability'(sli):: {
      what: 'HTTP requests answered without a server error (5xx)',
      scope: 'route!="unmatched"',
      total: ['http_requests_total', ''],
      bad: ['http_requests_total', 'status=~"5.."'],
    },
    'http-latency'(sli):: {
      what: 'HTTP requests answered within ' + num(sli.threshold) + 's',
      scope: 'route!="unmatched"',
      total: ['http_request_duration_seconds_count', ''],
      good: ['http_request_duration_seconds_bucket', $.leMatcher(sli.threshold)],
    },
    'agent-success'(sli):: {
      what: 'agent executions succeeding',
      scope: '',
      total: ['agent_executions_total', ''],
      bad: ['agent_executions_total', 'status!="success"'],
    },
    'llm-success'(sli):: {
      what: 'LLM requests succeeding',
      scope: '',
      total: ['llm_requests_total', ''],
      bad: ['llm_requests_total', 'status!="success"'],
    },
    custom(sli):: {
      what: 'good events',
    },
  },

  factor(s, pair):: pair.budgetShare * s.windowSeconds / $.seconds(pair.long),

  // The alert windows of the configuration, shortest first: [{name, seconds, counter}].
  alertWindows(c)::
    local pairs = c.sloBurnRateAlerts.fast + c.sloBurnRateAlerts.slow;
    local names = std.set([p.long for p in pairs] + [p.short for p in pairs]);
    local counterMax = $.seconds(c.sloCounterWindowMax);
    std.sort([{ name: w, seconds: $.seconds(w), counter: self.seconds <= counterMax }
              for w in names], function(w) w.seconds),

  // One SLO, with its defaults filled in and every string its rules need.
  plan(c, alertWindows, name, spec)::
    local d = c.sloDefaults;
    local sli = spec.sli;
    assert std.objectHasAll($.kinds, sli.kind) :
           'slos.' + name + '.sli.kind: unknown kind "' + sli.kind + '"';
    assert sli.kind != 'http-latency' || std.member(c.httpDurationBuckets, sli.threshold) :
           'slos.' + name + '.sli.threshold: ' + num(sli.threshold) + ' is not a bucket bound '
           + 'of http_request_duration_seconds ('
           + std.join(', ', [num(b) for b in c.httpDurationBuckets]) + ')';
    local kind = $.kinds[sli.kind](sli);
    local window = std.get(spec, 'window', d.window);
    local windowSeconds = $.seconds(window);
    local budget = 1 - spec.objective / 100;
    local objectiveText = num(spec.objective);
    local budgetText = num(budget);
    local windows = std.sort(
      alertWindows + (if std.member([w.name for w in alertWindows], window) then []
                      else [{ name: window, seconds: windowSeconds, counter: false }]),
      function(w) w.seconds);
    local baseCount = $.duration(windows[0].seconds - 1);
    {
      name: name,
      sli: sli,
      kind: kind,
      selector: std.get(spec, 'selector', d.selector),
      objective: spec.objective,
      objectiveText: objectiveText,
      window: window,
      windowSeconds: windowSeconds,
      budget: budget,
      budgetText: budgetText,
      alerting: d.alerting + std.get(spec, 'alerting', {}),
      what: std.get(spec, 'description', kind.what),
      match: 'slo="' + name + '"',
      windows: windows,
      base: windows[0],
      baseCount: baseCount,
    },

  // Every SLO of the configuration, planned once: its recording rules and alerts.
  build(c)::
    local alertWindows = $.alertWindows(c);
    local plans = [$.plan(c, alertWindows, name, c.slos[name]) for name in std.objectFields(c.slos)];
    local fast = c.sloBurnRateAlerts.fast;
    local slow = c.sloBurnRateAlerts.slow;
    {
      shortRules: std.flattenArrays([$.counterRules(s, w.name) + [$.ratioRule(s, w.name)]
                                     for s in plans for w in s.windows if w.counter]),
      longRules: std.flattenArrays([$.longRules(s, fast[0].long) for s in plans]),
      alerts: std.flattenArrays([
        [
          $.burnAlert(c, s, 'SloFastBurn', fast, s.alerting.fastBurn,
                      'An SLO burns its error budget fast enough to spend it within days.'),
          $.burnAlert(c, s, 'SloSlowBurn', slow, s.alerting.slowBurn,
                      'An SLO burns its error budget faster than it lasts the window.'),
        ]
        for s in plans
      ]),
    },

  // ---- recording rules ------------------------------------------------------------------

  // sum by (job) of a rate over `w`: of a kind's [metric, matchers], or of a custom expression.
  rateExpr(s, part, w)::
    if s.sli.kind == 'custom' then
      'sum by (job) (' + std.strReplace(s.sli[part], '$window', w) + ')'
    else
      local k = s.kind;
      'sum by (job) (rate(' + k[part][0] + '{'
      + joinMatchers([s.selector, k.scope, std.get(s.sli, 'matchers', ''), k[part][1]])
      + '}[' + w + ']))',

  usesGood(s):: if s.sli.kind == 'custom' then std.objectHas(s.sli, 'good')
                else std.objectHas(s.kind, 'good'),

  series(metric, s, w):: 'job_slo:' + metric + ':rate' + w + '{' + s.match + '}',

  record(s, metric, operations, expr):: {
    record: 'job_slo:' + metric + ':' + operations,
    expr: expr,
    labels: { slo: s.name },
  },

  // Events and bad events of one window from the counters. Bad events are 0, not missing,
  // while no bad series exists yet, so that the ratio exists wherever there are events.
  counterRules(s, w)::
    local events = $.series('sli_events', s, w);
    [
      $.record(s, 'sli_events', 'rate' + w, $.rateExpr(s, 'total', w)),
      $.record(s, 'sli_errors', 'rate' + w,
               if $.usesGood(s) then
                 'clamp_min(\n  ' + events + '\n  - on (job) (' + $.rateExpr(s, 'good', w)
                 + ' or on (job) 0 * ' + events + '),\n  0\n)\n'
               else
                 $.rateExpr(s, 'bad', w) + '\n  or on (job) 0 * ' + events + '\n'),
    ],

  // Events and bad events of a long window, from the shortest window's recorded rates: their
  // sum over the window times the sample interval counts the events (each sample is a rate
  // over the base window, so every event adds to base / interval samples), and the interval
  // is found by counting the samples of one base window (1s short of it, so that a sample
  // exactly at its far end does not count twice). Divided by the window's length, this is a
  // rate like rate() over the counters: history that is missing counts as no events.
  averagedRules(s, w):: [
    local series = $.series(metric, s, s.base.name);
    $.record(s, metric, 'rate' + w.name,
             'sum_over_time(' + series + '[' + w.name + ']) / count_over_time(' + series + '['
             + s.baseCount + ']) * ' + s.base.seconds + ' / ' + w.seconds)
    for metric in ['sli_events', 'sli_errors']
  ],

  ratioRule(s, w)::
    $.record(s, 'sli_error', 'ratio_rate' + w,
             $.series('sli_errors', s, w) + ' / (' + $.series('sli_events', s, w) + ' > 0)'),

  // The long windows (evaluated every `slowRuleInterval`), the budget and the objective.
  longRules(s, fastLong)::
    std.flattenArrays([$.averagedRules(s, w) + [$.ratioRule(s, w.name)]
                       for w in s.windows if !w.counter]) + [
      $.record(s, 'error_budget_remaining', 'ratio',
               '1 - job_slo:sli_error:ratio_rate' + s.window + '{' + s.match + '} / '
               + s.budgetText),
      // remaining × window / burn rate, at most the window (a burn that does not spend the
      // rest within the window, or none at all). Burn rates below 0.001 count as 0.001.
      $.record(s, 'error_budget_time_left', 'seconds',
               'clamp_max(\n  clamp_min(job_slo:error_budget_remaining:ratio{' + s.match
               + '}, 0) * ' + s.windowSeconds + '\n    / clamp_min(job_slo:sli_error:ratio_rate'
               + fastLong + '{' + s.match + '} / ' + s.budgetText + ', 0.001),\n  '
               + s.windowSeconds + '\n)\n'),
      {
        record: 'slo:objective:ratio',
        expr: 'vector(' + num(s.objective / 100) + ')',
        labels: { slo: s.name, window: s.window },
      },
    ],

  // ---- alerts ---------------------------------------------------------------------------

  // One window pair: the error ratio over both windows above factor × budget, and at least
  // minBadEvents bad events in the long window.
  pairCondition(s, pair, factorText)::
    local ratio(w) = 'job_slo:sli_error:ratio_rate' + w + '{' + s.match + '} / ' + s.budgetText
                     + ' > ' + factorText;
    '(\n'
    + '  ' + ratio(pair.long) + '\n'
    + '  and on (job) ' + ratio(pair.short) + '\n'
    + '  and on (job) job_slo:sli_errors:rate' + pair.long + '{' + s.match + '} * '
    + $.seconds(pair.long) + ' >= ' + s.alerting.minBadEvents + '\n'
    + ')\n',

  // The value of the alert is the burn rate over the long window of its first pair.
  burnAlert(c, s, name, pairs, severity, summary)::
    local factors = [num($.factor(s, p)) for p in pairs];
    local left =
      '{{ with printf "job_slo:error_budget_remaining:ratio{job=%q, slo=%q}" $labels.job '
      + '$labels.slo | query }}{{ . | first | value | humanizePercentage }}'
      + '{{ else }}an unknown share{{ end }}';
    lib.alert(c, name, {
      severity: severity,
      area: 'slo',
      labels: { slo: s.name },
      expr: 'job_slo:sli_error:ratio_rate' + pairs[0].long + '{' + s.match + '} / '
            + s.budgetText + '\nand on (job) (\n'
            + std.join('  or on (job)\n', [indentLines($.pairCondition(s, pairs[i], factors[i]))
                                           for i in std.range(0, std.length(pairs) - 1)])
            + ')\n',
      summary: summary,
      description:
        'Over the last ' + pairs[0].long + ' job {{ $labels.job }} spent the error budget of '
        + 'SLO {{ $labels.slo }} (' + s.objectiveText + '% of ' + s.what + ' over ' + s.window
        + ') {{ $value | printf "%.1f" }} times as fast as the objective allows; ' + left
        + ' of the budget is left. It fires at '
        + std.join(', or ', [factors[i] + '× over ' + pairs[i].long + ' and ' + pairs[i].short
                             for i in std.range(0, std.length(pairs) - 1)]) + '.',
      dashboardQuery: 'var-slo=' + s.name,
    }),
}
