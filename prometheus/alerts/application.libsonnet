// Alerts about the services instrumented with vigil_instrument: agents, tools, LLM calls and
// their cost, caches and authentication. What users feel of HTTP (errors, latency) pages
// through the SLOs (slo.libsonnet); these name a cause: which agent, tool or provider fails.
local fmt = (import '../lib/format.libsonnet').fmt;
local lib = import '../lib/alert.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local p = lib.params(c),
    local alert(name, spec) = lib.alert(c, name, spec { area: 'application' }),
    groups+: [{
      name: 'vigil-application',
      rules: [
        // HTTP errors and latency: the SLOs' burn-rate alerts (slo.libsonnet).
        // ---- Agents and tools ----
        alert('AgentErrorRatioHigh', {
          severity: 'warning',
          expr: fmt(|||
            job_agent:agent_execution_errors:ratio_rate5m > %(agentErrorRatio)s
            and on (job, agent) job_agent:agent_executions:rate5m >= %(agentMinExecutionsPerSecond)s
          |||, p),
          summary: 'Too many agent executions fail.',
          description: fmt('{{ $value | humanizePercentage }} of the executions of agent {{ $labels.agent }} in job {{ $labels.job }} fail, above %(agentErrorRatioPct)s.', p),
        }),
        alert('AgentLatencyHigh', {
          severity: 'warning',
          expr: fmt('job_agent:agent_execution_duration_seconds:histogram_quantile{quantile="0.95"} > %(agentLatencyP95Seconds)s', p),
          summary: 'Agent executions are slow.',
          description: fmt('The 95th percentile of the execution time of agent {{ $labels.agent }} in job {{ $labels.job }} is {{ $value | humanizeDuration }}, above %(agentLatencyP95Seconds)ss.', p),
        }),
        alert('ToolErrorRatioHigh', {
          severity: 'warning',
          expr: fmt(|||
            job_tool:tool_execution_errors:ratio_rate5m > %(toolErrorRatio)s
            and on (job, tool) job_tool:tool_executions:rate5m >= %(toolMinExecutionsPerSecond)s
          |||, p),
          summary: 'Too many tool executions fail.',
          description: fmt('{{ $value | humanizePercentage }} of the executions of tool {{ $labels.tool }} in job {{ $labels.job }} fail, above %(toolErrorRatioPct)s.', p),
        }),
        // ---- LLM ----
        alert('LlmProviderErrorsHigh', {
          severity: 'warning',
          expr: fmt('job_provider:llm_request_errors:rate5m * 60 > %(llmErrorsPerMinute)s', p),
          summary: 'An LLM provider returns many errors.',
          description: fmt('LLM requests of job {{ $labels.job }} to provider {{ $labels.provider }} fail {{ $value | humanize }} times per minute, above %(llmErrorsPerMinute)s.', p),
        }),
        alert('LlmLatencyHigh', {
          severity: 'warning',
          expr: fmt('job_provider_model:llm_request_duration_seconds:histogram_quantile{quantile="0.95"} > %(llmLatencyP95Seconds)s', p),
          summary: 'LLM requests are slow.',
          description: fmt('The 95th percentile of the duration of requests of job {{ $labels.job }} to {{ $labels.provider }} model {{ $labels.model }} is {{ $value | humanizeDuration }}, above %(llmLatencyP95Seconds)ss.', p),
        }),
        alert('LlmCostPerHourOverBudget', {
          severity: 'warning',
          expr: fmt('sum(job:llm_cost_usd:increase1h) > %(budgetPerHour)s', p),
          summary: 'LLM spending over the last hour is above budget.',
          description: fmt('LLM requests of all services cost {{ $value | printf "%%.2f" }} USD over the last hour, above the budget of %(budgetPerHour)s USD per hour.', p),
        }),
        alert('LlmCostTodayOverBudget', {
          severity: 'warning',
          expr: fmt('sum(job:llm_cost_usd:increase_today) > %(budgetPerDay)s', p),
          summary: 'LLM spending today is above budget.',
          description: fmt('LLM requests of all services cost {{ $value | printf "%%.2f" }} USD since 00:00 UTC, above the budget of %(budgetPerDay)s USD per day.', p),
        }),
        // ---- Caches ----
        alert('CacheHitRatioLow', {
          severity: 'warning',
          expr: fmt(|||
            job_cache:cache_hits:ratio_rate5m < %(cacheHitRatio)s
            and on (job, cache) job_cache:cache_lookups:rate5m >= %(cacheMinLookupsPerSecond)s
          |||, p),
          summary: 'An application cache misses too often.',
          description: fmt('Only {{ $value | humanizePercentage }} of the lookups in cache {{ $labels.cache }} of job {{ $labels.job }} are hits, below %(cacheHitRatioPct)s.', p),
        }),
        // ---- Auth ----
        alert('AuthFailedLoginBurst', {
          severity: 'warning',
          expr: fmt('sum by (job) (increase(auth_logins_total{%(serviceSelector)s, outcome="failure"}[%(authBurst)s])) > %(failedLoginBurst)s', p),
          summary: 'A burst of failed logins.',
          description: fmt('Job {{ $labels.job }} saw {{ $value | humanize }} failed logins in the last %(authBurst)s, above %(failedLoginBurst)s.', p),
        }),
        alert('AuthApiKeyRevocationBurst', {
          severity: 'info',
          expr: fmt('sum by (job) (increase(auth_api_keys_revoked_total{%(serviceSelector)s}[%(authBurst)s])) > %(apiKeyRevocationBurst)s', p),
          summary: 'A burst of API-key revocations.',
          description: fmt('Job {{ $labels.job }} revoked {{ $value | humanize }} API keys in the last %(authBurst)s, above %(apiKeyRevocationBurst)s.', p),
        }),
      ],
    }],
  },
}
