"""Rule evaluation cost of the tenant anomaly rules, before and after the seasonal redesign,
in a real Prometheus with 1,000 tenants (prometheus_rule_group_last_duration_seconds).

    python bench/anomaly_rules_bench.py                      # 1,000 tenants, 3h "season"
    python bench/anomaly_rules_bench.py --tenants 200 --window 1h --duration 40

Both designs run side by side in one Prometheus (Debian's binary), every group every 15 s so
that a short run holds many evaluations:

- before (bundle 0.1.0): `avg_over_time` and `stddev_over_time` of the 15-second
  `tenant:*:rate5m` over the window, in production every 1m; the alert compares rate5m with them.
- after (this bundle, built by `vigil bundle build` with the window overridden): the hourly rate
  recorded every 5 minutes, its change from one season earlier, and the mean and standard
  deviation of that change over the window; in production every 5m.

A real week cannot be replayed here, so the week is scaled down to `--window` and both
designs are given exactly the history they read, backfilled with `promtool tsdb
create-blocks-from openmetrics`: before, the 15-second rate5m over one window; after, the
5-minute rate1h over two windows and its change over one. Both read samples in proportion to
the window (40,320 against 2,016 per tenant and metric for a week: 20 times fewer), so the
ratio holds for a week and the absolute figures grow with the window. A small HTTP target serves
the tenants' counters, which the rate rules read. The figures are medians over the run.
"""
from __future__ import annotations

import argparse
import http.server
import json
import math
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from vigil_exporter.tools import bundle
from vigil_exporter.tools.stack.process import find_binary, free_port, wait_for
from vigil_exporter.validation import parse_duration

METRICS = ("messages", "api_calls")
EVAL = "15s"
SELECTOR = 'job="vigil"'
# production evaluation interval of each measured group, for the cost per hour
PRODUCTION = {"before-baseline": 60, "after-baseline": 300, "before-alerts": 15, "after-alerts": 15,
              "rates": 15}


def before_groups(window: str) -> list[dict]:
    """The 0.1.0 bundle's tenant baselines and anomaly alerts (this commit's parent)."""
    baseline = [{"record": f"tenant:vigil_tenant_{m}:{op}1w_rate5m",
                 "expr": f"{op}_over_time(tenant:vigil_tenant_{m}:rate5m[{window}])"}
                for m in METRICS for op in ("avg", "stddev")]
    alerts = [{"alert": f"Before{m.title().replace('_', '')}Anomaly", "expr": f"""
        tenant:vigil_tenant_{m}:rate5m
        and abs(tenant:vigil_tenant_{m}:rate5m - tenant:vigil_tenant_{m}:avg1w_rate5m)
          > 3 * tenant:vigil_tenant_{m}:stddev1w_rate5m
        and (tenant:vigil_tenant_{m}:rate5m >= 0.05 or tenant:vigil_tenant_{m}:avg1w_rate5m >= 0.05)
        """, "for": "30m"} for m in METRICS]
    return [{"name": "before-baseline", "interval": EVAL, "rules": baseline},
            {"name": "before-alerts", "interval": EVAL, "rules": alerts}]


def after_groups(window: str) -> list[dict]:
    """This bundle's tenant groups, with the season and baseline scaled to `window`."""
    rendered = bundle.render({"windows": {"anomalySeason": window, "anomalyBaseline": window},
                              "tenantBaselineInterval": EVAL})
    groups = {g["name"]: g for text in rendered.values() for g in yaml.safe_load(text)["groups"]}
    rates = groups["vigil-tenants.rules"]
    alerts = [r for r in groups["vigil-tenants"]["rules"] if r["alert"].endswith("Anomaly")]
    return [{"name": "rates", "interval": EVAL, "rules": rates["rules"]},
            {"name": "after-baseline", "interval": EVAL,
             "rules": groups["vigil-tenants-baseline.rules"]["rules"]},
            {"name": "after-alerts", "interval": EVAL, "rules": alerts}]


# ---- history --------------------------------------------------------------------------------

def level(tenant: int, t: float) -> float:
    """Messages (or API calls) per second: a size per tenant and a daily shape."""
    size = 0.05 + (tenant % 50) / 10
    return size * (1 + 0.5 * math.sin(2 * math.pi * (t % 86400) / 86400))


