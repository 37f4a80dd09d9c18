"""Pages, live: the whole local stack pages for nothing under demo traffic, and a real fault
pages once and resolves at every receiver (issue 17, "Tests" and "Pages that never resolve").

One stack for the module, from local binaries as `vigil stack up` runs it: Redis, PostgreSQL,
the exporter, the demo service with its traffic generator, Prometheus with the bundle's rules
and Alertmanager with the repository's routing; 1 s scrapes, evaluations and collections. The
receivers are local stand-ins (tests/sinks.py): every HTTP receiver (pager, Slack, heartbeat)
posts to its own path of a webhook sink, email goes to an SMTP sink, and `vigil-log` is the
exporter's own log receiver. Only timings differ from production: Alertmanager's group_wait and
group_interval (tests.test_alert_pipeline.fast_alertmanager) and DatabaseDown's `for` (the
documented `forDurations` override), so that the page comes within seconds.

1. Quiet: demo traffic with its bursts raises no critical alert, pending or firing.
2. A fault: PostgreSQL stops; DatabaseDown pages once; the exporter restarts during the outage
   (the page stays open and is never muted: nothing inhibits a critical alert, alertmanager#2754);
   PostgreSQL starts again; every receiver that got the page gets its resolve.
"""
from __future__ import annotations

import time

import pytest

from tests.test_alert_pipeline import (
    AM_TIMINGS,
    Delivery,
    Sinks,
    diagnostics,
    fast_alertmanager,
    names_in,
    routed_receivers,
    rule,
    seconds,
)
from vigil_exporter.tools import bundle
from vigil_exporter.tools.stack import Stack
from vigil_exporter.tools.stack.process import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TRAFFIC = 20              # demo requests per second: four times compose's default (5)
BURST_INTERVAL = 10       # seconds between the demo's bursts on average (demo default: 600)
QUIET_SECONDS = 120       # demo traffic watched for critical alerts
DATABASE = "main"         # deploy/vigil.compose.yml's database
DATABASE_DOWN_FOR = "5s"  # DatabaseDown `for` (production: 1m)
NOTIFY_TIMEOUT = 60.0
PAGER = "pager"


@pytest.fixture(scope="module")
def paging(tmp_path_factory):
    """(stack, sinks): the running stack with demo traffic, its receivers at the sinks."""
    rules = tmp_path_factory.mktemp("rules")
    bundle.build_rules(directory=rules,
                       overrides={"forDurations": {"DatabaseDown": DATABASE_DOWN_FOR}})
    sinks = Sinks()
    try:
        stack = Stack(free_ports=True, demo=True, traffic=TRAFFIC, scrape_interval="1s",
                      evaluation_interval="1s", collector_interval="1s", rules_dir=rules,
                      extra_args={"demo": ["--burst-interval", str(BURST_INTERVAL)]},
                      adjust={"alertmanager": fast_alertmanager}, **sinks.stack_options())
        missing = stack.missing_binaries()
        assert not missing, "\n".join(missing) + "\nrun the test command from README.md"
        with stack:
            stack.wait_for_query(f'vigil_db_up{{database="{DATABASE}"}} == 1', timeout=60)
            yield stack, sinks
    finally:
        sinks.stop()


def prometheus_alerts(stack: Stack) -> list[dict]:
    return stack.get_json("prometheus", "/api/v1/alerts")["data"]["alerts"]


def describe(alerts: list[dict]) -> str:
    """One line per alert: name, state, severity, what it is about, since when."""
    lines = []
    for alert in sorted(alerts, key=lambda a: (a["labels"]["alertname"], a["state"])):
        labels = alert["labels"]
        about = " ".join(f"{k}={v}" for k, v in sorted(labels.items())
                         if k not in ("alertname", "severity", "area"))
        lines.append(f"  {labels['alertname']} {alert['state']} ({labels.get('severity')}) "
                     f"{about} since {alert.get('activeAt')} value {alert.get('value')}")
    return "\n".join(lines) or "  (none)"


