// Is everything up, what is firing, the four golden signals of the services and the error budgets
// of their SLOs at a glance.
// Every panel links to the dashboard with the details.
local v = import 'lib/vigil.libsonnet';
local g = v.g;
local t = v.thresholds;

local sel = v.sel;
local jsel = v.jobSel;
local upDown = [{ type: 'value', options: { '0': { text: 'DOWN', color: 'red' }, '1': { text: 'UP', color: 'green' } } }];

v.dashboard(
  'overview', 'Vigil / Overview',
  'Start here: whether every target, database and Redis is up, which alerts fire, the request rate, error ratio and latency of the services, the error budgets of their SLOs, and how saturated the host, pools and connections are.',
  jobMetric='up', jobSelector=v.selectors.targets,
  items=[
    g.row('Is everything up'),
    g.stat('Targets up', 'Scrape targets Prometheus reached on its last scrape, of all targets.', 'short',
           [g.target('sum(up{%s})' % sel(), 'up'), g.target('count(up{%s})' % sel(), 'targets')],
           graph=false, links=[v.runbook('TargetDown')]),
    g.stat('Targets down', 'Scrape targets Prometheus could not reach on its last scrape. TargetDown (a ticket) fires when more than 10 % of the targets of a job stay down for 10 minutes, JobDown (a page) when a whole job does.', 'short',
           [g.target('count(up{%s} == 0) or vector(0)' % sel())],
           thresholds=[g.threshold(1)], graph=false, links=[v.runbook('TargetDown')]),
    g.stat('Firing alerts', 'Alerts firing now, without the Watchdog heartbeat (which always fires). Every alert of the stack: not filtered by job or instance.', 'short',
           [g.target('count(ALERTS{alertstate="firing", alertname!="Watchdog"}) or vector(0)')],
           thresholds=[g.threshold(1, 'orange')], graph=false),
    g.stat('Databases', 'Whether every database the exporter probes answered its last probe.', 'none',
           [g.target('min(vigil_db_up{%s})' % sel())], thresholds=[g.threshold(1, 'green')], base='red',
           mappings=upDown, graph=false, links=[v.dashboardLink('database', 'Database dashboard'), v.runbook('DatabaseDown')]),
    g.stat('Redis', 'Whether every Redis the exporter watches answered its last PING.', 'none',
           [g.target('min(vigil_redis_up{%s})' % sel())], thresholds=[g.threshold(1, 'green')], base='red',
           mappings=upDown, graph=false, links=[v.dashboardLink('redis', 'Redis dashboard'), v.runbook('RedisDown')]),
    g.stat('Collectors failing', 'Exporter collectors and business queries whose last run failed.', 'short',
           [g.target('count(vigil_collector_success{%s} == 0 or vigil_business_query_success{%s} == 0) or vector(0)' % [sel(), sel()])],
           thresholds=[g.threshold(1)], graph=false, links=[v.dashboardLink('exporter', 'Exporter dashboard')]),
    g.table('Firing alerts', 'Every alert firing now with its severity and area (Watchdog, the heartbeat of the alert pipeline, always fires). Every alert of the stack: not filtered by job or instance.', 'none',
            [g.target('ALERTS{alertstate="firing"}')], w=24, h=6,
            hide=['Value', '__name__', 'alertstate'], columns={ alertname: 'Alert', severity: 'Severity', area: 'Area' },
            order=['alertname', 'severity', 'area']),

    g.row('Services'),
    g.timeseries('Request rate', v.perJob('HTTP requests per second per service (5-minute rate).'), 'reqps',
                 [g.target('job:http_requests:rate5m{%s}' % jsel(), '{{job}}')], w=8, min=0,
                 links=[v.dashboardLink('application', 'Application dashboard')]),
    g.timeseries('Error ratio', v.perJob('Share of HTTP requests answered 5xx per service over 5 minutes. What pages is the burn rate of the SLOs below.'),
                 'percentunit', [g.target('job:http_request_errors:ratio_rate5m{%s}' % jsel(), '{{job}}')], w=8, min=0,
                 links=[v.dashboardLink('slo', 'SLO dashboard'), v.dashboardLink('application', 'Application dashboard')]),
    g.timeseries('Latency p95', v.perJob('95th percentile of HTTP request duration per service over 5 minutes. What pages is the burn rate of the SLOs below.'),
                 's', [g.target('job:http_request_duration_seconds:histogram_quantile{%s}' % jsel('quantile="0.95"'), '{{job}}')], w=8, min=0,
                 links=[v.dashboardLink('slo', 'SLO dashboard'), v.dashboardLink('application', 'Application dashboard')]),

    g.row('Service level objectives'),
    g.bargauge('Error budget left', v.perJob('Share of each SLO\'s error budget not spent over its window (30 days by default), per job: below 0 the objective is missed. The SLO dashboard has the burn rates.'),
               'percentunit', [g.target('job_slo:error_budget_remaining:ratio{%s}' % jsel(), '{{slo}} {{job}}')], w=12, h=6, min=0, max=1,
               thresholds=[g.threshold(0, 'orange'), g.threshold(0.25, 'green')],
               links=[v.dashboardLink('slo', 'SLO dashboard')]),
    g.timeseries('Burn rate over the last hour', v.perSlo('Error ratio over the last hour of each SLO divided by its budget: 1 spends the budget exactly in the window; SloFastBurn pages above the red line (confirmed by the last 5 minutes).'),
                 'none', [g.target('job_slo:sli_error:ratio_rate1h{%s} / on (slo) group_left () (1 - slo:objective:ratio)' % jsel(), '{{slo}} {{job}}')],
                 w=12, h=6, min=0, thresholds=[g.threshold(v.slo.fastFactor)],
                 links=[v.dashboardLink('slo', 'SLO dashboard'), v.runbook('SloFastBurn')]),

    g.row('Saturation'),
    g.gauge('CPU', 'Busiest host CPU. SystemCpuUsageHigh fires at the red mark.', 'percentunit',
            [g.target('max(vigil_system_cpu_usage_ratio{%s})' % sel())],
            thresholds=[g.threshold(t.cpuUsageRatio)], links=[v.dashboardLink('system', 'System dashboard')]),
    g.gauge('Memory', 'Host memory in use. SystemMemoryUsageHigh fires at the red mark.', 'percentunit',
            [g.target('max(instance:vigil_system_memory_usage:ratio{%s})' % sel())],
            thresholds=[g.threshold(t.memoryUsageRatio)], links=[v.dashboardLink('system', 'System dashboard')]),
    g.gauge('Fullest disk', 'The fullest filesystem. SystemDiskUsageHigh fires at the red mark.', 'percentunit',
            [g.target('max(instance_mountpoint:vigil_system_disk_usage:ratio{%s})' % sel())],
            thresholds=[g.threshold(t.diskUsageRatio)], links=[v.dashboardLink('system', 'System dashboard')]),
    g.gauge('Database pool', 'Fullest connection pool (exporter and services): checked out / size. DatabasePoolExhausted fires at the red mark.', 'percentunit',
            [g.target('max(pool:vigil_db_pool_usage:ratio{%s})' % sel())],
            thresholds=[g.threshold(t.dbPoolUsageRatio)], links=[v.dashboardLink('database', 'Database dashboard')]),
    g.gauge('Database connections', 'Server connections / max_connections of the busiest PostgreSQL. DatabaseConnectionsNearLimit fires at the red mark.', 'percentunit',
            [g.target('max(database:vigil_db_server_connections_usage:ratio{%s})' % sel())],
            thresholds=[g.threshold(t.dbConnectionsUsageRatio)], links=[v.dashboardLink('database', 'Database dashboard')]),
    g.gauge('Tenant closest to a limit', 'The highest usage / limit of any tenant and resource. TenantNearLimit fires at the red mark.', 'percentunit',
            [g.target('max(tenant:vigil_tenant_limit_usage:ratio{%s})' % sel())],
            thresholds=[g.threshold(t.tenantLimitUsageRatio)], links=[v.dashboardLink('business', 'Business dashboard')]),
  ],
)
