"""The slowlog: its length, and how many entries were ever added (the id of the newest entry
plus one, a counter that increase() reads even after SLOWLOG RESET or when the log is full
and old entries fall out)."""
from __future__ import annotations

from vigil_exporter.collectors.families import Sample, Spec
from vigil_exporter.collectors.redis_stats.source import RedisFeature, RedisSource


class Slowlog(RedisFeature):
    key = "slowlog"
    help = "the slowlog's length and new entries"
    metrics = {
        "vigil_redis_slowlog_length": Spec("gauge", "Entries in the slowlog now."),
        "vigil_redis_slowlog_entries": Spec(
            "counter", "Entries added to the slowlog since the server started (commands "
                       "slower than slowlog-log-slower-than)."),
        "vigil_redis_slowlog_last_duration_seconds": Spec(
            "gauge", "Execution time of the newest slowlog entry (0: the log is empty)."),
    }

    def __init__(self, config: dict):
        super().__init__(config)
        self.entries: tuple[str, int] = ("", 0)  # (run_id, entries) last seen

    async def read(self, source: RedisSource) -> list[Sample]:
        async with source.client.pipeline(transaction=False) as pipe:
            pipe.slowlog_len()
            pipe.slowlog_get(1)
            length, newest = await pipe.execute()
        run_id = str(source.info.get("run_id", ""))
        if newest:
            self.entries = (run_id, int(newest[0]["id"]) + 1)
        elif self.entries[0] != run_id:  # a new server with an empty log
            self.entries = (run_id, 0)
        return [Sample("vigil_redis_slowlog_length", length),
                Sample("vigil_redis_slowlog_entries", self.entries[1]),
                Sample("vigil_redis_slowlog_last_duration_seconds",
                       newest[0]["duration"] / 1e6 if newest else 0)]
