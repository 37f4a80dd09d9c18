// The one mechanism for "how much since 00:00 UTC" (and since the 1st of the month) from
// counters: tenant messages and API calls, LLM cost. PromQL has no range that starts at
// midnight, so the increase is built in two levels (docs/tenant-usage.md, "Daily rollups"):
//
// 1. Steps, in a group evaluated every `step` (the scrape interval): each counter series'
//    increase since the previous evaluation, `value(t) - value(t - step)`, where value(t) is the
//    series' last sample at or before t within `gap`. The same function at both ends makes the
//    steps of a day add up exactly to value(now) - value(midnight), however the samples fall:
//    a missed scrape or a restarting exporter (stale markers, a gap shorter than `gap`) only
//    moves growth into the step that sees it again. A drop is a counter reset: the step is the
//    value since the reset. A series seen for the first time adds nothing (its first value was
//    counted before the first scrape, or is the all-time total of a database count).
//    Every step is recorded under `day="even"` or `day="odd"`, the parity of its UTC day.
// 2. Today: the sum over the last 24 hours of the steps of today's parity. A 24-hour window
//    holds today and yesterday only, and they differ in parity.
//
// Exact within one step: growth between the last sample before midnight and midnight is
// counted in the new day. A month adds the last value of each earlier day of the month.
local format = import 'format.libsonnet';
local fmt = format.fmt;
{
  // A UTC day's parity as a filter: `and on () <even>` keeps a vector on even days since the epoch.
  even:: '(vector(time()) % 172800 < 86400)',
  odd:: '(vector(time()) % 172800 >= 86400)',

  // Per counter series: its increase over the last `step`, reset-aware, gap-tolerant.
  seriesStep(counter, step, gap)::
    local now = fmt('last_over_time(%s[%s])', [counter, gap]);
    local before = fmt('last_over_time(%s[%s] offset %s)', [counter, gap, step]);
    fmt('(%(now)s - %(before)s >= 0)\n  or\n(%(now)s < %(before)s)', { now: now, before: before }),

  // The two recording rules of the steps (one per day parity), `aggregate` wraps the
  // per-series steps, e.g. function(s) 'sum by (job) (%s)' % s.
  stepRules(record, counter, step, gap, aggregate=function(s) fmt('(\n%s\n)', s)):: [
    {
      record: record,
      expr: fmt('%s\n  and on () %s', [aggregate($.seriesStep(counter, step, gap)), parity[1]]),
      labels: { day: parity[0] },
    }
    for parity in [['even', $.even], ['odd', $.odd]]
  ],

  // Increase since 00:00 UTC from the steps: the sum of today's parity over the last 24 hours,
  // and 0 (not nothing) while today has no step yet.
  today(steps):: fmt(|||
    sum without (day) (
        sum_over_time(%(steps)s{day="even"}[1d]) * (time() %% 172800 < bool 86400)
      or
        sum_over_time(%(steps)s{day="odd"}[1d]) * (time() %% 172800 >= bool 86400)
    )
  |||, { steps: steps }),

  // Increase over the last 24 hours (both parities).
  lastDay(steps):: fmt('sum without (day) (sum_over_time(%s[1d]))', steps),

  // Increase since the 1st of the month 00:00 UTC: today plus the last value of every earlier
  // day of the month. A subquery with a 1d step is evaluated at each UTC midnight, where the
  // last value of `today` before it is the previous day's total; a day belongs to the month
  // when its month number matches the current one modulo 3 (a 31-day window holds at most
  // three months, and any three consecutive months differ modulo 3).
  month(today):: fmt(|||
    %(today)s
      + (
        %(earlier)s
        or 0 * %(today)s
      )
  |||, {
    today: today,
    earlier: std.join('\n    or\n    ', [
      std.rstripChars(fmt(|||
        sum_over_time((last_over_time(%(today)s[1h] offset 1ms) and on () (month(vector(time() - 1)) %% 3 == %(k)d))[31d:1d])
          and on () (month() %% 3 == %(k)d)
      |||, { today: today, k: k }), '\n')
      for k in [0, 1, 2]
    ]),
  }),

  // Seconds left until the 1st of next month, 00:00 UTC, as a scalar.
  monthSecondsLeft:: 'scalar((days_in_month() - day_of_month() + 1) * 86400 - vector(time()) % 86400)',

  // The projected LLM cost of the month per tenant as a share of its monthly budget
  // (`llmBudget`), as the branches to join with `or`: one per tenant with a budget of its own,
  // one for every other tenant (their names' dots escaped in the regex). TenantLlmCostOverBudget
  // fires where a branch is above 1, and the tenant dashboard draws its line there. `matchers`
  // narrows every branch (the dashboard's tenant variable).
  llmBudgetShares(budget, matchers=''):: (
    local own = std.objectFields(budget.perTenantPerMonthUsdOverrides);
    local others = std.join('|', [std.strReplace(t, '.', '\\\\.') for t in own]);
    local projected(matcher) =
      local all = std.join(', ', [m for m in [matcher, matchers] if m != '']);
      'sum by (tenant) (job_tenant:llm_cost_usd:projected_month' + (if all == '' then '' else '{' + all + '}') + ')';
    [projected(fmt('tenant="%s"', t)) + ' / ' + format.num(budget.perTenantPerMonthUsdOverrides[t]) for t in own]
    + [projected(if own == [] then '' else fmt('tenant!~"%s"', others)) + ' / ' + format.num(budget.perTenantPerMonthUsd)]
  ),
}