def bursts(stack: Stack) -> list[str]:
    """The kinds of the demo's traffic bursts so far, from its log."""
    return [line.split('"kind": "', 1)[1].split('"', 1)[0]
            for line in stack.demo.log().splitlines()
            if "traffic burst" in line and '"kind": "' in line]


def test_demo_traffic_raises_no_critical_alert(paging):
    """Two minutes of demo traffic with its bursts (floods, credential stuffing, key rotations,
    agent and chat storms, scanners) and no critical alert is ever pending or firing.

    Why two minutes: a pending alert fails the test as much as a firing one, so no `for` has to
    run out; what the window must hold is the noise. At four times compose's request rate and a
    burst every ~10 s instead of every ~10 minutes, two minutes carry the requests of eight
    minutes of compose's demo and about a dozen bursts; every range in a critical expression
    (5m burn rates, 6h disk forecast) is then judged on less history than in production,
    which makes it noisier, not quieter. Prometheus is asked every second (its evaluation
    interval), and at the end for every evaluation of the window (ALERTS), so that an alert
    pending between two polls is not missed."""
    stack, sinks = paging
    start = time.time()
    deadline = time.monotonic() + QUIET_SECONDS
    critical: dict[tuple, dict] = {}
    while time.monotonic() < deadline:
        alerts = prometheus_alerts(stack)
        for alert in alerts:
            if alert["labels"].get("severity") == "critical":
                critical.setdefault(tuple(sorted(alert["labels"].items())), alert)
        assert not critical, (
            f"critical alerts under demo traffic after {time.time() - start:.0f}s:\n"
            f"{describe(list(critical.values()))}\nevery alert now:\n{describe(alerts)}\n"
            f"bursts so far: {bursts(stack)}")
        assert not stack.failed(), f"stopped: {[c.name for c in stack.failed()]}"
        time.sleep(1.0)
    window = f"{int(time.time() - start)}s"
    missed = stack.query(f'count_over_time(ALERTS{{severity="critical"}}[{window}])')
    assert not missed, ("critical alerts pending or firing between the polls:\n"
                        + "\n".join(f"  {s['metric']} in {s['value'][1]} evaluations"
                                    for s in missed))
    pages = [d for d in sinks.deliveries(stack.exporter.alert_log)
             if d.receiver in (PAGER, "email-oncall")]
    assert not pages, [(d.receiver, sorted(names_in(d))) for d in pages]
    # the window did hold the noise it is about
    served = stack.query(f'sum(increase(http_requests_total{{job="vigil-demo"}}[{window}]))')
    assert served and float(served[0]["value"][1]) > TRAFFIC * QUIET_SECONDS / 2, served
    assert bursts(stack), "no traffic burst in the window"
    print(f"\nquiet for {window}: {float(served[0]['value'][1]):.0f} demo requests, "
          f"bursts: {bursts(stack)}; non-critical alerts now:\n{describe(prometheus_alerts(stack))}")


def database_down(deliveries: list[Delivery], status: str | None = None) -> list[Delivery]:
    return sorted((d for d in deliveries if "DatabaseDown" in names_in(d)
                   and (status is None or d.status == status)), key=lambda d: d.time)


