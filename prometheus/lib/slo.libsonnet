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
local lib = import 'alert.libsonnet';

local units = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
local num = lib.num;

local quote(s) = '"%s"' % std.strReplace(std.strReplace(s, '\\', '\\\\'), '"', '\\"');
local indentLines(text) = std.join('\n', ['  ' + l for l in std.split(std.rstripChars(text, '\n'), '\n')]) + '\n';
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
    std.join('', ['%d%s' % p for p in parts if p[0] > 0]),

  // The `le` matcher of a bucket bound as every client writes it: prometheus_client writes a
  // whole number with ".0" (le="1.0"), Go clients and Prometheus 3 may not (le="1").
  leMatcher(bound)::
    if bound == std.floor(bound) then 'le=~"%d(\\\\.0)?"' % bound else 'le="%s"' % num(bound),

  // The SLI kinds, each a function of the SLO's sli and matchers. A kind gives `what` (for
  // descriptions), `total` and `bad` or `good`: [metric, extra matchers] counted with rate().
  // `unmatched` routes (404s, 405s and redirects the router answers) are left out of the HTTP
  // kinds: scanners would otherwise dilute the errors of the real routes. 4xx answers count as
  // good: the service answered as it should.
  kinds:: {
    'http-availability'(sli):: {
      what: 'HTTP requests answered without a server error (5xx)',
      scope: 'route!="unmatched"',
      total: ['http_requests_total', ''],
      bad: ['http_requests_total', 'status=~"5.."'],
    },
    'http-latency'(sli):: {
      what: 'HTTP requests answered within %ss' % num(sli.threshold),
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

  // An SLO with its defaults filled in and the numbers the rules need.
  normalize(c, name, spec)::
    local d = c.sloDefaults;
    local s = d + spec + { alerting: d.alerting + std.get(spec, 'alerting', {}) };
    assert std.objectHasAll($.kinds, s.sli.kind) :
           'slos.%s.sli.kind: unknown kind "%s"' % [name, s.sli.kind];
    assert s.sli.kind != 'http-latency' || std.member(c.httpDurationBuckets, s.sli.threshold) :
           'slos.%s.sli.threshold: %s is not a bucket bound of http_request_duration_seconds (%s)'
           % [name, s.sli.threshold, std.join(', ', [num(b) for b in c.httpDurationBuckets])];
    s {
      name: name,
      kind: $.kinds[s.sli.kind](s.sli),
      budget: 1 - s.objective / 100,
      windowSeconds: $.seconds(s.window),
      what: std.get(s, 'description', self.kind.what),
      match: 'slo="%s"' % name,
    },

  slos(c):: [$.normalize(c, name, c.slos[name]) for name in std.objectFields(c.slos)],

  // Every window an SLO records, shortest first: the alert windows and the SLO window.
  windows(c, s)::
    local pairs = c.sloBurnRateAlerts.fast + c.sloBurnRateAlerts.slow;
    std.sort(std.set([p.long for p in pairs] + [p.short for p in pairs] + [s.window]),
             $.seconds),

  counterWindow(c, w):: $.seconds(w) <= $.seconds(c.sloCounterWindowMax),

  factor(s, pair):: pair.budgetShare * s.windowSeconds / $.seconds(pair.long),

  // ---- recording rules ------------------------------------------------------------------

  // sum by (job) of a rate over `w`: of a kind's [metric, matchers], or of a custom expression.
  rateExpr(s, part, w)::
    if s.sli.kind == 'custom' then
      'sum by (job) (%s)' % std.strReplace(s.sli[part], '$window', w)
    else
      local k = s.kind;
      'sum by (job) (rate(%s{%s}[%s]))' % [
        k[part][0],
        joinMatchers([s.selector, k.scope, std.get(s.sli, 'matchers', ''), k[part][1]]),
        w,
      ],

  usesGood(s):: if s.sli.kind == 'custom' then std.objectHas(s.sli, 'good')
                else std.objectHas(s.kind, 'good'),

  series(metric, s, w):: 'job_slo:%s:rate%s{%s}' % [metric, w, s.match],

  record(s, metric, w, expr):: {
    record: 'job_slo:%s:%s' % [metric, w],
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
                 'clamp_min(\n  %s\n  - on (job) (%s or on (job) 0 * %s),\n  0\n)\n'
                 % [events, $.rateExpr(s, 'good', w), events]
               else
                 '%s\n  or on (job) 0 * %s\n' % [$.rateExpr(s, 'bad', w), events]),
    ],

  // Events and bad events of a long window, from the shortest window's recorded rates: their
  // sum over the window times the sample interval counts the events (each sample is a rate
  // over `base`, so every event adds to base / interval samples), and the interval is found
  // by counting the samples of one base window (1s short of it, so that a sample exactly at
  // its far end does not count twice). Divided by the window's length, this is a rate like
  // rate() over the counters: history that is missing counts as no events.
  averagedRules(s, base, w):: [
    local series = $.series(metric, s, base);
    $.record(s, metric, 'rate' + w, 'sum_over_time(%s[%s]) / count_over_time(%s[%s]) * %d / %d'
             % [series, w, series, $.duration($.seconds(base) - 1), $.seconds(base), $.seconds(w)])
    for metric in ['sli_events', 'sli_errors']
  ],

  ratioRule(s, w)::
    $.record(s, 'sli_error', 'ratio_rate' + w, '%s / (%s > 0)'
             % [$.series('sli_errors', s, w), $.series('sli_events', s, w)]),

  // The rules of the counter windows (evaluated often) and of the long windows (evaluated
  // every `slowRuleInterval`): two groups for all SLOs.
  shortRules(c):: std.flattenArrays([
    $.counterRules(s, w) + [$.ratioRule(s, w)]
    for s in $.slos(c)
    for w in $.windows(c, s)
    if $.counterWindow(c, w)
  ]),

  longRules(c):: std.flattenArrays([
    local windows = $.windows(c, s);
    local fastLong = c.sloBurnRateAlerts.fast[0].long;
    std.flattenArrays([
      $.averagedRules(s, windows[0], w) + [$.ratioRule(s, w)]
      for w in windows
      if !$.counterWindow(c, w)
    ]) + [
      {
        record: 'job_slo:error_budget_remaining:ratio',
        expr: '1 - job_slo:sli_error:ratio_rate%s{%s} / %s' % [s.window, s.match, num(s.budget)],
        labels: { slo: s.name },
      },
      {
        // remaining × window / burn rate, at most the window (a burn that does not spend the
        // rest within the window, or none at all). Burn rates below 0.001 count as 0.001.
        record: 'job_slo:error_budget_time_left:seconds',
        expr: |||
          clamp_max(
            clamp_min(job_slo:error_budget_remaining:ratio{%(match)s}, 0) * %(window)s
              / clamp_min(job_slo:sli_error:ratio_rate%(long)s{%(match)s} / %(budget)s, 0.001),
            %(window)s
          )
        ||| % { match: s.match, window: s.windowSeconds, long: fastLong, budget: num(s.budget) },
        labels: { slo: s.name },
      },
      {
        record: 'slo:objective:ratio',
        expr: 'vector(%s)' % num(s.objective / 100),
        labels: { slo: s.name, window: s.window },
      },
    ]
    for s in $.slos(c)
  ]),

  // ---- alerts ---------------------------------------------------------------------------

  // One window pair: the error ratio over both windows above factor × budget, and at least
  // minBadEvents bad events in the long window.
  pairCondition(s, pair)::
    local f = num($.factor(s, pair));
    local b = num(s.budget);
    |||
      (
        job_slo:sli_error:ratio_rate%(long)s{%(match)s} / %(b)s > %(f)s
        and on (job) job_slo:sli_error:ratio_rate%(short)s{%(match)s} / %(b)s > %(f)s
        and on (job) job_slo:sli_errors:rate%(long)s{%(match)s} * %(seconds)d >= %(min)d
      )
    ||| % { long: pair.long, short: pair.short, match: s.match, b: b, f: f,
            seconds: $.seconds(pair.long), min: s.alerting.minBadEvents },

  pairsText(s, pairs)::
    std.join(', or ', ['%s× over %s and %s' % [num($.factor(s, p)), p.long, p.short]
                       for p in pairs]),

  // The value of the alert is the burn rate over the long window of its first pair.
  burnAlert(c, s, name, pairs, severity, summary)::
    local first = pairs[0];
    local left =
      '{{ with printf "job_slo:error_budget_remaining:ratio{job=%q, slo=%q}" $labels.job '
      + '$labels.slo | query }}{{ . | first | value | humanizePercentage }}'
      + '{{ else }}an unknown share{{ end }}';
    lib.alert(c, name, {
      severity: severity,
      area: 'slo',
      labels: { slo: s.name },
      expr: 'job_slo:sli_error:ratio_rate%s{%s} / %s\nand on (job) (\n%s)\n' % [
        first.long, s.match, num(s.budget), std.join('  or on (job)\n', [
          indentLines($.pairCondition(s, p)) for p in pairs])],
      summary: summary,
      description:
        'Over the last ' + first.long + ' job {{ $labels.job }} spent the error budget of SLO '
        + '{{ $labels.slo }} (' + num(s.objective) + '% of ' + s.what + ' over ' + s.window
        + ') {{ $value | printf "%.1f" }} times as fast as the objective allows; ' + left
        + ' of the budget is left. It fires at ' + $.pairsText(s, pairs) + '.',
      dashboardQuery: 'var-slo=' + s.name,
    }),

  alerts(c):: std.flattenArrays([
    [
      $.burnAlert(c, s, 'SloFastBurn', c.sloBurnRateAlerts.fast, s.alerting.fastBurn,
                  'An SLO burns its error budget fast enough to spend it within days.'),
      $.burnAlert(c, s, 'SloSlowBurn', c.sloBurnRateAlerts.slow, s.alerting.slowBurn,
                  'An SLO burns its error budget faster than it lasts the window.'),
    ]
    for s in $.slos(c)
  ]),
}
