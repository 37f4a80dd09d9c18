"""The bundle's config files, changed only where the compose network and loopback differ.

docker-compose.yml mounts prometheus/prometheus.yml, alertmanager/alertmanager.yml and
deploy/vigil.compose.yml as they are. The local stack derives its configs from the same files
with the pure functions below (Prometheus's own derivation is vigil_exporter.tools.bundle's
local_prometheus_config, which `Stack` builds on), so the two cannot drift: a URL whose host is a
compose service points at the local component instead, relative paths become absolute, and
nothing else changes unless asked for (fast intervals for tests, alert sinks). The compose
profiles' Prometheus configs (`compose.py`) come from the same functions.
"""
from __future__ import annotations

import copy
import os
import urllib.parse
from pathlib import Path, PurePosixPath

import yaml

from vigil_exporter.tools import checkout

# Compose service (docker-compose.yml) -> the local component that plays its part.
SERVICE_COMPONENTS = {
    "vigil": "exporter",
    "demo": "demo",
    "postgres": "postgres",
    "redis": "redis",
    "prometheus": "prometheus",
    "prometheus-2": "prometheus-2",
    "alertmanager": "alertmanager",
    "alertmanager-2": "alertmanager-2",
    "victoriametrics": "victoriametrics",
}

# Services that the `ha` profile doubles, and the name of the second one.
HA_REPLICAS = {"prometheus": "prometheus-2", "alertmanager": "alertmanager-2"}

VICTORIAMETRICS_SERVICE = "victoriametrics:8428"
REMOTE_WRITE_URL = f"http://{VICTORIAMETRICS_SERVICE}/api/v1/write"

BUNDLE_FILES = ("prometheus/prometheus.yml", "alertmanager/alertmanager.yml",
                "deploy/vigil.compose.yml")


class BundleError(RuntimeError):
    pass


def find_bundle() -> Path:
    """The checkout the stack runs from: it holds prometheus/, alertmanager/ and deploy/, which
    are not part of the installed package."""
    try:
        root = checkout.root()
    except checkout.NotACheckout as exc:
        raise BundleError(str(exc)) from None
    missing = [f for f in BUNDLE_FILES if not (root / f).is_file()]
    if missing:
        raise BundleError(f"{root}: {', '.join(missing)} missing from the checkout")
    return root


# What a site folder (`vigil bundle build --override FILE --site DIR`) must hold for the stack.
SITE_FILES = ("prometheus/generated/recording_rules.yml", "prometheus/generated/alerts.yml",
              "prometheus/generated/site_alerts.yml", "alertmanager/alertmanager.yml")


def check_site(directory: Path) -> Path:
    """The site folder as an absolute path; BundleError when it lacks a file the stack loads."""
    directory = directory.resolve()
    missing = [f for f in SITE_FILES if not (directory / f).is_file()]
    if missing:
        raise BundleError(f"{directory} is not a site folder ({', '.join(missing)} missing): "
                          "build it with `vigil bundle build --override FILE --site DIR`")
    return directory


def load_yaml(path: str | os.PathLike) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}


def dump_yaml(data: dict, header: str = "") -> str:
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)


# --- addresses ----------------------------------------------------------------------------------

class Localizer:
    """Rewrites compose addresses to local ones and remembers what it could not place."""

    def __init__(self, addresses: dict[str, str | None]):
        # component name -> "127.0.0.1:port", or None when the component is not running
        self.addresses = addresses
        self.warnings: list[str] = []

    def component(self, host: str) -> str | None:
        return SERVICE_COMPONENTS.get(host)

    def url(self, url: str, where: str) -> str | None:
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname:
            return url
        name = self.component(parts.hostname)
        if name is None:
            return url
        local = self.addresses.get(name)
        if local is None:
            return None
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{local}" if userinfo else local
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _absolute(path: str, base: PurePosixPath | Path) -> str:
    return path if os.path.isabs(path) else str(base / path)


# --- Prometheus ---------------------------------------------------------------------------------

def prometheus_ha(config: dict) -> dict:
    """The `ha` profile: every target on a doubled service gets its replica beside it, so both
    Prometheus servers send alerts to both Alertmanagers and scrape both of each pair (the
    Prometheus servers each with its `replica` label)."""
    config = copy.deepcopy(config)

    def doubled(targets: list[str]) -> list[str]:
        out = []
        for target in targets:
            out.append(target)
            host, _, port = target.rpartition(":")
            replica = HA_REPLICAS.get(host)
            if replica and f"{replica}:{port}" not in targets:
                out.append(f"{replica}:{port}")
        return out

    for static in _static_configs(config):
        static["targets"] = doubled(static.get("targets") or [])
    return prometheus_replica_targets(config, _replica_addresses(config))


