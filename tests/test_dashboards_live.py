"""Every dashboard panel shows data from a real Prometheus that scraped the real exporter and the
demo service with traffic, and `vigil dashboards render` draws every dashboard from it.

The fixture seam is `live_prometheus`: by default it uses the session's local stack (`live_stack`
in conftest.py: Redis, PostgreSQL, exporter, demo service with traffic, Prometheus with the
bundle's rules, Alertmanager, 1 s intervals); with VIGIL_LIVE_PROMETHEUS=http://host:9090 it uses a
Prometheus that already runs (e.g. `vigil stack up` or docker compose) instead.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from vigil_exporter.tools.dashboards import build, render

# aged_live_stack: the anomaly panels need the 2-minute season of the live stack's rules and
# more, so these run after the other tests of the live stack
pytestmark = [pytest.mark.slow, pytest.mark.aged_live_stack, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = build.load_dashboards(ROOT)
SCRAPE_SECONDS = 1
WINDOW = 180  # seconds of history each panel is asked for
DATA_TIMEOUT = 180  # every target has data about 3 minutes after the stack is up

# Targets that may legitimately return nothing while their panel still shows data:
# (dashboard, panel title, refId) -> why.
NO_REPLICA = "the live stack has no replica, replication slot or lagging replay"
NO_LAST_WEEK = "a stack minutes old has no same hour a week ago to compare with"
MAY_BE_EMPTY: dict[tuple[str, str, str], str] = {
    ("database", "Replication lag", "A"): NO_REPLICA,
    ("database", "Replication lag", "B"): NO_REPLICA,
    ("database", "Replication lag in bytes", "A"): NO_REPLICA,
    ("database", "Replication lag in bytes", "B"): NO_REPLICA,
    ("database", "WAL kept by replication slots", "A"): NO_REPLICA,
    ("redis", "Replica lag", "A"): NO_REPLICA,
    ("redis", "Replica links", "A"): NO_REPLICA,  # link up: a replica's own figure
    ("database", "Time since the last vacuum", "A"):
        "autovacuum may not have visited the demo tables within the few minutes of the stack",
    # the band is last week's same hour plus the usual change (promtool checks its values)
    ("business", "Message volume and its normal band", "B"): NO_LAST_WEEK,
    ("business", "Message volume and its normal band", "C"): NO_LAST_WEEK,
    ("business", "API-call volume and its normal band", "B"): NO_LAST_WEEK,
    ("business", "API-call volume and its normal band", "C"): NO_LAST_WEEK,
    ("tenants", "Days until each capacity limit", "A"):
        "only tenants whose agents, channels or storage grow over the lookback have a forecast",
    ("tenants", "Daily quotas by 00:00 UTC", "A"):
        "daily quotas are projected only after the first hours of the UTC day",
}


class Live:
    def __init__(self, url: str, scrape_seconds: float):
        self.url = url
        self.scrape_seconds = scrape_seconds
        self.prometheus = render.Prometheus(url)

    def fetch(self, name: str, end: float | None = None) -> list[render.PanelData]:
        return render.fetch(DASHBOARDS[name], self.prometheus, WINDOW, end,
                            scrape_interval=self.scrape_seconds)

    def empty_targets(self, end: float | None = None) -> list[tuple[str, str, str, str]]:
        missing = []
        for name in DASHBOARDS:
            for panel in self.fetch(name, end):
                for target in panel.targets:
                    if not target.series and (name, panel.title, target.ref) not in MAY_BE_EMPTY:
                        missing.append((name, panel.title, target.ref, target.expr))
        return missing


@pytest.fixture(scope="module")
def live_prometheus(request):
    url = os.environ.get("VIGIL_LIVE_PROMETHEUS")
    if url:
        return Live(url, render.scrape_interval(ROOT))
    stack = request.getfixturevalue("live_stack")  # shared with the other live tests
    stack.wait_for_query("vigil_build_info", timeout=60)
    return Live(stack.urls["prometheus"], SCRAPE_SECONDS)


@pytest.fixture(scope="module")
def settled(live_prometheus):
    """Wait until every target has data (or the time is up); return what is still empty."""
    deadline = time.monotonic() + DATA_TIMEOUT
    while True:
        missing = live_prometheus.empty_targets()
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(5)


def test_every_panel_shows_data(live_prometheus, settled):
    lines = [f"{name} / {title} / {ref}: {expr}" for name, title, ref, expr in settled]
    assert not lines, "queries without data:\n" + "\n".join(lines)


def test_no_panel_query_fails(live_prometheus, settled):
    # fetch() raises RenderError on any rejected query; run once more over the whole window.
    for name in DASHBOARDS:
        assert live_prometheus.fetch(name)


def test_render_draws_every_dashboard(live_prometheus, settled, tmp_path):
    written = render.render_all(ROOT, live_prometheus.url, tmp_path, WINDOW)
    assert sorted(p.stem for p, _ in written) == sorted(DASHBOARDS)
    for path, empty in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 100_000, path
        excused = {title for (dashboard, title, _), _why in MAY_BE_EMPTY.items()
                   if dashboard == path.stem}
        unexpected = [title for title in empty if title not in excused]
        assert not unexpected, f"{path.name}: panels without data: {unexpected}"


def test_render_cli(live_prometheus, settled, tmp_path, capsys):
    from vigil_exporter.cli import main

    code = main(["dashboards", "render", "--prometheus", live_prometheus.url, "--out",
                 str(tmp_path), "--from", "3m", "--dashboard", "vigil-overview"])
    assert code == 0
    assert (tmp_path / "overview.png").stat().st_size > 100_000
    assert "wrote" in capsys.readouterr().out
