"""Per-command figures: calls, time and errors from INFO commandstats, and latency percentiles
from INFO latencystats (Redis 7). Both are bounded to the commands called most."""
from __future__ import annotations

from vigil_exporter.collectors.families import Sample, Spec
from vigil_exporter.collectors.features import NotAvailable
from vigil_exporter.collectors.redis_stats.source import RedisFeature, RedisSource
from vigil_exporter.validation import Int

COMMAND = ("command",)
LIMIT = Int(30, "Commands reported at most (those with most calls).", minimum=1)


async def top_commands(source: RedisSource, limit: int) -> list[tuple[str, dict]]:
    stats = await source.commandstats()
    return sorted(stats.items(), key=lambda item: (-item[1].get("calls", 0), item[0]))[:limit]


class CommandStats(RedisFeature):
    key = "commandstats"
    help = "calls, time and errors per command (INFO commandstats)"
    fields = {"limit": LIMIT}
    metrics = {
        "vigil_redis_command_calls": Spec("counter", "Calls of a command.", COMMAND),
        "vigil_redis_command_duration_seconds": Spec(
            "counter", "Time the server spent executing a command.", COMMAND),
        "vigil_redis_command_errors": Spec(
            "counter", "Calls of a command that were rejected or failed (Redis 6.2+).",
            COMMAND),
    }

    async def read(self, source: RedisSource) -> list[Sample]:
        samples = []
        for command, entry in await top_commands(source, self.config["limit"]):
            labels = (command,)
            samples += [Sample("vigil_redis_command_calls", entry.get("calls", 0), labels),
                        Sample("vigil_redis_command_duration_seconds",
                               entry.get("usec", 0) / 1e6, labels)]
            if "failed_calls" in entry:
                samples.append(Sample("vigil_redis_command_errors",
                                      entry["failed_calls"] + entry.get("rejected_calls", 0),
                                      labels))
        return samples


class LatencyStats(RedisFeature):
    key = "latencystats"
    help = "latency percentiles per command (INFO latencystats, Redis 7)"
    fields = {"limit": LIMIT}
    metrics = {
        "vigil_redis_command_latency_seconds": Spec(
            "gauge", "Latency percentile of a command since the statistics were reset, "
                     "e.g. percentile=\"99\" (latency-tracking-info-percentiles).",
            ("command", "percentile")),
    }

    async def read(self, source: RedisSource) -> list[Sample]:
        if source.version < (7,):
            raise NotAvailable(f"latency percentiles need Redis 7 (this is "
                               f"{source.info.get('redis_version')})")
        stats = await source.client.info("latencystats")
        if not stats and await _tracking_off(source.client):
            raise NotAvailable("latency tracking is off: CONFIG SET latency-tracking yes")
        samples = []
        for command, _ in await top_commands(source, self.config["limit"]):
            percentiles = stats.get(f"latency_percentiles_usec_{command}")
            if not isinstance(percentiles, dict):
                continue
            for name, usec in percentiles.items():
                samples.append(Sample("vigil_redis_command_latency_seconds", float(usec) / 1e6,
                                      (command, name.removeprefix("p"))))
        return samples


async def _tracking_off(client) -> bool:
    """latency-tracking is "no" (an empty latencystats section says nothing else)."""
    try:
        return (await client.config_get("latency-tracking")).get("latency-tracking") == "no"
    except Exception:  # noqa: BLE001 - CONFIG may be renamed away or denied: we cannot tell
        return False
