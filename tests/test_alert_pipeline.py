"""The alert pipeline end to end, with real processes only (issue 6, "Tests").

    exporter (python -m vigil_exporter serve, Redis collector every 1s) -> real redis-server
    Prometheus (scrape 1s, evaluation 1s, the bundle's generated rules, RedisDown `for` 3s)
    Alertmanager (alertmanager/alertmanager.yml, group_wait 1.5s, group_interval 2s)
        -> pager webhook and Slack: a local webhook sink (tests.sinks.WebhookSink)
        -> email: a real SMTP server (aiosmtpd, tests.sinks.SmtpSink)
        -> vigil-log: the exporter's own POST /alerts/webhook (JSON-lines file)

The processes come from the local stack (vigil_exporter.tools.stack.Stack), which derives every config from
the files docker compose mounts and points the receivers at the sinks given to it. Only timings
and addresses differ from production: the rules are the bundle's own, built with the documented
override mechanism (`forDurations`), and the Alertmanager config is the repository's file with
group_wait/group_interval shortened wherever it sets them (checked below).

1. A Redis outage: RedisDown (critical, area redis) reaches every receiver that routing names
   for it, with its labels and the rendered templates, then a resolved notification after Redis
   is back. The time from the fault to the first notification and from the recovery to the
   resolved one is printed and recorded in docs/performance.md ("Alert pipeline latency").
2. High availability: two Prometheus replicas (external label `replica`, dropped from alerts by
   `alert_relabel_configs`) alert two Alertmanagers clustered on loopback; every notification
   reaches its receiver once (counted by receiver, group and status), the Watchdog heartbeat
   included.

Each fixture runs its whole scenario, stops every process (also on failure) and hands the tests
what the sinks received, so that only one stack runs at a time.
"""
from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.sinks import SmtpSink, WebhookSink, message_text
from vigil_exporter.alerting.timeutil import parse_time
from vigil_exporter.tools import bundle
from vigil_exporter.tools.stack import Stack
from vigil_exporter.tools.stack.process import find_binary, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

# --- the settings of the test pipeline (docs/performance.md quotes them) ------------------------
SCRAPE_INTERVAL = "1s"          # Prometheus scrape interval (production: 15s)
EVALUATION_INTERVAL = "1s"      # rule evaluation and alert resend delay (production: 15s / 1m)
COLLECTOR_INTERVAL = "1s"       # the exporter's collectors (production: 15s)
REDIS_DOWN_FOR = "3s"           # RedisDown `for` (production: 1m)
# Alertmanager group_wait / group_interval (production: 10s critical, 30s otherwise / 5m).
# group_wait is 1.5s, not 1s: Prometheus sends at its evaluations, once a second at one phase
# (both replicas at the same one), and a group starts with such a send; on a 1s grid every flush
# would fall on the very millisecond of a send, and whether the send or the flush comes first
# would decide what the flush sees, possibly differently in the two clustered Alertmanagers
# (with 1s and a 2s peer timeout, 4 of 12 HA runs had a notification sent by both).
AM_TIMINGS = {"group_wait": "1500ms", "group_interval": "2s"}
# Alertmanager --cluster.peer-timeout in the HA pair (default 15s). The second Alertmanager
# checks the notification log this long after its flush: half a group_interval, so that its check
# never coincides with the first one's next flush (2s would: both would send).
PEER_TIMEOUT = 1.0
# Keep watching for duplicates this long after each notification.
DUPLICATE_WINDOW = 2 * PEER_TIMEOUT + 1
NOTIFY_TIMEOUT = 30.0

BUNDLE_CONFIG = Path(__file__).resolve().parent.parent / "alertmanager" / "alertmanager.yml"
ALERT = "RedisDown"
REDIS_NAME = "cache"            # deploy/vigil.compose.yml's Redis instance


def fast_alertmanager(config: dict) -> dict:
    """The repository's Alertmanager config with only group_wait/group_interval shortened: at the
    root and wherever a route sets them (a value that is already shorter, such as the Watchdog's
    group_wait 0s, stays)."""
    def walk(route: dict, root: bool) -> None:
        for key, value in AM_TIMINGS.items():
            if (root or key in route) and seconds(route.get(key, "1h")) > seconds(value):
                route[key] = value
        for child in route.get("routes") or []:
            walk(child, False)
    walk(config["route"], True)
    return config