PROMETHEUS_JOB = "prometheus"
REPLICA_LABEL = "replica"


def _replica_addresses(config: dict) -> dict[str, str]:
    """The `ha` profile's Prometheus servers at the port of the self-scrape target."""
    job = _job(config, PROMETHEUS_JOB)
    targets = [t for static in (job or {}).get("static_configs") or []
               for t in static.get("targets") or []]
    port = targets[0].rpartition(":")[2] if targets else "9090"
    return {name: f"{name}:{port}" for name in (PROMETHEUS_JOB, HA_REPLICAS[PROMETHEUS_JOB])}


def _job(config: dict, name: str) -> dict | None:
    return next((job for job in config.get("scrape_configs") or []
                 if job.get("job_name") == name), None)


def prometheus_replica_targets(config: dict, replicas: dict[str, str]) -> dict:
    """The `prometheus` job scraping every replica (name -> address), each with its `replica`
    label: the replicas watch each other, and their own series never merge into one."""
    config = copy.deepcopy(config)
    job = _job(config, PROMETHEUS_JOB)
    if job is None:
        return config
    labels = dict((job.get("static_configs") or [{}])[0].get("labels") or {})
    job["static_configs"] = [{"targets": [address], "labels": {**labels, REPLICA_LABEL: name}}
                             for name, address in replicas.items()]
    return config


def prometheus_remote_write(config: dict, url: str = REMOTE_WRITE_URL) -> dict:
    """The `scale-out` profile: every sample (scraped and recorded) is also written to
    VictoriaMetrics, which Prometheus scrapes as well."""
    config = copy.deepcopy(config)
    config.setdefault("remote_write", []).append({
        "url": url,
        "queue_config": {"max_samples_per_send": 10000, "batch_send_deadline": "5s"},
    })
    jobs = config.setdefault("scrape_configs", [])
    if not any(job.get("job_name") == "victoriametrics" for job in jobs):
        host = urllib.parse.urlsplit(url).netloc
        jobs.append({"job_name": "victoriametrics", "static_configs": [{"targets": [host]}]})
    return config


def prometheus_routes(config: dict, prometheus_prefix: str = "/",
                      alertmanager_prefix: str = "/") -> dict:
    """What Prometheus asks its peers and Alertmanager for, under their route prefixes: the
    alerting `path_prefix` and the `metrics_path` of the `prometheus` and `alertmanager` jobs
    ("/" leaves the defaults, as docker-compose.yml's explicit `--web.route-prefix=/`)."""
    config = copy.deepcopy(config)
    for manager in (config.get("alerting") or {}).get("alertmanagers") or []:
        _set_or_default(manager, "path_prefix", alertmanager_prefix, "/")
    for name, prefix in ((PROMETHEUS_JOB, prometheus_prefix), ("alertmanager", alertmanager_prefix)):
        job = _job(config, name)
        if job is not None:
            _set_or_default(job, "metrics_path", prefix.rstrip("/") + "/metrics", "/metrics")
    return config


def _set_or_default(section: dict, key: str, value: str, default: str) -> None:
    if value == default:
        section.pop(key, None)
    else:
        section[key] = value


def prometheus_rule_files(config: dict, base: PurePosixPath | Path) -> dict:
    """Relative rule_files resolved against `base` (the directory of prometheus.yml)."""
    config = copy.deepcopy(config)
    if config.get("rule_files"):
        config["rule_files"] = [_absolute(f, base) for f in config["rule_files"]]
    return config


def prometheus_variant(base: dict, ha: bool = False, remote_write: bool = False) -> dict:
    config = prometheus_ha(base) if ha else copy.deepcopy(base)
    return prometheus_remote_write(config) if remote_write else config


def prometheus_job_intervals(config: dict) -> dict:
    """Jobs inherit the global scrape interval and timeout (for tests that shorten them)."""
    config = copy.deepcopy(config)
    for job in config.get("scrape_configs") or []:
        job.pop("scrape_interval", None)
        job.pop("scrape_timeout", None)
    return config


def _static_configs(config: dict):
    for job in config.get("scrape_configs") or []:
        yield from job.get("static_configs") or []
    for am in (config.get("alerting") or {}).get("alertmanagers") or []:
        yield from am.get("static_configs") or []


def _looks_back_by_its_interval(group: dict) -> bool:
    interval = group.get("interval")
    return bool(interval) and any(f"offset {interval})" in rule.get("expr", "")
                                  for rule in group.get("rules") or [])


