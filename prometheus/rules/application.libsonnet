// Recording rules of the application area: what services instrumented with vigil_instrument
// expose (HTTP, agents, tools, LLM calls, caches, auth).
local fmt = (import '../lib/format.libsonnet').fmt;
local rules = import '../lib/rules.libsonnet';

{
  prometheusRules+:: {
    local c = $._config,
    local sel = c.serviceSelector,
    groups+: [
      {
        name: 'vigil-http.rules',
        rules:
          rules.errorRatio(['job'], 'http_requests_total', sel, 'status=~"5.."',
                           'http_requests', 'http_request_errors')
          + rules.errorRatio(['job', 'route'], 'http_requests_total', sel, 'status=~"5.."',
                             'http_requests', 'http_request_errors')
          + rules.histogram(['job'], 'http_request_duration_seconds', sel)
          + rules.histogram(['job', 'route'], 'http_request_duration_seconds', sel),
      },
      {
        name: 'vigil-agents.rules',
        rules:
          rules.errorRatio(['job', 'agent'], 'agent_executions_total', sel, 'status!="success"',
                           'agent_executions', 'agent_execution_errors')
          + rules.histogram(['job', 'agent'], 'agent_execution_duration_seconds', sel)
          + rules.errorRatio(['job', 'tool'], 'tool_executions_total', sel, 'status!="success"',
                             'tool_executions', 'tool_execution_errors')
          + rules.histogram(['job', 'tool'], 'tool_execution_duration_seconds', sel),
      },
      {
        name: 'vigil-llm.rules',
        rules:
          rules.errorRatio(['job', 'provider'], 'llm_requests_total', sel, 'status!="success"',
                           'llm_requests', 'llm_request_errors')
          + rules.histogram(['job', 'provider', 'model'], 'llm_request_duration_seconds', sel)
          + [
            {
              record: 'job_provider_model_type:llm_tokens:rate5m',
              expr: fmt('sum by (job, provider, model, type) (rate(llm_tokens_total{%s}[5m]))', sel),
            },
            {
              // US dollars per second.
              record: 'job:llm_cost_usd:rate5m',
              expr: fmt('sum by (job) (rate(llm_cost_usd_total{%s}[5m]))', sel),
            },
            {
              // US dollars spent over the last hour.
              record: 'job:llm_cost_usd:increase1h',
              expr: fmt('sum by (job) (increase(llm_cost_usd_total{%s}[1h]))', sel),
            },
          ]
          // Who the spend is for (tenant) and who makes it (agent); how fast answers start.
          + [
            {
              record: fmt('job_%s:llm_cost_usd:rate5m', by),
              expr: fmt('sum by (job, %s) (rate(llm_cost_usd_total{%s}[5m]))', [by, sel]),
            }
            for by in ['tenant', 'agent']
          ]
          + [
            {
              record: fmt('job_%s_type:llm_tokens:rate5m', by),
              expr: fmt('sum by (job, %s, type) (rate(llm_tokens_total{%s}[5m]))', [by, sel]),
            }
            for by in ['tenant', 'agent']
          ]
          + rules.histogram(['job', 'provider', 'model'], 'llm_time_to_first_token_seconds', sel),
      },
      {
        name: 'vigil-cache-auth.rules',
        rules: [
          {
            record: 'job_cache:cache_hits:rate5m',
            expr: fmt('sum by (job, cache) (rate(cache_hits_total{%s}[5m]))', sel),
          },
          {
            record: 'job_cache:cache_misses:rate5m',
            expr: fmt('sum by (job, cache) (rate(cache_misses_total{%s}[5m]))', sel),
          },
          {
            // Lookups per second; a cache that never missed (or never hit) has no series of
            // that counter, which counts as 0.
            record: 'job_cache:cache_lookups:rate5m',
            expr: |||
              (job_cache:cache_hits:rate5m or 0 * job_cache:cache_misses:rate5m)
                + (job_cache:cache_misses:rate5m or 0 * job_cache:cache_hits:rate5m)
            |||,
          },
          {
            record: 'job_cache:cache_hits:ratio_rate5m',
            expr: |||
              (job_cache:cache_hits:rate5m or 0 * job_cache:cache_misses:rate5m)
                / (job_cache:cache_lookups:rate5m > 0)
            |||,
          },
          {
            record: 'job_outcome:auth_logins:rate5m',
            expr: fmt('sum by (job, outcome) (rate(auth_logins_total{%s}[5m]))', sel),
          },
        ],
      },
    ],
  },
}
