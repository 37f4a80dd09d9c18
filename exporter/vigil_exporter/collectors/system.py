"""System collector: CPU, load, memory, swap, disk space and I/O, network, processes (psutil).

psutil reads /proc and calls statvfs, which block. A round therefore runs on a thread of the
collector's own, so the event loop never waits on it, and a round stuck on a hung mount point
is reported as a failure instead of piling up threads behind it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from vigil_exporter.collectors.base import Collector, collector_schema, refreshed_every
from vigil_exporter.logs import FailureLog, describe_error
from vigil_exporter.validation import Int, List, Object, Regex, Str

log = logging.getLogger("vigil.collectors.system")

# node_exporter's default: loop, RAM and floppy devices, and partitions (their disk counts them).
DEVICE_EXCLUDE = r"(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+"
# Per-container virtual ends come and go with every container.
INTERFACE_EXCLUDE = r"veth.*"


def _patterns(what: str, exclude: list[str]) -> Object:
    return Object({
        "include": List(Regex(), [], f"Export only the {what} whose name fully matches one of "
                                     "these regular expressions (empty: all)."),
        "exclude": List(Regex(), exclude, f"Skip the {what} whose name fully matches one of "
                                          "these regular expressions."),
    }, {}, f"Which {what} have I/O counters exported.")


class Selector:
    """The names kept by include/exclude patterns (fully matched), sorted and capped."""

    def __init__(self, patterns: dict, limit: int, what: str, failures: FailureLog):
        self.include = [re.compile(p) for p in patterns["include"]]
        self.exclude = [re.compile(p) for p in patterns["exclude"]]
        self.limit, self.what, self.failures = limit, what, failures

    def __call__(self, names) -> list[str]:
        keep = sorted(n for n in names
                      if (not self.include or any(p.fullmatch(n) for p in self.include))
                      and not any(p.fullmatch(n) for p in self.exclude))
        if len(keep) > self.limit:
            self.failures.failed(f"system {self.what}", f"{len(keep)} match the patterns, only "
                                 f"the first {self.limit} are exported (max_{self.what})")
        else:
            self.failures.recovered(f"system {self.what}")
        return keep[:self.limit]


def _cpu_split(times) -> tuple[float, float]:
    """(total, idle) CPU seconds; guest time is already counted in user time on Linux."""
    total = sum(times) - getattr(times, "guest", 0) - getattr(times, "guest_nice", 0)
    return total, times.idle + getattr(times, "iowait", 0)


class SystemCollector(Collector):
    name = "system"
    config_schema = collector_schema("15s", "10s", {
        "mountpoints": List(Str(), ["/"], "Mount points whose disk space is exported."),
        "devices": _patterns("block devices", [DEVICE_EXCLUDE]),
        "interfaces": _patterns("network interfaces", [INTERFACE_EXCLUDE]),
        "max_devices": Int(32, "Most block devices exported; the rest are skipped.", minimum=0),
        "max_interfaces": Int(32, "Most network interfaces exported; the rest are skipped.",
                              minimum=0),
    })

    def __init__(self, config: dict):
        super().__init__(config)
        self.every = refreshed_every(config['interval'])
        self.failures = FailureLog(log)
        self.devices = Selector(config["devices"], config["max_devices"], "devices",
                                self.failures)
        self.interfaces = Selector(config["interfaces"], config["max_interfaces"], "interfaces",
                                   self.failures)
        self._cpu, self._cpu_ratio = _cpu_split(psutil.cpu_times()), 0.0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="vigil-system")
        self._reading: asyncio.Future | None = None

    async def collect(self) -> list[Metric]:
        if self._reading is not None and not self._reading.done():
            raise RuntimeError("the previous read is still blocked (a hung mount point?)")
        self._reading = asyncio.get_running_loop().run_in_executor(self._executor, self._read)
        return await asyncio.shield(self._reading)  # a timeout abandons the read, not the thread

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _gauge(self, name: str, text: str, value=None, labels=None) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"vigil_system_{name}", text + self.every, value, labels)

    def _counter(self, name: str, text: str, label: str) -> CounterMetricFamily:
        return CounterMetricFamily(f"vigil_system_{name}", text + self.every, labels=[label])

    def _read(self) -> list[Metric]:
        memory, swap, load = psutil.virtual_memory(), psutil.swap_memory(), psutil.getloadavg()
        used = memory.total - memory.available
        gauge = self._gauge
        return [
            gauge("cpu_usage_ratio", "Share of CPU time spent busy (not idle or waiting for "
                  "I/O) since the previous refresh, 0 to 1.", self._cpu_usage()),
            gauge("cpus", "Logical CPUs.", psutil.cpu_count()),
            gauge("load1", "Load average over 1 minute.", load[0]),
            gauge("load5", "Load average over 5 minutes.", load[1]),
            gauge("load15", "Load average over 15 minutes.", load[2]),
            gauge("memory_total_bytes", "Physical memory.", memory.total),
            gauge("memory_available_bytes", "Memory available to programs without swapping.",
                  memory.available),
            gauge("memory_used_bytes", "Memory in use: total minus available.", used),
            gauge("memory_usage_ratio", "Memory in use as a share of the total: "
                  "(total - available) / total.", used / memory.total),
            gauge("swap_total_bytes", "Swap space.", swap.total),
            gauge("swap_used_bytes", "Swap space in use.", swap.used),
            *self._disk_space(),
            *self._io(),
            gauge("processes", "Processes running on the host.", len(psutil.pids())),
            gauge("boot_time_seconds", "Unix time when the host booted.", psutil.boot_time()),
        ]

    def _cpu_usage(self) -> float:
        (total, idle), (total0, idle0) = _cpu_split(psutil.cpu_times()), self._cpu
        if total > total0:  # else no tick since the last round: keep the last value
            self._cpu_ratio = min(1.0, max(0.0, 1 - (idle - idle0) / (total - total0)))
            self._cpu = total, idle
        return self._cpu_ratio

    def _disk_space(self) -> list[Metric]:
        label = ["mountpoint"]
        total = self._gauge("disk_total_bytes", "Size of the file system.", labels=label)
        free = self._gauge("disk_free_bytes", "Space available to unprivileged users.",
                           labels=label)
        used = self._gauge("disk_used_bytes", "Space in use.", labels=label)
        ratio = self._gauge("disk_usage_ratio", "Space in use as a share of the space usable "
                            "by unprivileged users: used / (used + free), as df shows it.",
                            labels=label)
        readonly = self._gauge("disk_readonly", "1 if the file system is mounted read-only, "
                               "else 0.", labels=label)
        for path in self.config["mountpoints"]:
            usage = self._disk_usage(path)
            if usage is None:
                continue
            total.add_metric([path], usage.total)
            free.add_metric([path], usage.free)
            used.add_metric([path], usage.used)
            usable = usage.used + usage.free
            ratio.add_metric([path], usage.used / usable if usable else 0.0)
            readonly.add_metric([path], float(_read_only(path)))
        return [total, free, used, ratio, readonly]

    def _disk_usage(self, path: str):
        """psutil's usage of a mount point, or None (logged once) when it is not mounted."""
        key = f"mountpoint {path}"
        try:
            if not os.path.ismount(path):
                self.failures.failed(key, "not mounted (or no such directory)")
                return None
            usage = psutil.disk_usage(path)
        except OSError as exc:
            self.failures.failed(key, describe_error(exc))
            return None
        self.failures.recovered(key)
        return usage

    def _io(self) -> list[Metric]:
        disks = psutil.disk_io_counters(perdisk=True) or {}
        nics = psutil.net_io_counters(pernic=True) or {}
        return [
            *self._io_pair(disks, self.devices(disks), "device", "disk", "block device",
                           (("read", "read_bytes"), ("written", "write_bytes"))),
            *self._io_pair(nics, self.interfaces(nics), "interface", "network", "network interface",
                           (("receive", "bytes_recv"), ("transmit", "bytes_sent"))),
        ]

    def _io_pair(self, stats: dict, names, label: str, area: str, what: str,
                 directions) -> list[Metric]:
        """`vigil_system_<area>_<direction>_bytes_total` per device or interface."""
        verbs = {"read": "read from", "written": "written to", "receive": "received by",
                 "transmit": "sent by"}
        families = []
        for direction, field in directions:
            family = self._counter(f"{area}_{direction}_bytes", f"Bytes {verbs[direction]} the "
                                   f"{what}.", label)
            for name in names:
                family.add_metric([name], getattr(stats[name], field))
            families.append(family)
        return families


def _read_only(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