def timings_removed(route: dict) -> dict:
    route = {k: v for k, v in route.items() if k not in AM_TIMINGS}
    if "routes" in route:
        route["routes"] = [timings_removed(r) for r in route["routes"]]
    return route


def bundle_receivers() -> list[str]:
    return [r["name"] for r in yaml.safe_load(BUNDLE_CONFIG.read_text())["receivers"]]


def rule(name: str) -> dict:
    return next(r for g in bundle.load_groups() for r in g["rules"] if r.get("alert") == name)


def seconds(duration: str) -> float:
    """A Prometheus duration ("1s", "5m", "1h30m") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)",
                                                          duration))


# --- what the receivers got -----------------------------------------------------------------

@dataclass
class Delivery:
    """One notification as a receiver got it."""
    receiver: str
    status: str             # firing | resolved
    group: str              # what identifies the notification's group at that receiver
    time: float             # unix time of arrival
    payload: object         # webhook JSON, Slack JSON, email message, log record
    sender: str = ""        # the Alertmanager that sent it (webhooks say so), if known


@dataclass
class Observed:
    """Everything a scenario saw, kept after its processes stopped."""
    fault: float = 0.0
    recovery: float = 0.0
    instance: str = ""
    routed: list[str] = field(default_factory=list)
    alertmanager_config: dict = field(default_factory=dict)
    alertmanager_alerts: dict[str, list[dict]] = field(default_factory=dict)
    prometheus_alertmanagers: dict[str, list[str]] = field(default_factory=dict)
    prometheus_scraped_replicas: dict[str, list] = field(default_factory=dict)
    firing_in: dict[str, list[dict]] = field(default_factory=dict)
    cluster: dict[str, dict] = field(default_factory=dict)
    alertmanager_urls: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    notifications_metric: dict[tuple[str, str], float] = field(default_factory=dict)

    def of(self, receiver: str, status: str | None = None,
           alertname: str = ALERT) -> list[Delivery]:
        return sorted((d for d in self.deliveries if d.receiver == receiver
                       and (status is None or d.status == status)
                       and alertname in names_in(d)), key=lambda d: d.time)

    def latency(self, status: str, receivers: list[str]) -> dict[str, float]:
        """Receiver -> seconds from the fault (firing) or recovery (resolved) to its first
        notification of that status."""
        start = self.fault if status == "firing" else self.recovery
        return {r: self.of(r, status)[0].time - start for r in receivers}


def names_in(delivery: Delivery) -> set[str]:
    payload = delivery.payload
    if delivery.receiver == "vigil-log":
        return {payload["alertname"]}
    if delivery.receiver == "email-oncall":
        return {word for word in str(payload["Subject"]).split()}
    if isinstance(payload, dict) and "alerts" in payload:
        return {a["labels"]["alertname"] for a in payload["alerts"]}
    if isinstance(payload, dict) and "attachments" in payload:  # Slack
        return {word for word in payload["attachments"][0]["title"].split()}
    return set()


class Sinks:
    """The local stand-ins for Slack, the pager and the mail server, plus the exporter's own
    alert log, read as one list of deliveries."""

    def __init__(self):
        self.webhook = WebhookSink().start()
        try:
            self.smtp = SmtpSink().start()
        except BaseException:
            self.webhook.stop()
            raise

    def stack_options(self) -> dict:
        # Every HTTP receiver to its own path of the webhook sink; vigil-log stays the exporter.
        return {"alert_webhook": {name: f"{self.webhook.url}/{name}"
                                  for name in bundle_receivers()},
                "alert_smtp": f"127.0.0.1:{self.smtp.port}"}

    def deliveries(self, alert_log: Path | None) -> list[Delivery]:
        out = []
        for request in self.webhook.received():
            receiver, document = request["path"].strip("/"), request["json"] or {}
            if "attachments" in document:  # Slack: one attachment per notification
                title = document["attachments"][0]["title"]
                status = "resolved" if title.startswith("[RESOLVED]") else "firing"
                out.append(Delivery(receiver, status, f"{document.get('channel')} "
                                    f"{title.split('] ', 1)[-1]}", request["time"], document))
            else:  # Alertmanager webhook (version 4)
                out.append(Delivery(receiver, document.get("status", "?"),
                                    document.get("groupKey", "?"), request["time"], document,
                                    document.get("externalURL", "")))
        for mail in self.smtp.received():
            message = mail["message"]
            subject = str(message["Subject"])
            status = "resolved" if subject.startswith("[RESOLVED]") else "firing"
            out.append(Delivery("email-oncall", status, subject.split("] ", 1)[-1], mail["time"],
                                message))
        if alert_log is not None and alert_log.exists():
            for line in alert_log.read_text().splitlines():
                record = json.loads(line)
                out.append(Delivery("vigil-log", record["status"],
                                    record["fingerprint"] or record["alertname"],
                                    parse_time(record["received_at"]).timestamp(), record))
        return out

    def stop(self) -> None:
        self.webhook.stop()
        self.smtp.stop()


def notifications_metric(stack: Stack, timeout: float = 5.0) -> dict[tuple[str, str], float]:
    """The exporter's notification counters, once they count the resolved notification (the
    body is rendered again within a second of the webhook's arrival)."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(stack.exporter.url + "/metrics", timeout=5) as response:
            text = response.read().decode()
        counts = {(s.labels["status"], s.labels["severity"]): s.value
                  for family in text_string_to_metric_families(text)
                  if family.name == "vigil_alert_notifications"
                  for s in family.samples if s.name.endswith("_total")}
        if counts.get(("resolved", "critical"), 0) >= 1 or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def routed_receivers(config_path: Path, labels: dict[str, str]) -> list[str]:
    """What `amtool config routes test` says the rendered config does with these labels."""
    done = subprocess.run([find_binary("amtool"), "config", "routes", "test",
                           f"--config.file={config_path}",
                           *(f"{k}={v}" for k, v in labels.items())],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().split(",")


def run_outage(stack: Stack, sinks: Sinks, observed: Observed, window: float = 0.0) -> None:
    """Stop Redis until every routed receiver has the firing notification, start it again and
    wait until each has the resolved one; `window`: keep watching that long after each."""
    def got(status: str) -> set[str]:
        return {d.receiver for d in sinks.deliveries(stack.exporter.alert_log)
                if d.status == status and ALERT in names_in(d)}

    def wait_for_all(status: str) -> None:
        try:
            wait_for(lambda: set(observed.routed) <= got(status), NOTIFY_TIMEOUT)
        except TimeoutError:
            raise AssertionError(
                f"{status} {ALERT} reached only {sorted(got(status))} of {observed.routed} in "
                f"{NOTIFY_TIMEOUT:g}s\n" + diagnostics(stack)) from None

    stack.wait_for_query(f'vigil_redis_up{{redis="{REDIS_NAME}"}} == 1', timeout=30)
    assert not stack.query(f'ALERTS{{alertname="{ALERT}"}}'), "RedisDown before the outage"
    stack.redis.stop()              # returns once redis-server has exited
    observed.fault = time.time()
    wait_for_all("firing")
    for replica in stack.prometheis:  # each Prometheus fires it (the HA pair: both do)
        observed.firing_in[replica.name] = stack.wait_for_query(
            f'ALERTS{{alertname="{ALERT}", alertstate="firing"}}', source=replica.name,
            timeout=10)
    for manager in stack.alertmanagers:
        observed.alertmanager_alerts[manager.name] = stack.get_json(
            manager.name, "/api/v2/alerts", {"filter": f'alertname="{ALERT}"'})
    time.sleep(window)
    stack.redis.start()             # returns once Redis answers PING
    observed.recovery = time.time()
    wait_for_all("resolved")
    time.sleep(window)


def diagnostics(stack: Stack) -> str:
    """What Prometheus and Alertmanager think, and their logs' tails (the stack's work directory
    is removed on stop)."""
    parts = []
    for replica in stack.prometheis:
        try:
            alerts = stack.get_json(replica.name, "/api/v1/alerts")["data"]["alerts"]
            parts.append(f"{replica.name} alerts: " + ", ".join(
                f"{a['labels']['alertname']}={a['state']}" for a in alerts))
        except OSError as exc:
            parts.append(f"{replica.name}: {exc}")
    for component in [*stack.alertmanagers, stack.exporter]:
        parts.append(f"--- {component.name} log:\n{component.log(tail=15)}")
    return "\n".join(parts)


def observe_stack(stack: Stack, observed: Observed) -> None:
    """The parts of the running stack's state that the tests look at."""
    observed.instance = stack.exporter.address
    observed.alertmanager_config = yaml.safe_load(stack.alertmanager.config_path.read_text())
    observed.routed = routed_receivers(stack.alertmanager.config_path, {
        "alertname": ALERT, **rule(ALERT)["labels"], "redis": REDIS_NAME,
        "job": "vigil", "instance": stack.exporter.address})
    observed.alertmanager_urls = [am.url for am in stack.alertmanagers]
    for replica in stack.prometheis:
        active = stack.get_json(replica.name, "/api/v1/alertmanagers")["data"]
        observed.prometheus_alertmanagers[replica.name] = sorted(
            a["url"] for a in active["activeAlertmanagers"])
        loaded = yaml.safe_load(stack.get_json(replica.name, "/api/v1/status/config")["data"]["yaml"])
        job = next(j for j in loaded["scrape_configs"] if j["job_name"] == "prometheus")
        observed.prometheus_scraped_replicas[replica.name] = sorted(
            group["labels"]["replica"] for group in job["static_configs"])


def stack_settings(rules_dir: Path, sinks: Sinks, **options) -> dict:
    return dict(free_ports=True, demo=False, scrape_interval=SCRAPE_INTERVAL,
                evaluation_interval=EVALUATION_INTERVAL, collector_interval=COLLECTOR_INTERVAL,
                rules_dir=rules_dir, **sinks.stack_options(), **options)


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory) -> Path:
    """The bundle's rules with RedisDown's `for` shortened, as a user customises the bundle."""
    directory = tmp_path_factory.mktemp("rules")
    bundle.build_rules(directory=directory, overrides={"forDurations": {ALERT: REDIS_DOWN_FOR}})
    return directory