def test_database_down_pages_once_across_an_exporter_restart_and_resolves_everywhere(paging):
    """PostgreSQL stops: DatabaseDown (critical) reaches the pager once. The exporter restarts
    during the outage (Prometheus sees it gone, `up` 0): the page neither resolves nor repeats
    nor becomes inhibited (TargetDown used to inhibit it, and Alertmanager then never sent the
    resolve, alertmanager#2754). PostgreSQL starts: each receiver that got the page (pager,
    email, Slack, the exporter's log) gets the resolved notification, after the recovery."""
    stack, sinks = paging

    def got() -> list[Delivery]:
        return database_down(sinks.deliveries(stack.exporter.alert_log))

    def wait_for_receivers(status: str, receivers: set[str]) -> None:
        try:
            wait_for(lambda: receivers <= {d.receiver for d in got() if d.status == status},
                     NOTIFY_TIMEOUT, interval=0.2)
        except TimeoutError:
            raise AssertionError(
                f"{status} DatabaseDown reached only {sorted({d.receiver for d in got()})} of "
                f"{sorted(receivers)} in {NOTIFY_TIMEOUT:g}s\n{diagnostics(stack)}") from None

    labels = {"alertname": "DatabaseDown", **rule("DatabaseDown")["labels"],
              "database": DATABASE, "job": "vigil", "instance": stack.exporter.address}
    routed = set(routed_receivers(stack.alertmanager.config_path, labels))
    assert PAGER in routed, routed
    stack.wait_for_query(f'vigil_db_up{{database="{DATABASE}"}} == 1', timeout=30)
    assert not got(), "DatabaseDown notified before the outage"

    stack.postgres.stop()
    fault = time.time()
    wait_for_receivers("firing", {PAGER})

    # the exporter restarts during the outage; Alertmanager's view of the page is watched
    states: list[str] = []

    def watch_page() -> list[dict]:
        alerts = stack.alertmanager.alerts(filter='alertname="DatabaseDown"')
        states.extend(a["status"]["state"] for a in alerts)
        return alerts
    old_pid = stack.exporter.pid
    stack.exporter.stop()
    watch_page()
    stack.exporter.start()  # ready: its first round (vigil_db_up 0) is in /metrics
    assert stack.exporter.pid != old_pid
    restarted = time.time()
    gone = stack.query(f'min_over_time(up{{job="vigil"}}[{int(restarted - fault) + 1}s])')
    assert [s["value"][1] for s in gone] == ["0"], f"Prometheus never saw the exporter gone: {gone}"
    # Prometheus scrapes the new exporter, still reporting the database down, and the page
    # stays open through Alertmanager flushes after the restart
    stack.wait_for_query(f'vigil_db_up{{database="{DATABASE}"}} == 0 and on (instance) '
                         f'vigil_start_time_seconds{{job="vigil"}} > {fault:.3f}', timeout=30)
    hold = time.monotonic() + 2 * seconds(AM_TIMINGS["group_interval"])
    while time.monotonic() < hold:
        assert watch_page(), "Alertmanager lost DatabaseDown during the outage"
        time.sleep(0.2)
    assert set(states) == {"active"}, f"DatabaseDown was {sorted(set(states))} during the outage"
    firing_in_prometheus = stack.query('ALERTS{alertname="DatabaseDown", alertstate="firing"}')
    assert firing_in_prometheus, "DatabaseDown stopped firing across the exporter restart"

    stack.postgres.start()
    recovery = time.time()
    receivers = {d.receiver for d in got() if d.status == "firing"}
    wait_for_receivers("resolved", receivers)

    deliveries = got()
    trail = [(d.receiver, d.status, round(d.time - fault, 1)) for d in deliveries]
    assert receivers == routed, (sorted(receivers), sorted(routed), trail)
    for receiver in receivers:
        statuses = [d.status for d in deliveries if d.receiver == receiver]
        assert statuses == ["firing", "resolved"], (receiver, trail)
        firing, resolved = (d for d in deliveries if d.receiver == receiver)
        assert fault < firing.time < recovery < resolved.time, (receiver, trail)
    [pager] = [d for d in deliveries if d.receiver == PAGER and d.status == "resolved"]
    assert [a["status"] for a in pager.payload["alerts"]] == ["resolved"]
    # the fault paged once: nothing else reached the pager during the outage
    other_pages = [sorted(names_in(d)) for d in sinks.deliveries(stack.exporter.alert_log)
                   if d.receiver == PAGER and d.time > fault
                   and "DatabaseDown" not in names_in(d)]
    assert not other_pages, other_pages
    print(f"\nseconds after the fault: exporter restarted {restarted - fault:.1f}, database "
          f"back {recovery - fault:.1f}; " + ", ".join(f"{r} {s} {t}" for r, s, t in trail))
