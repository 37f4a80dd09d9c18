"""`Stack`: the compose stack from locally installed binaries, as one Python object.

    with Stack(free_ports=True, scrape_interval="1s", evaluation_interval="1s") as stack:
        stack.wait_for_query("vigil_build_info")
        stack.redis.stop()            # an outage
        ...
        stack.redis.start()

Start order: Redis, PostgreSQL, VictoriaMetrics and the Alertmanagers together; then the
exporter; then the demo service; then Prometheus. Each is waited for until it answers its
readiness check. Grafana has no Debian package and does not run here (use docker compose).
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from vigil_exporter.prometheus_api import PrometheusAPI, PrometheusError
from vigil_exporter.tools.stack import configs
from vigil_exporter.tools.stack.components import (
    Alertmanager,
    Component,
    Demo,
    Exporter,
    Postgres,
    Prometheus,
    Redis,
    VictoriaMetrics,
    wait_all,
)
from vigil_exporter.tools.stack.ports import DEFAULT_PORTS
from vigil_exporter.tools.stack.process import StackError, port_is_free, wait_until
from vigil_exporter.tools.stack.process import free_ports as pick_free_ports


class Stack:
    """Redis, PostgreSQL, the exporter, the demo service, Prometheus, Alertmanager and optionally
    VictoriaMetrics, on 127.0.0.1, configured from the same files as docker-compose.yml.

    Arguments (all keyword-only except `workdir`):
      workdir               directory for data, configs and logs; default a new temporary
                            directory, removed by stop() unless keep_workdir=True
      demo                  run the demo service with its traffic generator (default True)
      traffic               requests per second of the demo traffic generator (default 5)
      victoriametrics       run VictoriaMetrics with Prometheus remote_write to it (the compose
                            `scale-out` profile)
      prometheus_replicas   1, or 2 for an HA pair (the compose `ha` profile)
      alertmanager_replicas 1, or 2 clustered on loopback (the compose `ha` profile)
      ports                 {component: port} overrides of DEFAULT_PORTS
      free_ports            pick free ports for every component not in `ports` (tests)
      scrape_interval       e.g. "1s": global and per-job scrape interval (timeouts clamped)
      evaluation_interval   e.g. "1s": rule evaluation and the resend delay of firing alerts;
                            rule groups' own intervals are dropped
      collector_interval    e.g. "1s": every exporter collector's interval (timeouts unchanged)
      exporter_config       dict deep-merged into the exporter's derived config
      seed                  start the exporter with --demo: default schema and demo data in
                            PostgreSQL, as in compose (default True)
      rules_dir             directory with rule files of the generated names (e.g. built with
                            threshold overrides) used instead of prometheus/generated/
      site_dir              a site folder (`vigil bundle build --override FILE --site DIR`):
                            its rules and its alertmanager.yml instead of the checkout's
      alert_webhook         URL, or {receiver: URL, "*": default}, that receives every HTTP
                            notification (Slack, pager, webhooks) not aimed at the exporter's
                            log receiver; without it those notifiers are removed
      alert_smtp            "host:port" of an SMTP sink for email notifiers (no TLS, no auth);
                            without it email notifiers are removed
      external_urls         {component: URL} users reach Prometheus or Alertmanager at (a
                            reverse proxy, e.g. "https://ops.example.com/prometheus"): links in
                            alerts and UIs; default the local URL
      route_prefixes        {"prometheus"|"alertmanager": "/path"}: `--web.route-prefix` of
                            both replicas (default "/", as in compose: the proxy strips the
                            path); the readiness checks, API URLs, alerting path_prefix and
                            self-scrapes follow it
      extra_args            {component: [flags]} appended to a component's command line
      start_timeout         seconds each component may take to become ready (default 60)
      env                   extra environment for the exporter and the demo service
      adjust                {"prometheus"|"alertmanager"|"exporter": function(dict) -> dict}
                            applied last to that derived config (e.g. a shorter group_wait)
      keep_workdir          keep a temporary workdir after stop() (to read the logs)
      host                  address every component listens on (default 127.0.0.1)
    """

    def __init__(self, workdir: str | os.PathLike | None = None, *, demo: bool = True,
                 traffic: float = 5.0, victoriametrics: bool = False,
                 prometheus_replicas: int = 1, alertmanager_replicas: int = 1,
                 ports: dict[str, int] | None = None, free_ports: bool = False,
                 scrape_interval: str | None = None, evaluation_interval: str | None = None,
                 collector_interval: str | None = None, exporter_config: dict | None = None,
                 seed: bool = True, rules_dir: str | os.PathLike | None = None,
                 site_dir: str | os.PathLike | None = None,
                 alert_webhook: str | dict[str, str] | None = None,
                 alert_smtp: str | None = None,
                 external_urls: dict[str, str] | None = None,
                 route_prefixes: dict[str, str] | None = None,
                 extra_args: dict[str, list[str]] | None = None,
                 start_timeout: float = 60.0,
                 keep_workdir: bool = False, env: dict[str, str] | None = None,
                 adjust: dict[str, Callable[[dict], dict]] | None = None,
                 host: str = "127.0.0.1"):
        if prometheus_replicas not in (1, 2) or alertmanager_replicas not in (1, 2):
            raise ValueError("prometheus_replicas and alertmanager_replicas must be 1 or 2")
        self.bundle = configs.find_bundle()
        self.host = host
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.collector_interval = collector_interval
        self._exporter_overrides = exporter_config
        self.site_dir = configs.check_site(Path(site_dir)) if site_dir else None
        self.rules_dir = rules_dir or (self.site_dir / "prometheus" / "generated"
                                       if self.site_dir else None)
        self.alert_webhook = alert_webhook
        self.alert_smtp = alert_smtp
        self.adjust = adjust or {}
        unknown = set(self.adjust) - {"prometheus", "alertmanager", "exporter"}
        if unknown:
            raise ValueError(f"adjust: unknown config {', '.join(sorted(unknown))} "
                             "(prometheus, alertmanager, exporter)")
        self.warnings: list[str] = []
        self._created_workdir = workdir is None
        self.workdir = Path(workdir).resolve() if workdir else Path(
            tempfile.mkdtemp(prefix="vigil-stack-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._created_workdir:
            self.workdir.chmod(0o755)  # PostgreSQL runs as `postgres` when we are root
        self.keep_workdir = keep_workdir
        self._started: list[Component] = []
        self._atexit = False

        names = ["redis", "postgres", "exporter"] + (["demo"] if demo else [])
        names += ["prometheus", "prometheus-2"][:prometheus_replicas]
        am_names = ["alertmanager", "alertmanager-2"][:alertmanager_replicas]
        names += am_names
        if alertmanager_replicas > 1:
            names += [f"{n}-cluster" for n in am_names]
        names += ["victoriametrics"] if victoriametrics else []
        self.ports = self._assign_ports(names, ports or {}, free_ports)

        extra = extra_args or {}
        strangers = sorted(set(extra) - set(names))
        if strangers:
            raise ValueError(f"extra_args: no component {', '.join(strangers)} in this stack "
                             f"({', '.join(names)})")
        common = dict(host=host, start_timeout=start_timeout)
        self.route_prefixes = {"prometheus": "/", "alertmanager": "/", **(route_prefixes or {})}
        if set(self.route_prefixes) != {"prometheus", "alertmanager"}:
            raise ValueError("route_prefixes: only prometheus and alertmanager have one")
        external_urls = external_urls or {}

        def routes(name: str) -> dict:
            return dict(external_url=external_urls.get(name),
                        route_prefix=self.route_prefixes[name.removesuffix("-2")])

        def make(cls, name, **kwargs):
            return cls(name, self.workdir, self.ports[name], extra_args=extra.get(name),
                       **common, **kwargs)

        self.redis: Redis = make(Redis, "redis")
        self.postgres: Postgres = make(Postgres, "postgres", statements=True)
        self.exporter: Exporter = make(Exporter, "exporter", seed=seed, env=env,
                                       config_text=self._exporter_config_text)
        self.demo: Demo | None = make(Demo, "demo", database_url=self.postgres.url,
                                      redis_url=self.redis.url, traffic=traffic,
                                      env=env) if demo else None
        self.victoriametrics: VictoriaMetrics | None = make(
            VictoriaMetrics, "victoriametrics", latency_offset=scrape_interval,
            dedup_interval=(scrape_interval or "15s") if prometheus_replicas > 1 else None,
        ) if victoriametrics else None
        self.alertmanagers: list[Alertmanager] = []
        for name in am_names:
            clustered = alertmanager_replicas > 1
            peers = [f"{host}:{self.ports[f'{other}-cluster']}" for other in am_names
                     if other != name] if clustered else []
            self.alertmanagers.append(make(
                Alertmanager, name, config_text=self._alertmanager_config_text,
                cluster_port=self.ports[f"{name}-cluster"] if clustered else None, peers=peers,
                **routes(name)))
        self.prometheis: list[Prometheus] = [
            make(Prometheus, name, resend_delay=evaluation_interval, features=("exemplar-storage",),
                 config_text=functools.partial(self._prometheus_config_text, name), **routes(name))
            for name in ["prometheus", "prometheus-2"][:prometheus_replicas]]
        self.prometheus: Prometheus = self.prometheis[0]
        self.alertmanager: Alertmanager = self.alertmanagers[0]

    # --- layout --------------------------------------------------------------------------------

    @property
    def components(self) -> dict[str, Component]:
        """Every component of this stack by name, in start order."""
        ordered = [self.redis, self.postgres, self.victoriametrics, *self.alertmanagers,
                   self.exporter, self.demo, *self.prometheis]
        return {c.name: c for c in ordered if c is not None}

    @property
    def urls(self) -> dict[str, str]:
        """Base URL of each component: http://127.0.0.1:PORT, redis://..., postgresql://..."""
        return {name: c.url for name, c in self.components.items()}

    def _assign_ports(self, names: list[str], ports: dict[str, int], free: bool) -> dict[str, int]:
        unknown = set(ports) - set(DEFAULT_PORTS)
        if unknown:
            raise ValueError(f"unknown components in ports: {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(DEFAULT_PORTS)})")
        chosen = {n: ports.get(n, DEFAULT_PORTS[n]) for n in names}
        if free:
            wanted = [n for n in names if n not in ports]
            for name, port in zip(wanted, pick_free_ports(len(wanted), self.host)):
                chosen[name] = port
        return chosen

    def busy_ports(self) -> dict[str, int]:
        """Ports of this stack that something else already listens on."""
        return {n: p for n, p in self.ports.items() if not port_is_free(p, self.host)}

    def missing_binaries(self) -> list[str]:
        """Messages for the binaries this stack needs that are not installed."""
        missing = []
        for component in self.components.values():
            try:
                component.check_binaries()
            except StackError as exc:
                missing.append(str(exc))
        return sorted(set(missing))

    # --- derived configs -----------------------------------------------------------------------

    def _localizer(self) -> configs.Localizer:
        addresses = {name: c.address for name, c in self.components.items()}
        for name in configs.SERVICE_COMPONENTS.values():
            addresses.setdefault(name, None)  # not part of this stack: its targets are dropped
        return configs.Localizer(addresses)

    def _warn(self, warning: str) -> None:
        if warning not in self.warnings:
            self.warnings.append(warning)

    def _keep_warnings(self, localizer: configs.Localizer) -> None:
        for warning in localizer.warnings:
            self._warn(warning)

    def prometheus_config(self, replica: str = "prometheus") -> dict:
        """prometheus/prometheus.yml as the local Prometheus `replica` loads it: the bundle's own
        derivation (vigil_exporter.tools.bundle.local_prometheus_config: addresses and rule paths only),
        every replica in the `prometheus` job (as in the compose `ha` profile), plus remote_write
        to VictoriaMetrics when it runs. The replicas of an HA pair load the same config."""
        from vigil_exporter.tools import bundle

        base = configs.load_yaml(bundle.prometheus_yml())
        jobs = {job["job_name"] for job in base.get("scrape_configs") or []}
        local = {"vigil": [self.exporter.address],
                 "vigil-demo": [self.demo.address] if self.demo else [],
                 "prometheus": [p.address for p in self.prometheis],
                 "alertmanager": [am.address for am in self.alertmanagers]}
        for job in sorted(jobs - set(local)):
            self._warn(f"prometheus.yml: job {job} has no local component; dropped")
        rules_dir = self.rules_dir
        if self.evaluation_interval:
            sources = [Path(rules_dir or bundle.prometheus_dir()) / (Path(f).name if rules_dir else f)
                       for f in base.get("rule_files") or []]
            rules_dir = configs.rules_without_group_intervals(
                [str(f) for f in sources], self.workdir / "prometheus-rules")
        config = bundle.local_prometheus_config(
            {job: targets for job, targets in local.items() if job in jobs and targets},
            [am.address for am in self.alertmanagers], rules_dir,
            scrape_interval=self.scrape_interval, evaluation_interval=self.evaluation_interval)
        if self.scrape_interval:
            config = configs.prometheus_job_intervals(config)
        config = configs.prometheus_replica_targets(
            config, {p.name: p.address for p in self.prometheis})
        config = configs.prometheus_routes(config, self.route_prefixes["prometheus"],
                                           self.route_prefixes["alertmanager"])
        if self.victoriametrics:
            config = configs.prometheus_remote_write(
                config, f"{self.victoriametrics.url}/api/v1/write")
            if self.scrape_interval:
                for remote in config["remote_write"]:
                    remote["queue_config"]["batch_send_deadline"] = self.scrape_interval
        return self._adjusted("prometheus", config)

    def _adjusted(self, name: str, config: dict) -> dict:
        hook = self.adjust.get(name)
        return hook(config) if hook else config

    def alertmanager_config(self) -> dict:
        """alertmanager/alertmanager.yml (the site's, with a site folder) with receivers pointed
        at the local sinks."""
        base_dir = (self.site_dir or self.bundle) / "alertmanager"
        localizer = self._localizer()
        config = configs.alertmanager_localize(
            configs.load_yaml(base_dir / "alertmanager.yml"), base_dir, localizer,
            webhook=self.alert_webhook, smtp=self.alert_smtp)
        self._keep_warnings(localizer)
        return self._adjusted("alertmanager", config)

    def exporter_config(self) -> dict:
        """deploy/vigil.compose.yml with the local PostgreSQL and Redis URLs."""
        localizer = self._localizer()
        config = configs.exporter_localize(
            configs.load_yaml(self.bundle / "deploy" / "vigil.compose.yml"), localizer,
            listen=self.exporter.address, alert_log=self.exporter.alert_log,
            collector_interval=self.collector_interval, overrides=self._exporter_overrides)
        self._keep_warnings(localizer)
        return self._adjusted("exporter", config)

    def _prometheus_config_text(self, replica: str) -> str:
        return configs.dump_yaml(self.prometheus_config(replica),
                                 "# Generated by vigil_exporter.tools.stack from prometheus/prometheus.yml\n")

    def _alertmanager_config_text(self) -> str:
        header = "# Generated by vigil_exporter.tools.stack from alertmanager/alertmanager.yml\n"
        return configs.dump_yaml(self.alertmanager_config(), header)

    def _exporter_config_text(self) -> str:
        return configs.dump_yaml(self.exporter_config(),
                                 "# Generated by vigil_exporter.tools.stack from deploy/vigil.compose.yml\n")

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Stack:
        """Start every component and wait until each is ready. On failure stop what started
        and raise StackError naming the log (the work directory is then kept)."""
        missing = self.missing_binaries()
        if missing:
            raise StackError("\n".join(missing))
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        phases = [[self.redis, self.postgres, self.victoriametrics, *self.alertmanagers],
                  [self.exporter], [self.demo], self.prometheis]
        try:
            for phase in phases:
                phase = [c for c in phase if c is not None]
                for component in phase:
                    component.start(wait=False)
                    self._started.append(component)
                wait_all(phase) if phase else None
            for replica in self.prometheis:
                self._wait_discovered(replica)
        except BaseException as exc:
            if isinstance(exc, StackError):
                self.keep_workdir = True  # the error names a log file: keep it readable
            self.stop()
            raise
        return self

    def _wait_discovered(self, replica: Prometheus) -> None:
        """Prometheus applies its targets a few seconds after start (discovery is throttled):
        wait until every scrape target and Alertmanager of its config is active."""
        config = self.prometheus_config(replica.name)
        targets = sum(len(static["targets"]) for job in config["scrape_configs"]
                      for static in job.get("static_configs") or [])
        managers = len(self.alertmanagers)

        def discovered() -> bool:
            try:
                active = self.get_json(replica.name, "/api/v1/targets",
                                       {"state": "active"})["data"]["activeTargets"]
                notifiers = self.get_json(replica.name, "/api/v1/alertmanagers")["data"]
            except (OSError, ValueError, KeyError):
                return False
            return len(active) >= targets and len(notifiers["activeAlertmanagers"]) >= managers

        if not wait_until(discovered, replica.start_timeout, interval=0.2,
                          alive=lambda: replica.running):
            raise StackError(f"{replica.name} did not activate its {targets} targets and "
                             f"{managers} Alertmanagers; see {replica.log_path}")

    def stop(self) -> None:
        """Stop everything this stack started, last started first. Safe to call twice."""
        for component in reversed(self._started):
            component.stop()
        for component in self._started:
            component.cleanup()
        self._started.clear()
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False
        if self._created_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def health(self) -> dict[str, bool]:
        """Each component: running and answering its readiness check."""
        return {name: c.running and c.ready() for name, c in self.components.items()}

    def failed(self) -> list[Component]:
        """Components this stack started that have exited without being stopped."""
        return [c for c in self._started if not c.running]

    # --- queries -------------------------------------------------------------------------------

    def get_json(self, component: str, path: str, params: dict | None = None,
                 timeout: float = 10.0):
        """GET a component's HTTP API and decode the JSON answer (HTTP errors raise)."""
        url = self.components[component].url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.load(response)

    def query(self, promql: str, at: float | None = None, source: str = "prometheus") -> list:
        """An instant query; the `data.result` list (vector) of the answer.

        `source` is "prometheus", "prometheus-2" or "victoriametrics" (same API)."""
        return self._api(source).query(promql, at)["result"]

    def query_range(self, promql: str, start: float, end: float, step: str = "1s",
                    source: str = "prometheus") -> list:
        return self._api(source).query_range(promql, start, end, step)["result"]

    def _api(self, source: str) -> PrometheusAPI:
        return PrometheusAPI(self.components[source].url)

    def wait_for_query(self, promql: str, predicate: Callable[[list], bool] = bool,
                       timeout: float = 30.0, interval: float = 0.5,
                       source: str = "prometheus") -> list:
        """Repeat an instant query until `predicate(result)` holds (default: any series);
        return that result. TimeoutError names the query and the last result."""
        deadline = time.monotonic() + timeout
        result: list = []
        while True:
            try:
                result = self.query(promql, source=source)
                if predicate(result):
                    return result
            except PrometheusError as exc:
                result = [f"error: {exc}"]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{source}: {promql!r} did not satisfy the predicate in "
                                   f"{timeout:g}s; last result: {result!r}")
            time.sleep(interval)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}={c.address}" for n, c in self.components.items())
        return f"<Stack {self.workdir} {parts}>"


def values(result: list) -> list[float]:
    """The sample values of an instant-query vector result."""
    return [float(series["value"][1]) for series in result]
