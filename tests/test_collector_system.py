"""The system collector against the machine the tests run on."""
from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import threading
import time

import psutil
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from vigil_exporter.collectors.system import SystemCollector
from vigil_exporter.validation import Errors

FAMILIES = {
    "vigil_system_cpu_usage_ratio", "vigil_system_cpus", "vigil_system_load1",
    "vigil_system_load5", "vigil_system_load15", "vigil_system_memory_total_bytes",
    "vigil_system_memory_available_bytes", "vigil_system_memory_used_bytes",
    "vigil_system_memory_usage_ratio", "vigil_system_swap_total_bytes",
    "vigil_system_swap_used_bytes", "vigil_system_disk_total_bytes",
    "vigil_system_disk_free_bytes", "vigil_system_disk_used_bytes",
    "vigil_system_disk_usage_ratio", "vigil_system_disk_readonly", "vigil_system_disk_read_bytes",
    "vigil_system_disk_written_bytes", "vigil_system_network_receive_bytes",
    "vigil_system_network_transmit_bytes", "vigil_system_processes",
    "vigil_system_boot_time_seconds",
}


def validate(section: dict) -> tuple[dict, list[str]]:
    errors = Errors()
    config = SystemCollector.config_schema.validate(section, "collectors.system", errors)
    return config, [str(f) for f in errors.faults]


@pytest.fixture
async def make():
    made = []

    def build(**section) -> SystemCollector:
        config, faults = validate(section)
        assert faults == []
        made.append(SystemCollector(config))
        return made[-1]
    yield build
    for collector in made:
        await collector.close()


def samples(families) -> dict:
    """{(sample name, label value, ...): value}"""
    return {(s.name, *s.labels.values()): s.value for f in families for s in f.samples}


def labels(families, name: str) -> set[str]:
    return {v for f in families if f.name == name for s in f.samples for v in s.labels.values()}


def exposition(families) -> str:
    registry = CollectorRegistry()
    registry.register(type("Snapshot", (), {"collect": lambda self: families})())
    return generate_latest(registry).decode()


async def test_every_family_present_with_plausible_values(make):
    collector = make()
    await collector.collect()
    sum(i * i for i in range(200_000))  # some CPU time between two rounds
    families = await collector.collect()
    assert {f.name for f in families} == FAMILIES
    values = samples(families)
    for name in ("vigil_system_cpu_usage_ratio", "vigil_system_memory_usage_ratio"):
        assert 0 <= values[(name,)] <= 1
    assert 0 < values[("vigil_system_disk_usage_ratio", "/")] <= 1
    assert values[("vigil_system_disk_readonly", "/")] == float(
        bool(os.statvfs("/").f_flag & os.ST_RDONLY))
    assert values[("vigil_system_cpus",)] == psutil.cpu_count()
    memory = values[("vigil_system_memory_total_bytes",)]
    assert 0 < values[("vigil_system_memory_available_bytes",)] <= memory
    assert values[("vigil_system_memory_used_bytes",)] == pytest.approx(
        memory * values[("vigil_system_memory_usage_ratio",)])
    total = values[("vigil_system_disk_total_bytes", "/")]
    assert 0 < values[("vigil_system_disk_used_bytes", "/")] <= total
    assert values[("vigil_system_processes",)] >= 1
    assert 0 < values[("vigil_system_boot_time_seconds",)] < time.time()
    assert values[("vigil_system_network_receive_bytes_total", "lo")] >= 0
    for family in families:
        assert family.documentation.endswith("Refreshed in the background every 15s.")


async def test_help_names_the_configured_interval(make):
    families = await make(interval="1m").collect()
    assert families[0].documentation.endswith("every 1m.")


async def test_include_exclude_and_caps(make, caplog):
    collector = make(interfaces={"include": ["lo", "eth.*"]}, devices={"include": ["nothing"]})
    families = await collector.collect()
    assert labels(families, "vigil_system_network_receive_bytes") == \
        {n for n in psutil.net_io_counters(pernic=True) if n == "lo" or n.startswith("eth")}
    assert labels(families, "vigil_system_disk_read_bytes") == set()

    collector = make(interfaces={"exclude": ["lo"]})
    assert "lo" not in labels(await collector.collect(), "vigil_system_network_transmit_bytes")

    collector = make(interfaces={"exclude": []}, max_interfaces=1)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            families = await collector.collect()
    assert len(labels(families, "vigil_system_network_receive_bytes")) == 1
    assert [r.getMessage() for r in caplog.records if "max_interfaces" in r.getMessage()] != []
    assert len(caplog.records) == 1  # once, not once per round


async def test_unknown_mountpoint_is_skipped_and_logged_once(make, caplog, tmp_path):
    collector = make(mountpoints=["/", "/no/such/dir", str(tmp_path)])
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            families = await collector.collect()
    assert labels(families, "vigil_system_disk_total_bytes") == {"/"}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "/no/such/dir" in messages[0] and str(tmp_path) in messages[1]


async def test_a_blocked_read_never_stalls_the_loop(make, monkeypatch):
    release = threading.Event()
    real = psutil.disk_usage
    monkeypatch.setattr(psutil, "disk_usage", lambda path: release.wait(10) and real(path))
    collector = make()
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)
    ticker = asyncio.create_task(tick())
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(collector.collect(), 0.3)
        assert ticks >= 10
        with pytest.raises(RuntimeError, match="still blocked"):
            await collector.collect()  # does not queue a second read behind the hung one
        release.set()
        await asyncio.sleep(0.1)
        assert "vigil_system_disk_total_bytes" in {f.name for f in await collector.collect()}
    finally:
        ticker.cancel()
        release.set()


@pytest.mark.parametrize("section, fault", [
    ({"devices": {"include": ["sd[a"]}},
     "collectors.system.devices.include[0]: not a valid regular expression"),
    ({"interfaces": {"exclude": ["(eth"]}},
     "collectors.system.interfaces.exclude[0]: not a valid regular expression"),
    ({"interfaces": {"exclude": "lo"}}, "collectors.system.interfaces.exclude: expected a list"),
    ({"mountpoint": ["/"]},
     'collectors.system.mountpoint: unknown key (did you mean "mountpoints"?)'),
    ({"max_devices": -1}, "collectors.system.max_devices: expected a whole number >= 0"),
    ({"interval": "soon"},
     'collectors.system.interval: expected a duration like "15s", got "soon"'),
])
def test_config_faults_name_the_key(section, fault):
    _, faults = validate(section)
    assert len(faults) == 1 and faults[0].startswith(fault), faults


def test_defaults():
    config, _ = validate({})
    assert (config["interval"], config["timeout"], config["mountpoints"]) == (15, 10, ["/"])
    assert config["max_devices"] == config["max_interfaces"] == 32


async def test_promtool_accepts_the_exposition(make):
    text = exposition(await make().collect())
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                            text=True)
    assert (result.stdout + result.stderr).strip() == ""
