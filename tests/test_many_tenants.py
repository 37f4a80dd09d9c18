"""Thousands of tenants: rendering off the event loop, the loud series cap, bounded tenants."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import logging
import subprocess
import threading
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from sqlalchemy import create_engine, insert, inspect, text

from vigil_exporter import dbschema
from vigil_exporter import exposition as exposition_module
from vigil_exporter.app import WIRING, make_app
from vigil_exporter.collectors import business as business_module
from vigil_exporter.collectors.business import (
    DEFAULT_MAX_SERIES,
    BusinessCollector,
    LabelSets,
    Query,
    default_queries,
    to_family,
)
from vigil_exporter.config import ConfigError, load
from vigil_exporter.exposition import Exposition
from vigil_exporter.health import health_document
from vigil_exporter.scheduler import Scheduler
from vigil_exporter.selfmetrics import SelfCollector


def quiet_config(**overrides):
    """No collector that needs a server: the test adds what it renders."""
    return load(None, environ={}, overrides={
        "collectors.business": {"enabled": False}, "collectors.database": {"enabled": False},
        "collectors.redis": {"enabled": False}, **overrides})


class BlockingCollector:
    """A collector whose collect() holds the render until the test releases it."""

    def __init__(self):
        self.entered, self.release = threading.Event(), threading.Event()
        self.block = False

    def collect(self):
        if self.block:
            self.entered.set()
            self.release.wait(30)
        yield GaugeMetricFamily("vigil_test_slow_render", "Renders slowly.", value=1)


@contextlib.asynccontextmanager
async def app_with_a_slow_collector():
    """A client of an in-process app after its first round, its wiring, and a collector that
    holds a render when told to."""
    app = make_app(quiet_config())
    wiring = app[WIRING]
    slow = BlockingCollector()
    wiring.registry.register(slow)
    try:
        async with TestClient(TestServer(app)) as client:
            await asyncio.wait_for(wiring.scheduler.first_round_done.wait(), 10)
            yield client, wiring, slow
    finally:
        gc.unfreeze()  # the app froze what existed after its first round


async def test_a_render_in_progress_blocks_no_request():
    async with app_with_a_slow_collector() as (client, wiring, slow):
        assert (await client.get("/health/ready")).status == 200  # the first body exists
        first = await (await client.get("/metrics")).read()
        slow.block = True
        render = asyncio.create_task(wiring.exposition.refresh())
        assert await asyncio.to_thread(slow.entered.wait, 10)  # the render is running
        try:
            # Every endpoint answers while the render is held, and /metrics serves the last body.
            live = await client.get("/health/live")
            assert live.status == 200 and (await live.json()) == {"status": "alive"}
            assert (await client.get("/health")).status == 200
            assert await (await client.get("/metrics")).read() == first
            assert not render.done()
        finally:
            slow.release.set()
        await asyncio.wait_for(render, 10)
        assert wiring.exposition.renders >= 2


async def test_readiness_probes_that_retry_during_a_long_render_share_one_render(monkeypatch):
    """A probe that gives up and asks again while jobs keep finishing used to start a render per
    try: with 50,000 tenants they queued behind each other and the exporter never got ready."""
    monkeypatch.setattr(exposition_module, "RENDER_DELAY", 60.0)  # only the probes render
    async with app_with_a_slow_collector() as (client, wiring, slow):
        before = wiring.exposition.renders
        slow.block = True
        probes = []
        for _ in range(3):
            wiring.exposition.mark_dirty()  # a job finished meanwhile
            probes.append(asyncio.create_task(client.get("/health/ready")))
            await asyncio.sleep(0.05)
        assert await asyncio.to_thread(slow.entered.wait, 10)
        slow.release.set()
        assert [r.status for r in await asyncio.gather(*probes)] == [200] * 3
        assert wiring.exposition.renders == before + 1
        assert (await client.get("/health/ready")).status == 200
        assert wiring.exposition.renders == before + 1  # ready stays ready without a render


def test_business_families_sharing_label_sets_render_byte_for_byte():
    """The writer formats a shared label set once per render and a repeated value once per
    family: the bytes must still be prometheus_client's, signed zeros and specials included."""
    specials = [0.0, -0.0, 1.0, 1e22, 123456789.5, float("inf"), float("-inf"), float("nan")]
    label_sets = LabelSets()
    families = []
    for n, name in enumerate(("vigil_test_a", "vigil_test_b_total")):
        query = Query(name, "Rows.", "", "value", ("tenant", "direction"),
                      "counter" if name.endswith("_total") else "gauge", 60, 10, 50_000, "q")
        rows = [(f'tenant-"{i}"\\', direction, specials[(i + n) % len(specials)])
                for i in range(50) for direction in ("in", "out")]
        families.append(to_family(query, ["tenant", "direction", "value"], rows, label_sets)[0])
    assert families[0].labelsets[0] is families[1].labelsets[0]  # shared, formatted once
    registry = CollectorRegistry(auto_describe=False)
    registry.register(type("Rows", (), {"collect": lambda self: families})())
    exposition = Exposition(registry, formats=("text", "openmetrics"))
    exposition.render()
    body = exposition.rendered["text"].body
    assert body == generate_latest(registry)
    assert b"} -0.0\n" in body and b"} NaN\n" in body and b"} 1e+22\n" in body
    assert exposition.rendered["openmetrics"].body == generate_openmetrics(registry)
    assert gzip.decompress(exposition.rendered["text"].gzipped) == body
    # the next round: one query ran again, with a tenant more; the texts of the render before
    # serve the tenants it knew
    query = Query("vigil_test_a", "Rows.", "", "value", ("tenant", "direction"), "gauge", 60, 10,
                  50_000, "q")
    families[0] = to_family(query, ["tenant", "direction", "value"], [
        ("new", "in", 2.0), *((f'tenant-"{i}"\\', "out", 3.0) for i in range(50))],
        label_sets)[0]
    exposition.render()
    assert exposition.rendered["text"].body == generate_latest(registry)
    assert b'vigil_test_a{direction="in",tenant="new"} 2.0\n' in exposition.rendered["text"].body