def rules_without_group_intervals(paths: list[str], out_dir: Path) -> Path:
    """Copies of the rule files, same names, whose groups use the global evaluation interval
    (for tests that shorten it); returns the directory holding them. A group that looks back
    by exactly its own interval (the usage rollup's steps) keeps it: run more often, it would
    count the same growth several times."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        document = load_yaml(path)
        for group in document.get("groups") or []:
            if not _looks_back_by_its_interval(group):
                group.pop("interval", None)
        (out_dir / Path(path).name).write_text(dump_yaml(document))
    return out_dir


# --- Alertmanager -------------------------------------------------------------------------------

# Receiver config lists the local stack can point at an HTTP sink, and the field holding the URL.
HTTP_NOTIFIERS = {"webhook_configs": "url", "slack_configs": "api_url", "pagerduty_configs": "url",
                  "opsgenie_configs": "api_url", "victorops_configs": "api_url",
                  "discord_configs": "webhook_url", "msteams_configs": "webhook_url",
                  "telegram_configs": "api_url", "webex_configs": "api_url"}


def alertmanager_localize(config: dict, base: Path, localizer: Localizer,
                          webhook: str | dict[str, str] | None = None,
                          smtp: str | None = None) -> dict:
    """alertmanager.yml for the local stack.

    Notifiers that point at a stack service (the exporter's log receiver) are pointed at the
    local one. Every other HTTP notifier of a receiver goes to `webhook` (a URL, or a mapping
    receiver name -> URL with "*" as the default) or is removed; email goes to the `smtp` sink
    ("host:port", no TLS, no auth) or is removed. Receivers and routes stay as they are.
    """
    config = copy.deepcopy(config)
    if config.get("templates"):
        config["templates"] = [_absolute(t, base) for t in config["templates"]]
    glob = config.setdefault("global", {})
    for key in [k for k in glob if k.endswith("_file") and not Path(str(glob[k])).exists()]:
        del glob[key]  # secrets mounted in compose; absent here
    if smtp:
        glob["smtp_smarthost"] = smtp
        glob["smtp_require_tls"] = False
        glob.setdefault("smtp_from", "vigil@localhost")
        for key in [k for k in glob if k.startswith("smtp_auth_")]:
            del glob[key]

    def sink_for(receiver: str) -> str | None:
        if isinstance(webhook, dict):
            return webhook.get(receiver, webhook.get("*"))
        return webhook

    for receiver in config.get("receivers") or []:
        name = receiver.get("name", "")
        sink = sink_for(name)
        for key in [k for k in receiver if k.endswith("_configs")]:
            kept = []
            for notifier in receiver[key] or []:
                where = f"alertmanager.yml: receiver {name}: {key}"
                notifier = _local_notifier(key, notifier, localizer, sink, smtp, where)
                if notifier is not None:
                    kept.append(notifier)
            if kept:
                receiver[key] = kept
            else:
                del receiver[key]
    return config


def _local_notifier(key: str, notifier: dict, localizer: Localizer, sink: str | None,
                    smtp: str | None, where: str) -> dict | None:
    if key == "email_configs":
        if not smtp:
            return None
        notifier = {k: v for k, v in notifier.items() if not k.startswith("auth_")}
        notifier.update(smarthost=smtp, require_tls=False)
        return notifier
    field = HTTP_NOTIFIERS.get(key)
    if field is None:
        localizer.warnings.append(f"{where}: cannot run locally; removed")
        return None
    url = notifier.get(field)
    if url and localizer.component(urllib.parse.urlsplit(url).hostname or "") is not None:
        local = localizer.url(url, where)
        if local is None:
            return None
        return {**notifier, field: local}
    if not sink:
        return None
    notifier = {k: v for k, v in notifier.items()
                if not k.endswith("_file") and k != "http_config"}
    notifier[field] = sink
    if key == "pagerduty_configs":
        notifier.setdefault("routing_key", "local")
    return notifier


# --- exporter -----------------------------------------------------------------------------------

def exporter_localize(config: dict, localizer: Localizer, listen: str, alert_log: Path,
                      collector_interval: str | None = None,
                      overrides: dict | None = None) -> dict:
    """deploy/vigil.compose.yml with the database and Redis URLs pointed at the local servers."""
    config = copy.deepcopy(config)
    config["listen_address"] = listen
    config.setdefault("alerts", {})["log_file"] = str(alert_log)
    collectors = config.setdefault("collectors", {})
    for name, entry in ((collectors.get("database") or {}).get("databases") or {}).items():
        entry["url"] = localizer.url(entry["url"], f"database {name}") or entry["url"]
    for name, entry in ((collectors.get("redis") or {}).get("instances") or {}).items():
        entry["url"] = localizer.url(entry["url"], f"redis {name}") or entry["url"]
    if collector_interval:
        for name in ("system", "database", "redis", "business"):
            section = collectors.setdefault(name, {}) or {}
            collectors[name] = section
            section["interval"] = collector_interval  # timeouts stay: a late run is skipped
    return deep_merge(config, overrides or {})


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
