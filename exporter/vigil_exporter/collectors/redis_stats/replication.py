"""Replication from INFO (no extra command): on a primary, each replica's state and how far
its acknowledged offset lags; on a replica, its link to the primary."""
from __future__ import annotations

import re

from vigil_exporter.collectors.families import Sample, Spec
from vigil_exporter.collectors.redis_stats.source import RedisFeature, RedisSource
from vigil_exporter.validation import Int

_REPLICA_FIELD = re.compile(r"slave\d+")


class Replication(RedisFeature):
    key = "replication"
    help = "replication: role, replicas, link and offset lag"
    fields = {"max_replicas": Int(10, "Replicas reported by a primary at most.", minimum=1)}
    metrics = {
        "vigil_redis_connected_replicas": Spec("gauge", "Replicas connected to this server."),
        "vigil_redis_replication_offset_bytes": Spec(
            "gauge", "Replication offset: master_repl_offset on a primary, the offset "
                     "processed so far on a replica."),
        "vigil_redis_replica_lag_bytes": Spec(
            "gauge", "On a primary: how far a replica's acknowledged offset is behind.",
            ("replica",)),
        "vigil_redis_replica_lag_seconds": Spec(
            "gauge", "On a primary: seconds since a replica's last acknowledgement.",
            ("replica",)),
        "vigil_redis_replica_online": Spec(
            "gauge", "On a primary: 1 when a replica's state is online (synced).",
            ("replica",)),
        "vigil_redis_master_link_up": Spec(
            "gauge", "On a replica: 1 while its link to the primary is up."),
        "vigil_redis_master_last_io_seconds": Spec(
            "gauge", "On a replica: seconds since the last interaction with the primary."),
        "vigil_redis_master_sync_in_progress": Spec(
            "gauge", "On a replica: 1 while a full synchronisation with the primary runs."),
    }

    async def read(self, source: RedisSource) -> list[Sample]:
        info = source.info
        samples = [Sample("vigil_redis_connected_replicas", info.get("connected_slaves", 0))]
        if info.get("role") == "slave":
            link_up = info.get("master_link_status") == "up"
            samples += [
                Sample("vigil_redis_replication_offset_bytes", info.get("slave_repl_offset")),
                Sample("vigil_redis_master_link_up", int(link_up)),
                Sample("vigil_redis_master_sync_in_progress",
                       info.get("master_sync_in_progress", 0)),
            ]
            if link_up:  # -1 while the link is down
                samples.append(Sample("vigil_redis_master_last_io_seconds",
                                      info.get("master_last_io_seconds_ago")))
            return samples
        head = info.get("master_repl_offset", 0)
        samples.append(Sample("vigil_redis_replication_offset_bytes", head))
        replicas = [entry for name, entry in sorted(info.items())
                    if _REPLICA_FIELD.fullmatch(name) and isinstance(entry, dict)]
        for entry in replicas[:self.config["max_replicas"]]:
            replica = (f"{entry.get('ip')}:{entry.get('port')}",)
            samples += [
                Sample("vigil_redis_replica_lag_bytes", max(0, head - int(entry["offset"])),
                       replica),
                Sample("vigil_redis_replica_lag_seconds", entry.get("lag"), replica),
                Sample("vigil_redis_replica_online", int(entry.get("state") == "online"),
                       replica),
            ]
        return samples