def write_history(path: Path, tenants: int, window: float, end: float) -> int:
    """OpenMetrics with what each design reads: rate5m every 15 s over one window (before);
    rate1h every 5 minutes over two windows and its change over one (after)."""
    rng = random.Random(1)
    count = 0
    with path.open("w") as out:
        for metric in METRICS:
            for name, step, span in ((f"tenant:vigil_tenant_{metric}:rate5m", 15, window),
                                     (f"tenant:vigil_tenant_{metric}:rate1h", 300, 2 * window),
                                     (f"tenant:vigil_tenant_{metric}:change1w_rate1h", 300, window)):
                out.write(f"# TYPE {name} gauge\n")
                steps = int(span // step)
                for tenant in range(tenants):
                    labels = f'{{job="vigil",instance="vigil:9477",tenant="t{tenant:05d}"}}'
                    for i in range(steps, 0, -1):
                        t = end - i * step
                        value = level(tenant, t) * (1 + rng.uniform(-0.05, 0.05))
                        if name.endswith("change1w_rate1h"):
                            value -= level(tenant, t - window)
                        out.write(f"{name}{labels} {value:.6g} {t:.0f}\n")
                        count += 1
        out.write("# EOF\n")
    return count


# ---- the live part --------------------------------------------------------------------------

class CounterTarget:
    """/metrics with every tenant's counters, growing at their level."""

    def __init__(self, tenants: int):
        self.tenants, self.started = tenants, time.time()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def body(self) -> bytes:
        elapsed = time.time() - self.started
        lines = ["# TYPE vigil_tenant_messages_total counter",
                 "# TYPE vigil_tenant_api_calls_total counter"]
        for tenant in range(self.tenants):
            total = level(tenant, time.time()) * elapsed
            labels = f'tenant="t{tenant:05d}"'
            lines += [f'vigil_tenant_messages_total{{{labels},direction="in"}} {total:.3f}',
                      f'vigil_tenant_messages_total{{{labels},direction="out"}} {total / 2:.3f}',
                      f'vigil_tenant_api_calls_total{{{labels}}} {total:.3f}']
        return ("\n".join(lines) + "\n").encode()

    def _handler(self):
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = target.body()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass
        return Handler

    def stop(self) -> None:
        self.server.shutdown()


def query(url: str, promql: str) -> list:
    with urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}),
                                timeout=60) as response:
        return json.load(response)["data"]["result"]


def answers(url: str) -> bool:
    try:
        return bool(query(url, "up"))
    except OSError:
        return False


def run(args) -> dict:
    window = parse_duration(args.window)
    work = Path(tempfile.mkdtemp(prefix="vigil-anomaly-bench-"))
    end = time.time() - 30
    started = time.perf_counter()
    samples = write_history(work / "history.om", args.tenants, window, end)
    data = work / "data"
    subprocess.run([find_binary("promtool"), "tsdb", "create-blocks-from", "openmetrics",
                    str(work / "history.om"), str(data)], check=True, capture_output=True)
    (work / "history.om").unlink()
    backfill = time.perf_counter() - started

    target = CounterTarget(args.tenants)
    groups = before_groups(args.window) + after_groups(args.window)
    (work / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (work / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": EVAL, "evaluation_interval": EVAL},
        "rule_files": [str(work / "rules.yml")],
        "scrape_configs": [
            {"job_name": "vigil", "static_configs": [{"targets": [target.address],
                                                      "labels": {"instance": "vigil:9477"}}],
             "honor_labels": False},
            {"job_name": "prometheus", "scrape_interval": "5s",
             "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]}))
    process = subprocess.Popen(
        [find_binary("prometheus"), f"--config.file={work / 'prometheus.yml'}",
         f"--storage.tsdb.path={data}", f"--web.listen-address=127.0.0.1:{port}",
         "--storage.tsdb.retention.time=30d"],
        stdout=subprocess.DEVNULL, stderr=open(work / "prometheus.log", "w"))
    try:
        wait_for(lambda: answers(url), 120, interval=0.5, what="Prometheus")
        time.sleep(args.duration)
        span = f"{args.duration}s"
        medians = {r["metric"]["rule_group"].rsplit(";", 1)[1]: float(r["value"][1]) for r in query(
            url, f"quantile_over_time(0.5, prometheus_rule_group_last_duration_seconds[{span}])")}
        evaluations = {r["metric"]["rule_group"].rsplit(";", 1)[1]: float(r["value"][1]) for r in query(
            url, f"increase(prometheus_rule_group_iterations_total[{span}])")}
        series = {m: len(query(url, f"tenant:vigil_tenant_{m}:stddev1w_change1w_rate1h")) for m in METRICS}
    finally:
        process.terminate()
        process.wait(30)
        target.stop()
    return {"tenants": args.tenants, "window": args.window, "samples_backfilled": samples,
            "backfill_seconds": backfill, "median_seconds": medians, "evaluations": evaluations,
            "baseline_series": series, "workdir": str(work)}


def report(result: dict) -> None:
    medians = result["median_seconds"]
    print(f"{result['tenants']} tenants, window {result['window']} (a week scaled down), "
          f"{result['samples_backfilled']:,} samples backfilled in {result['backfill_seconds']:.0f} s")
    print(f"{'group':<18}{'median eval':>14}{'evals':>8}{'prod. interval':>16}{'CPU s/hour':>12}")
    for group in ("rates", "before-baseline", "after-baseline", "before-alerts", "after-alerts"):
        per_hour = medians[group] * 3600 / PRODUCTION[group]
        print(f"{group:<18}{medians[group] * 1000:>12.1f}ms{result['evaluations'].get(group, 0):>8.0f}"
              f"{PRODUCTION[group]:>14}s{per_hour:>12.2f}")
    before, after = medians["before-baseline"], medians["after-baseline"]
    print(f"baseline, per evaluation: after / before = {after / before:.3f} "
          f"({before / after:.1f} times cheaper)")
    print(f"baseline, per hour of production: after / before = "
          f"{after * 3600 / 300 / (before * 3600 / 60):.4f}")
    alerts = medians["after-alerts"] / medians["before-alerts"]
    print(f"alerts, per evaluation: after / before = {alerts:.2f}")
    print(f"baselines recorded for {result['baseline_series']} tenants")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--window", default="3h", help="the scaled-down week (default 3h)")
    parser.add_argument("--duration", type=int, default=90, help="seconds of evaluations")
    args = parser.parse_args(argv)
    result = run(args)
    report(result)
    print(json.dumps({k: v for k, v in result.items() if k != "workdir"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
