// The one place for every knob of the Vigil monitoring bundle: job selectors, thresholds, `for`
// windows, the LLM budget, the service level objectives, the runbook URL pattern and the Grafana
// dashboard uids.
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
    // TargetDown (a ticket) watches every scrape target that matches this selector ...
    targetSelector: 'job=~"vigil|vigil-demo|prometheus|alertmanager"',
    // ... JobDown pages when every target of one of these jobs is down: the exporter and the
    // instrumented services, whose own alerts go blind with them. Not Prometheus (it cannot
    // page about itself) nor one half of an HA pair.
    criticalJobSelector: 'job=~"vigil|vigil-demo"',
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
      // meta
      targetDownRatio: 0.1,  // TargetDown: share of a job's targets down (kube-prometheus)
      // system
      cpuUsageRatio: 0.8,
      loadPerCpu: 2,  // load average per logical CPU: twice as much work as CPUs
      memoryUsageRatio: 0.85,
      memoryUsageCriticalRatio: 0.95,
      diskUsageRatio: 0.9,
      diskUsageCriticalRatio: 0.97,
      diskFillHorizonHours: 24,  // SystemDiskFillingUp: predicted to be full within this time
      diskFillMinUsageRatio: 0.6,  // ... and already at least this full (node-mixin: 40 % free)
      diskFillSoonHorizonHours: 4,  // SystemDiskFillingUpSoon (critical)
      diskFillSoonMinUsageRatio: 0.8,  // ... at least this full (node-mixin: 20 % free)
      diskFillMinSizeBytes: 1073741824,  // file systems smaller than 1 GiB are not extrapolated
      // exporter
      staleIntervals: 3,  // a collector or query is stale after this many missed intervals
      // monitoring stack (kube-prometheus' thresholds)
      notificationErrorRatio: 0.03,  // Prometheus -> Alertmanager sends that fail
      alertmanagerFailedNotificationRatio: 0.01,  // Alertmanager -> receiver sends that fail
      remoteWriteBehindSeconds: 120,
      // database
      dbConnectionsUsageRatio: 0.8,  // server connections / max_connections
      dbPoolUsageRatio: 0.9,  // checked out / pool size
      dbConnectionsCriticalRatio: 0.95,
      dbProbeSeconds: 0.5,
      dbDeadlocks: 3,  // deadlocks within windows.deadlocks
      dbRollbackRatio: 0.1,  // rolled back / (committed + rolled back)
      dbMinTransactionsPerSecond: 1,  // ... judged only with this much traffic
      // database: inside PostgreSQL (the collector's `postgres` features)
      dbReplicationLagSeconds: 120,  // a replica's replay lag seen from the primary
      dbSlotRetainedWalBytes: 4 * 1024 * 1024 * 1024,  // WAL a replication slot may keep
      dbTransactionSeconds: 1800,  // the oldest open transaction
      dbIdleInTransactionSeconds: 300,  // the longest idle-in-transaction session
      dbSessionsWaitingOnLock: 3,  // sessions waiting on a lock throughout windows.dbLockWait
      dbDeadTupleRatio: 0.2,  // dead / (live + dead) rows of a large table ...
      dbDeadTuplesMin: 10000,  // ... with at least this many dead rows ...
      dbVacuumAgeSeconds: 86400,  // ... and no (auto)vacuum for this long
      // redis
      redisMemoryUsageRatio: 0.9,  // used / maxmemory (only where maxmemory is set)
      redisFragmentationRatio: 1.5,  // memory held from the system / memory allocated
      redisFragmentationMinBytes: 104857600,  // ... judged only above 100 MiB allocated
      redisEvictionsPerSecond: 10,
      cacheHitRatio: 0.7,  // Redis keyspace and application caches: alert below this
      cacheMinLookupsPerSecond: 1,  // ... and only with at least this much traffic
      redisReplicaLagBytes: 10 * 1024 * 1024,  // a replica's acknowledged offset behind
      redisSlowlogEntriesPerMinute: 1,  // slowlog entries a minute over windows.redisSlowlog
      // business and tenants
      tenantLimitUsageRatio: 0.95,
      tenantCapacityForecastDays: 7,  // TenantCapacityRunningOut: a limit reached within this
      dailyQuotaForecastAfterHours: 2,  // TenantDailyQuotaRunningOut: judged after this much of the day
      // Anomalies: the hourly rate against the same hour one season (week) earlier. The change
      // counts as an anomaly when it departs from the season's usual change by more than
      // anomalyStddevs standard deviations, and by more than anomalyMinChangeRatio of last
      // season's rate (the floor on sigma: a flat tenant has sigma ~ 0), ...
      anomalyStddevs: 3,
      anomalyMinChangeRatio: 0.25,
      // ... and the tenant sends, or sent a season ago, at least this much (and the change is
      // at least as large): quieter tenants are not judged (3 per minute).
      anomalyMinMessagesPerSecond: 0.05,
      anomalyMinApiCallsPerSecond: 0.05,
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
      // Per tenant and calendar month (UTC), for LLM calls that carry a `tenant` label:
      // TenantLlmCostOverBudget fires when the month is heading above it.
      perTenantPerMonthUsd: 100,
      perTenantPerMonthUsdOverrides: {},  // tenant -> its own monthly budget, e.g. {acme: 500}
    },

    // ---- Usage rollups and forecasts (prometheus/lib/usage.libsonnet, docs/tenant-usage.md) ------
    usage: {
      // The steps of the daily rollups are evaluated this often: the scrape interval of
      // prometheus.yml. "Today" is exact within one step.
      step: '15s',
      // A counter unseen for longer than this (exporter down, scrapes failing) loses the growth
      // of the gap; shorter gaps are counted in full when it is seen again.
      gap: '1h',
      // History predict_linear() extrapolates for the capacity limits (agents, channels,
      // storage): a whole daily cycle, so that working hours alone do not make a trend.
      forecastLookback: '1d',
    },

    // ---- Windows: ranges inside alert expressions -------------------------------------------
    windows: {
      diskFillLookback: '6h',  // history that predict_linear() extrapolates
      authBurst: '5m',  // failed logins and API-key revocations are counted over this
      rejectedConnections: '5m',
      dbLockWait: '5m',  // DatabaseSessionsBlockedOnLocks: waiters throughout this window
      redisSlowlog: '10m',  // RedisSlowlogGrowing: the rate of new entries over this window
      dbProbeSlow: '10m',  // DatabaseProbeSlow: the median probe over this window
      anomalySeason: '1w',  // tenant anomalies: compare with the same hour this long ago ...
      anomalyBaseline: '1w',  // ... and learn the usual change over this window
      deadlocks: '15m',
      dbRollbacks: '10m',
      redisRestart: '15m',  // RedisRestarted fires this long after a restart
      tsdbFailures: '3h',  // failed compactions and head truncations are counted over this
      // DatabaseDown and RedisDown read the last probe within this window, so that a gap in
      // the exporter's series (a restart) neither resolves the page nor sends a second one.
      probeMemory: '5m',
      // JobDown: no scrape of any target of the job succeeded within this window, so that a
      // scrape that times out now and then (a loaded host) does not leave the page pending.
      jobDown: '1m',
    },

    // ---- keep_firing_for: alerts on a value that hovers around its threshold keep firing this
    // long after the condition last held, instead of resolving and paging again (flapping).
    keepFiringFor: {
      SystemCpuUsageHigh: '10m',
      SystemMemoryUsageHigh: '10m',
      DatabaseProbeSlow: '10m',
      // the exporter's WAL clock starts from 0 when it restarts: a stalled replica reads as
      // caught up for the two minutes it takes to cross the threshold again
      DatabaseReplicationLagHigh: '10m',
      RedisCacheHitRatioLow: '15m',
      CacheHitRatioLow: '15m',
      TenantMessageVolumeAnomaly: '30m',
      TenantApiCallsAnomaly: '30m',
    },

    // ---- `for`: how long a condition must hold before its alert fires -----------------------
    forDurations: {
      TargetDown: '10m',
      JobDown: '4m',  // after windows.jobDown without a successful scrape: 5 minutes in all
      TargetAbsent: '10m',
      VigilCollectorFailing: '5m',
      VigilCollectorStale: '2m',
      VigilBusinessQueryFailing: '10m',
      VigilBusinessQueryStale: '5m',
      VigilBusinessQuerySeriesCapped: '15m',
      // the monitoring stack (kube-prometheus' windows)
      PrometheusReplicaDown: '5m',
      PrometheusBadConfig: '10m',
      PrometheusRuleFailures: '15m',
      PrometheusMissingRuleEvaluations: '15m',
      PrometheusNotificationQueueRunningFull: '15m',
      PrometheusErrorSendingAlerts: '15m',
      PrometheusNotConnectedToAlertmanagers: '10m',
      PrometheusTsdbCompactionsFailing: '4h',
      PrometheusTsdbHeadTruncationsFailing: '4h',
      PrometheusRemoteWriteBehind: '15m',
      AlertmanagerFailedReload: '10m',
      AlertmanagerFailedToSendAlerts: '5m',
      AlertmanagerClusterFailedToSendAlerts: '5m',
      AlertmanagerConfigInconsistent: '20m',
      AlertmanagerMembersInconsistent: '15m',
      SystemCpuUsageHigh: '5m',
      SystemLoadHigh: '15m',
      SystemMemoryUsageHigh: '5m',
      SystemMemoryUsageCritical: '1m',
      SystemDiskUsageHigh: '5m',
      SystemDiskUsageCritical: '5m',
      SystemDiskFillingUp: '1h',
      SystemDiskFillingUpSoon: '1h',
      DatabaseDown: '1m',
      DatabaseConnectionsNearLimit: '5m',
      DatabaseConnectionsAtLimit: '5m',
      DatabaseDeadlocks: '5m',
      DatabaseRollbackRatioHigh: '15m',
      DatabasePoolExhausted: '2m',
      DatabaseProbeSlow: '5m',
      DatabaseReplicationLagHigh: '5m',
      DatabaseReplicaDisconnected: '5m',
      DatabaseReplicationSlotRetainingWal: '15m',
      DatabaseLongTransaction: '5m',
      DatabaseIdleInTransaction: '5m',
      DatabaseSessionsBlockedOnLocks: '0s',  // the window is in the expression
      DatabaseVacuumFallingBehind: '30m',
      // redis-mixin: 5m. A restart or a failover takes seconds; a Redis that stays away longer
      // is an outage.
      RedisDown: '5m',
      RedisMemoryNearLimit: '5m',
      RedisCacheHitRatioLow: '15m',
      RedisMemoryFragmented: '30m',
      RedisEvictingKeys: '15m',
      RedisFullWithoutEviction: '5m',
      RedisCacheWithoutMaxmemory: '1h',
      RedisRestarted: '0s',
      // One rejected connection is not an incident: rejections must go on (anchors: 10-15m).
      RedisRejectingConnections: '10m',
      RedisReplicaLinkDown: '5m',
      RedisReplicaLagging: '10m',
      RedisSlowlogGrowing: '10m',
      TenantNearLimit: '5m',
      TenantCapacityRunningOut: '1h',
      TenantDailyQuotaRunningOut: '30m',
      TenantLlmCostOverBudget: '1h',
      TenantMessageVolumeAnomaly: '15m',
      TenantApiCallsAnomaly: '15m',
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
      // The short window of each burn-rate pair already confirms that the burn goes on; `for`
      // only keeps one evaluation's blip from notifying.
      SloFastBurn: '2m',
      SloSlowBurn: '15m',
    },

    // ---- Service level objectives (docs/slos.md) ------------------------------------------
    // One entry per SLO, keyed by its name (the `slo` label: lower case, digits, dashes):
    //   sli        what counts as a good event, out of which events:
    //                {kind: 'http-availability'}        requests not answered 5xx
    //                {kind: 'http-latency', threshold}  requests answered within `threshold`
    //                                                   seconds, a bucket bound of the histogram
    //                {kind: 'agent-success'}            agent executions that succeeded
    //                {kind: 'llm-success'}              LLM requests that succeeded
    //                {kind: 'custom', total, good | bad} two PromQL rates over `[$window]`
    //              `matchers` (optional) narrows a built-in kind, e.g. 'route!="/api/export"'.
    //   objective  percent of good events over the window, e.g. 99.9
    //   the rest   optional, defaults in sloDefaults: selector (the service's label matchers;
    //              one SLO per job it matches), window ('30d' or '28d'), description, and
    //              alerting {fastBurn, slowBurn: severities; minBadEvents}
    // The four below are the demo service's (`serviceSelector`), with objectives it meets
    // outside its simulated incidents: set your own. A YAML file of the same shape
    // (`vigil bundle build --slos FILE`) adds SLOs, changes fields or removes one (null).
    slos: {
      'http-availability': {
        sli: { kind: 'http-availability' },
        objective: 98,
      },
      'http-latency': {
        // Agent runs take seconds by design; agent-success watches them.
        sli: { kind: 'http-latency', threshold: 1, matchers: 'route!="/api/agents/{agent}/run"' },
        objective: 99,
      },
      'agent-success': {
        sli: { kind: 'agent-success' },
        objective: 95,
      },
      'llm-success': {
        sli: { kind: 'llm-success' },
        objective: 95,
      },
    },
    sloDefaults: {
      selector: $._config.serviceSelector,
      window: '30d',
      alerting: {
        fastBurn: 'critical',  // pages
        slowBurn: 'warning',  // opens a ticket
        // Low traffic: no burn-rate alert fires with fewer bad events than this in its long
        // window, so that one failed request among a few never pages (docs/slos.md).
        minBadEvents: 5,
      },
    },
    // Multi-window, multi-burn-rate alerts (the SRE workbook's parameters, as Sloth's
    // google-30d and google-28d): a pair holds when the error ratio over both windows is above
    // factor × (1 - objective), where factor = budgetShare × SLO window / long window: the
    // burn that spends `budgetShare` of the window's error budget within the long window
    // (14.4, 6, 3 and 1 for 30 days). Fast pairs make SloFastBurn, slow ones SloSlowBurn.
    sloBurnRateAlerts: {
      fast: [
        { long: '1h', short: '5m', budgetShare: 0.02 },
        { long: '6h', short: '30m', budgetShare: 0.05 },
      ],
      slow: [
        { long: '1d', short: '2h', budgetShare: 0.1 },
        { long: '3d', short: '6h', budgetShare: 0.1 },
      ],
    },
    // Error ratios over windows up to this long are computed from the counters; longer
    // windows average the shortest window's recorded rates (one series per SLO and job).
    sloCounterWindowMax: '1h',
    // The bucket bounds of http_request_duration_seconds in vigil_instrument (a test keeps
    // them equal): an http-latency threshold must be one of them.
    httpDurationBuckets: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],

    // Evaluation interval of the expensive rule groups (cost of the day, long SLO windows).
    slowRuleInterval: '1m',
    // Evaluation interval of the tenants' hourly rates and their one-week baselines: every
    // 5 minutes, so that a week is 2,016 samples per tenant, not 40,320 (docs/performance.md).
    // At most 5m: the alerts read these series as instant vectors (5-minute lookback).
    tenantBaselineInterval: '5m',

    // ---- The site's own alerts, and the bundle's alerts it turns off ----------------------
    // Both are usually set in a customisation file (`vigil bundle build --override FILE`,
    // docs/customising.md), which is validated before it gets here.
    // disabledAlerts: names of the bundle's alerts left out of alerts.yml.
    disabledAlerts: [],
    // siteAlerts: your alerts by name (CamelCase), generated into site_alerts.yml, a rule file
    // of their own:
    //   expr        PromQL whose result is the failing series; or instead
    //   metric, operator, threshold   e.g. 'job:http_requests:rate5m', '>', 100
    //   for         how long it must hold (default: fires at once)
    //   severity    critical | warning | info;  area  (default application: the routing and
    //               the dashboard link of that area)
    //   summary, description (default: the summary and the value), runbookUrl, labels
    //   channels    receivers of alertmanager.yml that get it instead of the routing by
    //               severity and area (the alert log gets every alert)
    //   enabled     false keeps it in the file but out of the rules
    siteAlerts: {},

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
      tenants: 'vigil-tenants',
      application: 'vigil-application',
      exporter: 'vigil-exporter',
      slo: 'vigil-slo',
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
      slo: 'slo',
    },
  },
}
