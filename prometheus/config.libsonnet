// The one place for every knob of the Vigil monitoring bundle: job selectors, thresholds, `for`
// windows, the LLM budget, the runbook URL pattern and the Grafana dashboard uids.
//
// The alerting rules (alerts/), the recording rules (rules/) and the Grafana dashboards
// (grafana/, which imports this file) all read `_config`, so a threshold exists once.
// Customise the bundle by merging an override into `_config`, never by editing the generated
// YAML; see prometheus/README.md:
//
//   (import 'prometheus/mixin.libsonnet') + {
//     _config+:: {
//       serviceSelector: 'job=~"api|worker"',
//       thresholds+: { cpuUsageRatio: 0.9 },
//     },
//   }
{
  _config+:: {
    // Semantic version of the bundle, printed in the header of the generated files and kept
    // equal to vigil_exporter.__version__ and to the newest entry of CHANGELOG.md. Renaming an alert
    // or a recording rule, or removing one, is a breaking change: a new major version.
    bundleVersion: '0.1.0',

    // ---- Selectors: the Prometheus jobs (prometheus/prometheus.yml) -----------------------
    exporterSelector: 'job="vigil"',  // `vigil serve`: system, database, redis, business
    serviceSelector: 'job="vigil-demo"',  // services instrumented with vigil_instrument
    prometheusSelector: 'job="prometheus"',
    alertmanagerSelector: 'job="alertmanager"',
    // TargetDown watches every scrape target that matches this selector.
    targetSelector: 'job=~"vigil|vigil-demo|prometheus|alertmanager"',
    // TargetAbsent fires for each of these selectors that matches no `up` series at all.
    absentTargetSelectors: [
      $._config.exporterSelector,
      $._config.serviceSelector,
      $._config.prometheusSelector,
      $._config.alertmanagerSelector,
    ],

    // ---- Thresholds: plain numbers, shared with the dashboards -----------------------------
    // Ratios are 0..1, durations are seconds, rates are per second unless named otherwise.
    thresholds: {
      // system
      cpuUsageRatio: 0.8,
      memoryUsageRatio: 0.85,
      diskUsageRatio: 0.9,
      diskFillHorizonHours: 24,  // SystemDiskFillingUp: predicted to be full within this time
      diskFillMinUsageRatio: 0.5,  // ... and already at least this full
      // exporter
      staleIntervals: 3,  // a collector or query is stale after this many missed intervals
      // database
      dbConnectionsUsageRatio: 0.8,  // server connections / max_connections
      dbPoolUsageRatio: 0.9,  // checked out / pool size
      dbProbeSeconds: 0.5,
      // redis
      redisMemoryUsageRatio: 0.9,  // used / maxmemory (only where maxmemory is set)
      cacheHitRatio: 0.7,  // Redis keyspace and application caches: alert below this
      cacheMinLookupsPerSecond: 1,  // ... and only with at least this much traffic
      // business and tenants
      tenantLimitUsageRatio: 0.95,
      anomalyStddevs: 3,  // deviations from the one-week average that count as an anomaly
      anomalyMinMessagesPerSecond: 0.05,  // quieter tenants are not judged (3 per minute)
      anomalyMinApiCallsPerSecond: 0.05,
      // application: HTTP
      httpErrorRatio: 0.05,  // 5xx / all requests
      httpLatencyP95Seconds: 1,
      httpMinRequestsPerSecond: 0.1,
      // application: agents and tools
      agentErrorRatio: 0.1,
      agentLatencyP95Seconds: 60,
      agentMinExecutionsPerSecond: 0.01,
      toolErrorRatio: 0.1,
      toolMinExecutionsPerSecond: 0.01,
      // application: LLM
      llmErrorsPerMinute: 10,
      llmLatencyP95Seconds: 30,
      // application: auth (counts within windows.authBurst)
      failedLoginBurst: 20,
      apiKeyRevocationBurst: 5,
    },

    // What an LLM may cost, in US dollars, summed over every service and model.
    llmBudget: {
      perHourUsd: 10,
      perDayUsd: 100,  // "today" is the UTC day
    },

    // ---- Windows: ranges inside alert expressions -------------------------------------------
    windows: {
      diskFillLookback: '6h',  // history that predict_linear() extrapolates
      authBurst: '5m',  // failed logins and API-key revocations are counted over this
      rejectedConnections: '5m',
    },

    // ---- `for`: how long a condition must hold before its alert fires -----------------------
    forDurations: {
      TargetDown: '3m',
      TargetAbsent: '10m',
      VigilCollectorFailing: '5m',
      VigilCollectorStale: '2m',
      VigilBusinessQueryFailing: '10m',
      VigilBusinessQueryStale: '5m',
      SystemCpuUsageHigh: '5m',
      SystemMemoryUsageHigh: '5m',
      SystemDiskUsageHigh: '5m',
      SystemDiskFillingUp: '1h',
      DatabaseDown: '1m',
      DatabaseConnectionsNearLimit: '5m',
      DatabasePoolExhausted: '2m',
      DatabaseProbeSlow: '5m',
      RedisDown: '1m',
      RedisMemoryNearLimit: '5m',
      RedisCacheHitRatioLow: '15m',
      RedisRejectingConnections: '0s',
      TenantNearLimit: '5m',
      TenantMessageVolumeAnomaly: '30m',
      TenantApiCallsAnomaly: '30m',
      HttpErrorRatioHigh: '5m',
      HttpLatencyHigh: '10m',
      AgentErrorRatioHigh: '5m',
      AgentLatencyHigh: '10m',
      ToolErrorRatioHigh: '10m',
      LlmProviderErrorsHigh: '5m',
      LlmLatencyHigh: '10m',
      LlmCostPerHourOverBudget: '5m',
      LlmCostTodayOverBudget: '0s',
      CacheHitRatioLow: '15m',
      AuthFailedLoginBurst: '0s',
      AuthApiKeyRevocationBurst: '0s',
    },

    // Evaluation interval of the expensive rule groups (one-week baselines, cost of the day).
    slowRuleInterval: '1m',

    // ---- Links ----------------------------------------------------------------------------
    // `%s` is the alert name in lower case, which is also the anchor of its `## AlertName`
    // section in docs/runbooks.md.
    runbookUrlPattern: 'https://github.com/vigil-monitoring/vigil/blob/main/docs/runbooks.md#%s',
    grafanaUrl: 'http://localhost:3001',
    // Stable uids of the dashboards in grafana/; alerts link to the dashboard of their area.
    dashboardUids: {
      overview: 'vigil-overview',
      system: 'vigil-system',
      database: 'vigil-database',
      redis: 'vigil-redis',
      business: 'vigil-business',
      application: 'vigil-application',
      exporter: 'vigil-exporter',
    },
    // Area label of an alert -> the dashboard its dashboard_url annotation opens.
    areaDashboards: {
      meta: 'overview',
      system: 'system',
      database: 'database',
      redis: 'redis',
      business: 'business',
      application: 'application',
      exporter: 'exporter',
    },
  },
}