def test_a_label_set_is_written_once_while_a_family_uses_it_and_then_forgotten(monkeypatch):
    """Renders alternate between families with other label names (as the queries of a round
    finish): a set's text is made when it first appears, not again in a later render; the
    texts of sets no family uses any more are dropped once the cache has doubled."""
    made = []
    original = exposition_module._label_text
    monkeypatch.setattr(exposition_module, "_label_text",
                        lambda labels, orders: made.append(labels) or original(labels, orders))
    label_sets = LabelSets()
    queries = {names: Query("vigil_test_" + "_".join(names), "Rows.", "", "value", names,
                            "gauge", 60, 10, 50_000, "q")
               for names in (("tenant",), ("tenant", "direction"))}

    def run(names: tuple[str, ...], value: float, tenants=range(100), last=None):
        rows = [(f"t{i}", "in", value)[:len(names)] + (value,) for i in tenants]
        return to_family(queries[names], [*names, "value"], rows, label_sets, last)[0]
    families = {names: run(names, 1.0) for names in queries}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(type("Rows", (), {"collect": lambda self: list(families.values())})())
    exposition = Exposition(registry)
    exposition.render()
    assert len(made) == 200  # 100 tenants, 100 (tenant, direction) pairs
    for value in (2.0, 3.0, 4.0):
        for names in queries:  # one family changes per render
            families[names] = run(names, value, last=families[names])
            exposition.render()
            assert exposition.rendered["text"].body == generate_latest(registry)
    assert len(made) == 200
    for start in range(100, 1500, 100):  # tenants come and go: the cache stays bounded
        families[("tenant",)] = run(("tenant",), 1.0, range(start, start + 100))
        exposition.render()
    texts = exposition._label_texts.texts
    assert len(texts) <= 2 * 1024 and {id(labels) for family in families.values()
                                       for labels in family.labelsets} <= texts.keys()
    assert exposition.rendered["text"].body == generate_latest(registry)


