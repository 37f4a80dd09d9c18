// Recording rules of usage per UTC day and month: tenant messages and API calls, LLM cost in
// total and per tenant. One mechanism for all of them, prometheus/lib/usage.libsonnet.
local fmt = (import '../lib/format.libsonnet').fmt;
local usage = import '../lib/usage.libsonnet';

{
  prometheusRules+:: {
    local c = $._config,
    local u = c.usage,
    local exporter = c.exporterSelector,
    local service = c.serviceSelector,
    local steps(record, counter, aggregate=null) =
      if aggregate == null then usage.stepRules(record, counter, u.step, u.gap)
      else usage.stepRules(record, counter, u.step, u.gap, aggregate),
    groups+: [
      {
        // Level 1: the increase of every counter series since the previous evaluation.
        name: 'vigil-usage-steps.rules',
        interval: u.step,
        rules:
          steps('tenant_day:vigil_tenant_messages:increase_step', fmt('vigil_tenant_messages_total{%s}', exporter))
          + steps('tenant_day:vigil_tenant_api_calls:increase_step', fmt('vigil_tenant_api_calls_total{%s}', exporter))
          + steps('job_day:llm_cost_usd:increase_step', fmt('llm_cost_usd_total{%s}', service),
                  function(s) fmt('sum by (job) (\n%s\n)', s))
          + steps('job_tenant_day:llm_cost_usd:increase_step', fmt('llm_cost_usd_total{%s, tenant!=""}', service),
                  function(s) fmt('sum by (job, tenant) (\n%s\n)', s)),
      },
      {
        // Level 2: since 00:00 UTC and since the 1st of the month.
        name: 'vigil-usage-today.rules',
        interval: c.slowRuleInterval,
        rules: [
          {
            // Messages of the tenant since 00:00 UTC, by direction.
            record: 'tenant:vigil_tenant_messages:increase_today',
            expr: usage.today('tenant_day:vigil_tenant_messages:increase_step'),
          },
          {
            record: 'tenant:vigil_tenant_api_calls:increase_today',
            expr: usage.today('tenant_day:vigil_tenant_api_calls:increase_step'),
          },
          {
            // US dollars spent since 00:00 UTC.
            record: 'job:llm_cost_usd:increase_today',
            expr: usage.today('job_day:llm_cost_usd:increase_step'),
          },
          {
            record: 'job_tenant:llm_cost_usd:increase_today',
            expr: usage.today('job_tenant_day:llm_cost_usd:increase_step'),
          },
          {
            // US dollars spent by the tenant since the 1st of the month, 00:00 UTC.
            record: 'job_tenant:llm_cost_usd:increase_month',
            expr: usage.month('job_tenant:llm_cost_usd:increase_today'),
          },
          {
            // ... and by the end of the month, at the pace of the last 24 hours.
            record: 'job_tenant:llm_cost_usd:projected_month',
            expr: fmt(|||
              job_tenant:llm_cost_usd:increase_month
                + %s / 86400
                  * %s
            |||, [usage.lastDay('job_tenant_day:llm_cost_usd:increase_step'), usage.monthSecondsLeft]),
          },
        ],
      },
    ],
  },
}
