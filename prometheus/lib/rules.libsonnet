// Helpers for recording rules named level:metric:operations, where the level lists the labels
// the result keeps (`job_agent:` keeps job and agent).
local fmt = (import 'format.libsonnet').fmt;
{
  quantiles:: ['0.5', '0.95', '0.99'],

  // A classic histogram: its bucket rates summed by `by` plus `le`, and the p50/p95/p99 computed
  // from them, all under one name with a `quantile` label:
  //   <level>_le:<metric>_bucket:rate5m and <level>:<metric>:histogram_quantile{quantile}
  histogram(by, metric, selector):: [
    {
      record: fmt('%s_le:%s_bucket:rate5m', [std.join('_', by), metric]),
      expr: fmt('sum by (%s, le) (rate(%s_bucket{%s}[5m]))', [std.join(', ', by), metric, selector]),
    },
  ] + [
    {
      record: fmt('%s:%s:histogram_quantile', [std.join('_', by), metric]),
      expr: fmt('histogram_quantile(%s, %s_le:%s_bucket:rate5m)', [q, std.join('_', by), metric]),
      labels: { quantile: q },
    }
    for q in self.quantiles
  ],

  // Traffic and errors of a counter with an outcome label, summed by `by`:
  //   <level>:<things>:rate5m, <level>:<errors>:rate5m and <level>:<errors>:ratio_rate5m.
  // The error rate is 0, not missing, while the error series do not exist yet, so that the
  // ratio exists wherever there is traffic.
  errorRatio(by, counter, selector, errorMatcher, things, errors):: [
    {
      record: fmt('%s:%s:rate5m', [std.join('_', by), things]),
      expr: fmt('sum by (%s) (rate(%s{%s}[5m]))', [std.join(', ', by), counter, selector]),
    },
    {
      record: fmt('%s:%s:rate5m', [std.join('_', by), errors]),
      expr: fmt(|||
        sum by (%(by)s) (rate(%(counter)s{%(selector)s, %(errorMatcher)s}[5m]))
          or 0 * %(level)s:%(things)s:rate5m
      |||, { by: std.join(', ', by), level: std.join('_', by), counter: counter,
              selector: selector, errorMatcher: errorMatcher, things: things }),
    },
    {
      record: fmt('%s:%s:ratio_rate5m', [std.join('_', by), errors]),
      expr: fmt('%(level)s:%(errors)s:rate5m / (%(level)s:%(things)s:rate5m > 0)', {
        level: std.join('_', by), things: things, errors: errors,
      }),
    },
  ],
}