def test_a_run_with_other_values_shares_the_series_of_the_run_before():
    query = Query("vigil_test_v", "V.", "", "value", ("tenant",), "gauge", 60, 10, 50_000, "q")
    rows = [(f"t{i}", float(i)) for i in range(10)]
    last = to_family(query, ["tenant", "value"], rows, LabelSets())[0]
    changed = to_family(query, ["tenant", "value"], [(t, v + 1) for t, v in rows],
                        LabelSets(), last)[0]
    assert changed is not last and changed.labelsets is last.labelsets
    assert list(changed.values) == [float(i + 1) for i in range(10)]
    reordered = to_family(query, ["tenant", "value"], rows[::-1], LabelSets(), last)[0]
    assert [labels["tenant"] for labels in reordered.labelsets] == [t for t, _ in rows[::-1]]
    no_labels = Query("vigil_test_n", "N.", "", "value", (), "gauge", 60, 10, 50_000, "q")
    one = to_family(no_labels, ["value"], [(1,)], LabelSets())[0]
    with pytest.raises(ValueError, match="two rows have the same labels"):
        to_family(no_labels, ["value"], [(1,), (2,)], LabelSets(), one)
    assert list(to_family(no_labels, ["value"], [("2.5",)], LabelSets(), one)[0].values) == [2.5]

async def test_a_result_that_did_not_change_keeps_its_family_and_its_text(tmp_path, monkeypatch):
    """With thousands of tenants most per-tenant figures do not move between two runs: the
    family object stays, so the render after the round formats nothing of it again."""
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE usage (tenant TEXT, value REAL)"))
        conn.execute(text("INSERT INTO usage VALUES ('a', 1.5), ('b', 2)"))
    collector = business(url, default_queries=False, queries=[
        {"name": "vigil_test_usage", "help": "Usage.", "labels": ["tenant"],
         "sql": "SELECT tenant, value FROM usage ORDER BY tenant"}])
    scheduler = Scheduler([collector])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(type("Jobs", (), {"collect": lambda self: [
        family for job in scheduler.jobs for family in job.families]})())
    exposition = Exposition(registry)
    formatted = []
    real_format = exposition_module._format
    monkeypatch.setattr(exposition_module, "_format", lambda names, family, texts: (
        formatted.append(family.name) or real_format(names, family, texts)))
    try:
        await scheduler.run_once()
        first = scheduler.jobs[0].families[0]
        exposition.render()
        await scheduler.run_once()  # the same rows
        assert scheduler.jobs[0].families[0] is first
        exposition.render()
        assert formatted == ["vigil_test_usage"]
        with engine.begin() as conn:
            conn.execute(text("UPDATE usage SET value = 3 WHERE tenant = 'b'"))
        await scheduler.run_once()
        assert scheduler.jobs[0].families[0] is not first
        exposition.render()
        body = exposition.rendered["text"].body
        assert body == generate_latest(registry)
        assert b'vigil_test_usage{tenant="b"} 3.0\n' in body
    finally:
        await scheduler.stop()
        engine.dispose()


def test_a_run_keeps_the_last_family_only_for_the_same_rows_bit_for_bit():
    query = Query("vigil_test_v", "V.", "", "value", ("tenant",), "gauge", 60, 10, 50_000, "q")
    label_sets = LabelSets()

    def family(*values, last=None, tenant="t"):
        return to_family(query, ["tenant", "value"],
                         [(f"{tenant}{i}", value) for i, value in enumerate(values)],
                         label_sets, last)[0]
    nan = float("nan")
    last = family(1.0, nan)
    assert family(1.0, nan, last=last) is last  # one NaN, one text
    for changed in (family(0.0, nan, last=last), family(-0.0, last=family(0.0)),  # "-0.0"
                    family(1.0, nan, 2.0, last=last), family(1.0, nan, tenant="u", last=last)):
        assert changed is not None and changed is not last
    assert family(5.0, last=last).labelsets[0] is last.labelsets[0]  # one dict per set


def test_label_sets_stay_while_a_family_uses_them(monkeypatch):
    """Tenants come and go: the index of shared sets is rebuilt from the families in use once
    it has doubled, never per round."""
    monkeypatch.setattr(business_module, "PRUNE_FLOOR", 10)
    query = Query("vigil_test_v", "V.", "", "value", ("tenant",), "gauge", 60, 10, 50_000, "q")
    label_sets = LabelSets()

    def family(tenants):
        return to_family(query, ["tenant", "value"], [(f"t{i}", 1) for i in tenants],
                         label_sets)[0]
    kept = family(range(10))
    assert not label_sets.grown()
    gone = family(range(10, 25))
    assert label_sets.grown() and label_sets.size == 25
    label_sets.prune([(query.labels, kept.labelsets)])
    assert label_sets.size == label_sets.pruned_size == 10 and not label_sets.grown()
    assert family(range(10)).labelsets[3] is kept.labelsets[3]  # in use: shared
    assert family(range(10, 11)).labelsets[0] is not gone.labelsets[0]  # forgotten: made anew


