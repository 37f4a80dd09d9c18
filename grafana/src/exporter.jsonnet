// The exporter itself: its collectors and business queries (durations, failures, staleness) and
// what a scrape costs.
local v = import 'lib/vigil.libsonnet';
local g = v.g;
local t = v.thresholds;

local sel = v.sel;
// Generic series (scrape_*, process_*) of the targets that are Vigil exporters only.
local vigilOnly(expr) = '%s and on (job, instance) vigil_build_info{%s}' % [expr, sel()];
// Time since the last success in units of the job's own interval: the Stale alerts fire above
// `staleIntervals`.
local staleness(kind) =
  '(time() - vigil_%s_last_success_timestamp_seconds{%s}) / vigil_%s_interval_seconds{%s}' % [kind, sel(), kind, sel()];

v.dashboard(
  'exporter', 'Vigil / Exporter',
  'The Vigil exporter itself: how long each collector and business query takes, whether it fails or has gone stale, and what a scrape of /metrics costs.',
  jobMetric='vigil_build_info', jobSelector=v.selectors.exporter,
  items=[
    g.row('Health'),
    g.stat('Collectors failing', 'Collectors whose last run failed. VigilCollectorFailing fires when one keeps failing.', 'short',
           [g.target('count(vigil_collector_success{%s} == 0) or vector(0)' % sel())],
           thresholds=[g.threshold(1)], links=[v.runbook('VigilCollectorFailing')]),
    g.stat('Business queries failing', 'Business queries whose last run failed. VigilBusinessQueryFailing fires when one keeps failing.', 'short',
           [g.target('count(vigil_business_query_success{%s} == 0) or vector(0)' % sel())],
           thresholds=[g.threshold(1)], links=[v.runbook('VigilBusinessQueryFailing')]),
    g.stat('Stalest job', 'Time since the last success of the stalest collector or business query, in its own intervals. The Stale alerts fire above the red mark.', 'short',
           [g.target('max(%s or %s)' % [staleness('collector'), staleness('business_query')])],
           decimals=1, thresholds=[g.threshold(t.staleIntervals)],
           links=[v.runbook('VigilCollectorStale'), v.runbook('VigilBusinessQueryStale')]),
    g.stat('Scrape duration', 'How long Prometheus took to scrape the exporter (worst target).', 's',
           [g.target('max(%s)' % vigilOnly('scrape_duration_seconds{%s}' % sel()))]),
    g.stat('Exposition size', 'Size of the text exposition as served with gzip, which is what Prometheus asks for.', 'bytes',
           [g.target('max(vigil_exposition_size_bytes{%s})' % sel('format="text", encoding="gzip"'))]),
    g.table('Build', 'Exporter version and Python version of each target, from vigil_build_info.', 'none',
            [g.target('vigil_build_info{%s}' % sel())], w=4, h=4,
            hide=['Value', 'job', '__name__'], columns={ instance: 'Instance', version: 'Version', python_version: 'Python' }),

    g.row('Collectors'),
    g.timeseries('Collector duration', 'Duration of the last run of each collector.', 's',
                 [g.target('vigil_collector_duration_seconds{%s}' % sel(), '{{collector}}')], w=8, min=0),
    g.timeseries('Collector success', 'Whether the last run of each collector succeeded (1) or failed (0).', 'none',
                 [g.target('vigil_collector_success{%s}' % sel(), '{{collector}}')], w=8, min=0, max=1,
                 thresholds=[g.threshold(1, 'green')], base='red', links=[v.runbook('VigilCollectorFailing')]),
    g.timeseries('Collector staleness', 'Time since the last success of each collector in units of its interval; VigilCollectorStale fires above the dashed line.',
                 'short', [g.target(staleness('collector'), '{{collector}}')],
                 w=8, min=0, thresholds=[g.threshold(t.staleIntervals)], links=[v.runbook('VigilCollectorStale')]),

    g.row('Business queries'),
    g.timeseries('Query duration', 'Duration of the last run of each business query.', 's',
                 [g.target('vigil_business_query_duration_seconds{%s}' % sel(), '{{query}}')], w=8, min=0),
    g.timeseries('Query staleness', 'Time since the last success of each business query in units of its interval; VigilBusinessQueryStale fires above the dashed line.',
                 'short', [g.target(staleness('business_query'), '{{query}}')],
                 w=8, min=0, thresholds=[g.threshold(t.staleIntervals)], links=[v.runbook('VigilBusinessQueryStale')]),
    g.timeseries('Skipped runs and dropped series', 'Runs skipped because the previous one was still going (per second), and rows beyond the series cap in the last run.', 'short', [
      g.target(v.rate('vigil_business_query_skipped_runs_total', 'query'), 'skipped/s {{query}}'),
      g.target('vigil_business_query_series_dropped{%s}' % sel(), 'dropped {{query}}'),
    ], w=8, min=0),

    g.row('Scrape cost'),
    g.timeseries('Scrape duration', 'How long each Prometheus scrape of the exporter took, and the time the exporter spent on its last render of /metrics (text and OpenMetrics, with gzip), which a scrape never waits for.', 's', [
      g.target(vigilOnly('scrape_duration_seconds{%s}' % sel()), 'scrape {{instance}}'),
      g.target('vigil_exposition_render_duration_seconds{%s}' % sel(), 'render {{instance}}'),
    ], w=8, min=0),
    g.timeseries('Exposition size', 'Size of the /metrics body by format and encoding.', 'bytes',
                 [g.target('vigil_exposition_size_bytes{%s}' % sel(), '{{format}} {{encoding}}')], w=8, min=0),
    g.timeseries('Samples per scrape', 'Samples Prometheus took from each scrape, and those left after relabelling.', 'short', [
      g.target(vigilOnly('scrape_samples_scraped{%s}' % sel()), 'scraped {{instance}}'),
      g.target(vigilOnly('scrape_samples_post_metric_relabeling{%s}' % sel()), 'kept {{instance}}'),
    ], w=8, min=0),
    g.timeseries('Exporter CPU', 'CPU seconds per second the exporter process uses.', 'percentunit',
                 [g.target(vigilOnly('rate(process_cpu_seconds_total{%s}[$__rate_interval])' % sel()), '{{instance}}')], w=12, min=0),
    g.timeseries('Exporter memory', 'Resident memory of the exporter process.', 'bytes',
                 [g.target(vigilOnly('process_resident_memory_bytes{%s}' % sel()), '{{instance}}')], w=12, min=0),
  ],
)