def missing_binaries(stack: Stack) -> None:
    missing = stack.missing_binaries()
    assert not missing, "\n".join(missing) + "\nrun the test command from README.md"


@pytest.fixture(scope="module")
def outage(request, rules_dir) -> Observed:
    """One exporter, Prometheus and Alertmanager; Redis stopped and started again."""
    observed = Observed()
    sinks = Sinks()
    try:
        stack = Stack(**stack_settings(rules_dir, sinks,
                                       adjust={"alertmanager": fast_alertmanager}))
        missing_binaries(stack)
        with stack:
            observe_stack(stack, observed)
            run_outage(stack, sinks, observed)
            observed.notifications_metric = notifications_metric(stack)
            observed.deliveries = sinks.deliveries(stack.exporter.alert_log)
    finally:
        sinks.stop()
    report_latency(request, observed)
    return observed


def show(request, text: str) -> None:
    """Print past pytest's output capture (the figures are the point of the run)."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n" + text, flush=True)


def report_latency(request, observed: Observed) -> None:
    firing = observed.latency("firing", observed.routed)
    resolved = observed.latency("resolved", observed.routed)
    # Prometheus sends startsAt = when the alert fired (pending for `for`), endsAt = when an
    # evaluation found it resolved
    pager = observed.of("pager", "resolved")[0].payload["alerts"][0]
    fired = parse_time(pager["startsAt"]).timestamp() - observed.fault
    cleared = parse_time(pager["endsAt"]).timestamp() - observed.recovery
    show(request, "\n".join([
        f"alert pipeline latency (scrape {SCRAPE_INTERVAL}, evaluation {EVALUATION_INTERVAL}, "
        f"collector {COLLECTOR_INTERVAL}, {ALERT} for {REDIS_DOWN_FOR}, group_wait "
        f"{AM_TIMINGS['group_wait']}, group_interval {AM_TIMINGS['group_interval']}):",
        f"  fault -> first notification: {min(firing.values()):.2f}s (Prometheus fired it after "
        f"{fired:.2f}s; " + ", ".join(f"{r} {t:.2f}s" for r, t in firing.items()) + ")",
        f"  recovery -> resolved: {min(resolved.values()):.2f}s (Prometheus resolved it after "
        f"{cleared:.2f}s; " + ", ".join(f"{r} {t:.2f}s" for r, t in resolved.items()) + ")"]))


# --- 1. end to end ----------------------------------------------------------------------------

def test_the_alertmanager_config_is_the_repository_one_with_shorter_timings(outage):
    source = yaml.safe_load(BUNDLE_CONFIG.read_text())
    loaded = outage.alertmanager_config
    assert timings_removed(loaded["route"]) == timings_removed(source["route"])
    assert loaded["inhibit_rules"] == source["inhibit_rules"]
    kinds = {r["name"]: sorted(k for k in r if k.endswith("_configs")) for r in source["receivers"]}
    assert {r["name"]: sorted(k for k in r if k.endswith("_configs"))
            for r in loaded["receivers"]} == kinds
    assert loaded["route"]["group_wait"] == AM_TIMINGS["group_wait"]
    assert loaded["route"]["group_interval"] == AM_TIMINGS["group_interval"]


def test_redis_down_is_critical_and_routes_to_pager_email_slack_and_the_log(outage):
    labels = rule(ALERT)["labels"]
    assert labels == {"area": "redis", "severity": "critical"}
    assert outage.routed == ["vigil-log", "pager", "email-oncall", "slack-data"]
    [alert] = outage.alertmanager_alerts["alertmanager"]
    assert sorted(r["name"] for r in alert["receivers"]) == sorted(outage.routed)


def test_the_pager_webhook_gets_the_alert_with_its_labels_and_annotations(outage):
    [firing] = outage.of("pager", "firing")
    payload = firing.payload
    assert payload["version"] == "4" and payload["receiver"] == "pager"
    assert payload["status"] == "firing"
    [alert] = payload["alerts"]
    assert {k: alert["labels"].get(k) for k in ("alertname", "severity", "area", "redis", "job",
                                                "instance")} == {
        "alertname": ALERT, "severity": "critical", "area": "redis", "redis": REDIS_NAME,
        "job": "vigil", "instance": outage.instance}
    expected = rule(ALERT)["annotations"]
    annotations = alert["annotations"]
    assert annotations["summary"] == expected["summary"]
    assert annotations["runbook_url"] == expected["runbook_url"]
    assert annotations["runbook_url"].endswith("#redisdown")
    assert annotations["dashboard_url"] == expected["dashboard_url"]
    assert annotations["description"] == (f"Redis {REDIS_NAME} watched by {outage.instance} "
                                          "does not answer (up = 0).")
    assert payload["groupLabels"]["alertname"] == ALERT
    assert payload["groupLabels"]["redis"] == REDIS_NAME


def test_slack_gets_the_rendered_template_in_the_data_channel(outage):
    [firing] = outage.of("slack-data", "firing")
    annotations = rule(ALERT)["annotations"]
    attachment = firing.payload["attachments"][0]
    assert firing.payload["channel"] == "#vigil-data"
    assert attachment["title"] == f"[FIRING:1] {ALERT} (critical)"
    assert attachment["title_link"] == annotations["dashboard_url"]
    assert attachment["color"] == "danger"
    text = attachment["text"]
    assert annotations["summary"] in text
    assert f"Redis {REDIS_NAME} watched by {outage.instance} does not answer" in text
    assert "*Severity:* `critical`" in text and "*Area:* `redis`" in text
    assert f"*Instance:* `{outage.instance} redis={REDIS_NAME}`" in text
    assert f"<{annotations['runbook_url']}|Runbook>" in text
    assert f"<{annotations['dashboard_url']}|Dashboard>" in text
    # the other Slack channels get nothing about Redis
    assert not outage.of("slack-platform") and not outage.of("slack-app")


def test_the_email_is_rendered_with_summary_description_and_links(outage):
    [firing] = outage.of("email-oncall", "firing")
    message = firing.payload
    annotations = rule(ALERT)["annotations"]
    assert str(message["Subject"]) == (f"[FIRING:1] {ALERT} (critical): {outage.instance} "
                                       f"redis={REDIS_NAME}")
    assert message["To"] == "oncall@example.com"
    body = message_text(message)
    assert annotations["summary"] in body
    assert f"Redis {REDIS_NAME} watched by {outage.instance} does not answer (up = 0)." in body
    assert f"Runbook:     {annotations['runbook_url']}" in body       # the text part
    assert f"Dashboard:   {annotations['dashboard_url']}" in body
    assert f'<a href="{annotations["runbook_url"]}">Runbook</a>' in body  # the HTML part
    assert f'<a href="{annotations["dashboard_url"]}">Dashboard</a>' in body


def test_every_receiver_gets_the_resolved_notification_after_redis_is_back(outage):
    for receiver in outage.routed:
        [firing] = outage.of(receiver, "firing")
        [resolved] = outage.of(receiver, "resolved")
        assert outage.fault < firing.time < outage.recovery < resolved.time, receiver
    [pager] = outage.of("pager", "resolved")
    [alert] = pager.payload["alerts"]
    assert alert["status"] == "resolved"
    assert parse_time(alert["endsAt"]).timestamp() >= outage.recovery - 1.0
    [slack] = outage.of("slack-data", "resolved")
    assert slack.payload["attachments"][0]["title"] == f"[RESOLVED] {ALERT} (critical)"
    assert slack.payload["attachments"][0]["color"] == "good"
    assert "Resolved:" in slack.payload["attachments"][0]["text"]
    [mail] = outage.of("email-oncall", "resolved")
    assert str(mail.payload["Subject"]).startswith(f"[RESOLVED] {ALERT} (critical)")


def test_the_log_receiver_file_has_the_firing_and_the_resolved_alert(outage):
    records = [d.payload for d in outage.of("vigil-log")]
    assert [r["status"] for r in records] == ["firing", "resolved"]
    for record in records:
        assert record["receiver"] == "vigil-log" and record["severity"] == "critical"
        assert record["labels"]["redis"] == REDIS_NAME and record["labels"]["area"] == "redis"
        assert record["annotations"]["runbook_url"] == rule(ALERT)["annotations"]["runbook_url"]
    assert records[0]["fingerprint"] == records[1]["fingerprint"]
    assert parse_time(records[1]["endsAt"]) > parse_time(records[1]["startsAt"])
    # ... and the exporter counted both
    assert outage.notifications_metric[("firing", "critical")] >= 1
    assert outage.notifications_metric[("resolved", "critical")] >= 1


def test_latency_from_fault_and_recovery_to_notification(outage):
    firing = outage.latency("firing", outage.routed)
    resolved = outage.latency("resolved", outage.routed)
    for_ = seconds(REDIS_DOWN_FOR)
    # detection: one collector run, one scrape and one evaluation at most (plus slack)
    detection = sum(map(seconds, (COLLECTOR_INTERVAL, SCRAPE_INTERVAL, EVALUATION_INTERVAL)))
    group_wait, group_interval = (seconds(AM_TIMINGS[k]) for k in ("group_wait", "group_interval"))
    slack = 5.0  # a loaded CI machine
    # `for` is the floor: nothing fires before the alert was pending that long
    assert all(for_ <= t <= detection + for_ + seconds(EVALUATION_INTERVAL) + group_wait + slack
               for t in firing.values()), firing
    assert all(0 < t <= detection + group_interval + slack for t in resolved.values()), resolved


# --- 2. high availability -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def ha_outage(request, rules_dir) -> Observed:
    """Two Prometheus replicas alerting two clustered Alertmanagers; Redis stopped and started;
    the sinks watched for duplicates for a while after each notification."""
    observed = Observed()
    sinks = Sinks()
    peer_timeout = [f"--cluster.peer-timeout={PEER_TIMEOUT:g}s"]
    try:
        stack = Stack(**stack_settings(
            rules_dir, sinks, prometheus_replicas=2, alertmanager_replicas=2,
            extra_args={"alertmanager": peer_timeout, "alertmanager-2": peer_timeout},
            adjust={"alertmanager": fast_alertmanager}))
        missing_binaries(stack)
        with stack:
            for manager in stack.alertmanagers:
                def settled(name=manager.name):
                    cluster = stack.get_json(name, "/api/v2/status")["cluster"]
                    return cluster["status"] == "ready" and len(cluster.get("peers") or []) == 2
                wait_for(settled, 30, what=f"{manager.name} in a ready cluster of 2")
                observed.cluster[manager.name] = stack.get_json(manager.name,
                                                                "/api/v2/status")["cluster"]
            observe_stack(stack, observed)
            run_outage(stack, sinks, observed, window=DUPLICATE_WINDOW)
            observed.deliveries = sinks.deliveries(stack.exporter.alert_log)
    finally:
        sinks.stop()
    firing = observed.latency("firing", observed.routed)
    resolved = observed.latency("resolved", observed.routed)
    show(request, f"HA pair: fault -> first notification {min(firing.values()):.2f}s, "
         f"recovery -> resolved {min(resolved.values()):.2f}s; sent by "
         + ", ".join(sorted({d.sender for d in observed.deliveries if d.sender})))
    return observed


def test_ha_both_replicas_alert_both_clustered_alertmanagers(ha_outage):
    for name, cluster in ha_outage.cluster.items():
        assert cluster["status"] == "ready", name
        assert len(cluster["peers"]) == 2, name
    expected = sorted(f"{url}/api/v2/alerts" for url in ha_outage.alertmanager_urls)
    assert ha_outage.prometheus_alertmanagers == {"prometheus": expected,
                                                  "prometheus-2": expected}
    # The replicas load one config: each scrapes both, told apart by a target label (not an
    # external label), so the alerts both send are identical ...
    both = ["prometheus", "prometheus-2"]
    assert ha_outage.prometheus_scraped_replicas == {"prometheus": both, "prometheus-2": both}
    # ... both replicas fired RedisDown ...
    assert set(ha_outage.firing_in) == {"prometheus", "prometheus-2"}
    assert all(ha_outage.firing_in.values())
    # ... and each Alertmanager holds one alert for it, with no replica label
    for name, alerts in ha_outage.alertmanager_alerts.items():
        assert len(alerts) == 1, (name, alerts)
        assert "replica" not in alerts[0]["labels"]
        assert alerts[0]["labels"]["monitor"] == "vigil"  # the other external labels stay


def test_ha_every_notification_is_delivered_once(ha_outage):
    """Each notification reaches its receiver once: counted by receiver, group and status.

    Before the recovery this is strict: one firing notification per receiver. After it, the two
    Prometheus replicas may disagree for one evaluation (one saw Redis back, the other not yet);
    an Alertmanager that flushes then may see either, so the group may go resolved, firing,
    resolved. Those are different notifications, each delivered once; a duplicate is the same
    status twice in a row (both Alertmanagers sent it)."""
    redis = sorted((d for d in ha_outage.deliveries if ALERT in names_in(d)),
                   key=lambda d: d.time)
    groups: dict[tuple[str, str], list[Delivery]] = {}
    for delivery in redis:
        groups.setdefault((delivery.receiver, delivery.group), []).append(delivery)
    trail = {key: [(d.status, d.sender, round(d.time - ha_outage.fault, 2)) for d in sequence]
             for key, sequence in groups.items()}  # (status, sender, seconds after the fault)
    assert sorted(receiver for receiver, _ in groups) == sorted(ha_outage.routed), trail

    before = Counter((d.receiver, d.group, d.status) for d in redis
                     if d.time < ha_outage.recovery)
    assert before == Counter({(receiver, group, "firing"): 1 for receiver, group in groups}), trail
    for key, sequence in groups.items():
        statuses = [d.status for d in sequence]
        repeated = [a for a, b in zip(statuses, statuses[1:]) if a == b]
        assert not repeated, (f"{key}: delivered twice in a row", trail[key])
        assert statuses[0] == "firing" and statuses[-1] == "resolved", trail[key]
    flapped = {key: trail[key] for key, sequence in groups.items() if len(sequence) > 2}
    if flapped:
        print(f"replicas disagreed at a flush after the recovery: {flapped}")

    # one alert per notification, without the replica label
    for delivery in redis:
        if isinstance(delivery.payload, dict) and "alerts" in delivery.payload:
            alerts = delivery.payload["alerts"]
            assert len(alerts) == 1, (delivery.receiver, [a["labels"] for a in alerts])
            assert "replica" not in alerts[0]["labels"]
        if delivery.receiver == "slack-data" and delivery.status == "firing":
            assert delivery.payload["attachments"][0]["title"] == f"[FIRING:1] {ALERT} (critical)"
    # the Watchdog heartbeat, which both replicas send all the time, went out once
    heartbeats = [d for d in ha_outage.deliveries if d.receiver == "heartbeat"]
    assert len(heartbeats) == 1, [(d.sender, d.time) for d in heartbeats]
    assert heartbeats[0].payload["alerts"][0]["labels"]["alertname"] == "Watchdog"