def test_rows_become_series_as_text_without_nulls_and_never_twice():
    query = Query("vigil_test_v", "V.", "", "value", ("tenant", "shard"), "gauge", 60, 10,
                  50_000, "q")
    label_sets = LabelSets()
    family, dropped = to_family(query, ["tenant", "shard", "value"], [
        ("a", 1, 2), ("b", None, None), ("b", None, 3.5)], label_sets)
    assert dropped == 0 and family.labelsets == [{"tenant": "a", "shard": "1"},
                                                 {"tenant": "b", "shard": ""}]
    assert list(family.values) == [2.0, 3.5]
    for _ in range(2):  # a new set, then a known one
        with pytest.raises(ValueError, match="two rows have the same labels"):
            to_family(query, ["tenant", "shard", "value"],
                      [("a", 1, 1), ("c", 2, 1), ("c", 2, 2)], label_sets)


# ------------------------------------------------------------------ the series cap, bounded tenants

TENANTS = 20  # tenant i has i // 2 agents of 10 allowed: shares 0.0 .. 0.9


@pytest.fixture(scope="module")
def tenants_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('tenants') / 'tenants.db'}"
    dbschema.create_schema(url)
    now = datetime(2026, 1, 1)
    limits = {"plan": "pro", "max_agents": 10, "max_channels": 10, "max_messages_per_day": 1000,
              "max_api_calls_per_day": 1000, "max_storage_bytes": 10**9,
              "max_concurrent_connections": 10, "created_at": now}
    engine = create_engine(dbschema.sync_url(url))
    with engine.begin() as conn:
        conn.execute(insert(dbschema.tenants), [
            {"id": i + 1, "name": f"t{i:02d}", **limits} for i in range(TENANTS)])
        conn.execute(insert(dbschema.agents), [
            {"tenant_id": i + 1, "name": f"agent-{j}", "is_active": True, "created_at": now}
            for i in range(TENANTS) for j in range(i // 2)])
    engine.dispose()
    return url


def business(url: str, **section) -> BusinessCollector:
    cfg = load(None, environ={}, overrides={
        "collectors.database.databases": {"main": {"url": url}},
        "collectors.business": section})
    return BusinessCollector(cfg.collector("business"), cfg.business_database())


async def one_round(collector: BusinessCollector, rounds: int = 1) -> Scheduler:
    scheduler = Scheduler([collector])
    try:
        for _ in range(rounds):
            await scheduler.run_once()
    finally:
        await scheduler.stop()
    assert all(job.success for job in scheduler.jobs), {j.name: j.error for j in scheduler.jobs}
    return scheduler


def served(collector: BusinessCollector, scheduler: Scheduler) -> dict[str, Metric]:
    return {family.name: family for family in collector.serve(scheduler.jobs)}


def tenants_of(family: Metric) -> list[str]:
    return sorted({sample.labels["tenant"] for sample in family.samples})


def values(family: Metric) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


async def test_a_query_past_its_cap_is_loud(tenants_url, caplog):
    collector = business(tenants_url, default_queries=False, max_series=5, queries=[
        {"name": "vigil_test_agents", "help": "Agents.", "labels": ["tenant"],
         "sql": "SELECT t.name AS tenant, count(a.id) AS value FROM tenants t "
                "LEFT JOIN agents a ON a.tenant_id = t.id GROUP BY t.name ORDER BY t.name"}])
    with caplog.at_level(logging.INFO, logger="vigil.business"):
        scheduler = await one_round(collector, rounds=2)
    job = scheduler.jobs[0]
    assert (job.series, job.series_limit, job.series_dropped) == (5, 5, TENANTS - 5)
    assert tenants_of(job.families[0]) == ["t00", "t01", "t02", "t03", "t04"]
    # the metric the VigilBusinessQuerySeriesCapped alert reads
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SelfCollector(scheduler, Exposition(registry)))
    text = generate_latest(registry).decode()
    assert 'vigil_business_query_series_dropped{query="vigil_test_agents"} 15.0' in text
    assert 'vigil_business_query_series_limit{query="vigil_test_agents"} 5.0' in text
    assert 'vigil_business_query_series{query="vigil_test_agents"} 5.0' in text
    # /health: a warning on that query, and the exporter as a whole degraded
    document = health_document(scheduler, [])
    check = next(c for c in document["checks"] if c["name"] == "query:vigil_test_agents")
    assert check["status"] == "degraded" and "15 rows beyond max_series (5)" in check["message"]
    assert document["status"] == "degraded"
    # one log line for two capped runs
    lines = [r.getMessage() for r in caplog.records if "max_series" in r.getMessage()]
    assert len(lines) == 1 and "20 rows, more than its max_series of 5" in lines[0]


async def test_the_default_cap_fits_ten_thousand_tenants_in_two_directions(tenants_url):
    collector = business(tenants_url)
    scheduler = await one_round(collector)
    assert {job.series_limit for job in scheduler.jobs} == {20_000}
    assert all(job.series_dropped == 0 for job in scheduler.jobs)
    document = health_document(scheduler, [])
    assert all(c["status"] == "ok" for c in document["checks"])


async def test_bounded_tenants_exports_exactly_the_tenants_above_the_share(tenants_url):
    collector = business(tenants_url, bounded_tenants={
        "enabled": True, "min_limit_share": 0.8, "top": 0})
    families = served(collector, await one_round(collector))
    above = ["t16", "t17", "t18", "t19"]  # 8 or 9 agents of 10
    for name in ("vigil_tenant_agents", "vigil_tenant_agents_limit", "vigil_tenant_storage_bytes",
                 "vigil_tenant_messages_today", "vigil_tenant_messages"):  # counters too
        assert tenants_of(families[name]) == above, name
    assert len(families["vigil_tenant_messages_today"].samples) == 8  # both directions
    # families without the tenant label are untouched
    assert values(families["vigil_business_users"]) == {(): 0.0}
    assert values(families["vigil_business_tenants"]) == {
        (("state", "exported"),): 4, (("state", "omitted"),): TENANTS - 4}
    omitted = values(families["vigil_business_omitted_series"])
    assert omitted[(("query", "vigil_tenant_agents"),)] == TENANTS - 4
    assert omitted[(("query", "vigil_tenant_messages_today"),)] == 2 * (TENANTS - 4)
    omitted_sum = values(families["vigil_business_omitted_value"])
    assert omitted_sum[(("query", "vigil_tenant_agents"),)] == sum(i // 2 for i in range(16))
    assert omitted_sum[(("query", "vigil_tenant_agents_limit"),)] == 10 * 16
    # the exporter's own rendering of what it serves passes promtool (the sum was named
    # vigil_business_omitted_value_sum: a gauge with a histogram's suffix)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(type("Served", (), {"collect": lambda self: list(families.values())})())
    exposition = Exposition(registry)
    exposition.render()
    check = subprocess.run(["promtool", "check", "metrics"], input=exposition.rendered[
        "text"].body, capture_output=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


async def test_bounded_tenants_top_n_adds_the_highest_shares_below_it(tenants_url):
    collector = business(tenants_url, bounded_tenants={
        "enabled": True, "min_limit_share": 0.95, "top": 5,
        "limits": [{"usage": "vigil_tenant_agents", "limit": "vigil_tenant_agents_limit"}]})
    scheduler = await one_round(collector)
    families = served(collector, scheduler)
    # shares 0.9, 0.9, 0.8, 0.8, 0.7 (t14 and t15 tie at 0.7: the name decides)
    assert tenants_of(families["vigil_tenant_agents"]) == ["t14", "t16", "t17", "t18", "t19"]
    again = served(collector, scheduler)  # nothing changed: the same filtered objects
    assert again["vigil_tenant_agents"] is families["vigil_tenant_agents"]


@pytest.mark.parametrize(("concurrency", "url", "expected"), [
    (None, None, 1), (3, None, 3), (None, "postgresql://vigil@127.0.0.1:1/x", 4)])
async def test_queries_on_sqlite_run_one_at_a_time_unless_told(tenants_url, monkeypatch,
                                                               concurrency, url, expected):
    """SQLite's queries run in threads of the exporter: run together they only queue for its
    GIL and hold the event loop up longer; a database server runs them on its own CPUs."""
    running, most = [0], [0]

    async def counted(engine, query):
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(0.02)
        running[0] -= 1
        return [*query.labels, query.value], [("x",) * len(query.labels) + (1,)]
    monkeypatch.setattr(business_module, "run_query", counted)
    section = {"concurrency": concurrency} if concurrency else {}
    await one_round(business(url or tenants_url, **section))
    assert most[0] == expected

async def test_a_round_prunes_the_sets_no_query_uses_any_more(tenants_url, monkeypatch):
    monkeypatch.setattr(business_module, "PRUNE_FLOOR", 1)
    collector = business(tenants_url)
    collector.label_sets.get_all(("tenant",), [("gone-1",), ("gone-2",)])
    scheduler = await one_round(collector)
    in_use = {(tuple(labels), tuple(labels.values())) for family in served(collector, scheduler)
              .values() if hasattr(family, "labelsets") for labels in family.labelsets}
    indexed = {(names, key) for names, sets in collector.label_sets.index.items()
               for key in sets}
    assert indexed == in_use and (("tenant",), ("gone-1",)) not in indexed

def test_bounded_tenants_must_name_existing_queries():
    with pytest.raises(ConfigError) as fault:
        load(None, environ={}, overrides={"collectors.business.bounded_tenants": {
            "enabled": True, "limits": [{"usage": "vigil_tenant_agent", "limit": "x"}]}})
    assert "collectors.business.bounded_tenants.limits[0].usage" in str(fault.value)


def test_create_schema_adds_the_indexes_an_older_schema_lacks(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    dbschema.create_schema(url)
    engine = create_engine(dbschema.sync_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_messages_tenant_direction"))
    assert dbschema.create_schema(url) == []  # no table to create ...
    with engine.connect() as conn:  # ... but the index is back
        assert "ix_messages_tenant_direction" in {
            index["name"] for index in inspect(conn).get_indexes("messages")}
    engine.dispose()


def test_a_large_result_adds_no_object_the_garbage_collector_walks():
    """Full collections hold the GIL while they walk every tracked object: 180,000 samples
    (10,000 tenants) made each of them take hundreds of milliseconds. A business family keeps
    shared label dicts of strings and an array of floats, none of them tracked."""
    query = Query("vigil_test_rows", "Rows.", "", "value", ("tenant", "direction"), "counter",
                  60, 10, 50_000, "queries[0]")
    rows = [(f"tenant-{i}", direction, i) for i in range(10_000) for direction in ("in", "out")]
    gc.collect()
    before = len(gc.get_objects())
    family, dropped = to_family(query, ["tenant", "direction", "value"], rows, LabelSets())
    del rows
    gc.collect()
    assert dropped == 0 and len(family) == 20_000
    assert len(gc.get_objects()) - before < 100  # the family and its lists, not one per row
    assert not any(gc.is_tracked(labels) for labels in family.labelsets)
    first = family.samples[0]  # made on demand, as prometheus_client's would be
    assert (first.name, first.labels, first.value) == (
        "vigil_test_rows_total", {"tenant": "tenant-0", "direction": "in"}, 0.0)


def test_the_vigil_jobs_sample_limit_sits_above_what_the_default_caps_let_through():
    """A scrape above sample_limit is refused whole (system metrics too): the limit must only
    catch a runaway, never the series the exporter's own caps let through."""
    root = Path(__file__).resolve().parent.parent
    per_tenant = [q for q in default_queries() if "tenant" in q["labels"]]
    most = len(per_tenant) * DEFAULT_MAX_SERIES + 1_000  # plus the exporter's own metrics
    for path in [root / "prometheus" / "prometheus.yml",
                 *sorted((root / "deploy" / "prometheus").glob("*.yml"))]:
        jobs = {job["job_name"]: job for job in yaml.safe_load(path.read_text())["scrape_configs"]}
        limit = jobs["vigil"]["sample_limit"]
        assert most < limit, path
    assert f"sample_limit: {limit}" in (root / "docs" / "tenants.md").read_text()
