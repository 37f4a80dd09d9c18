"""PostgreSQL beyond up and connections: one module per feature, all read through one
connection per round with what the server and the exporter's role can do (`Server`).

| feature (config key) | module | needs |
|---|---|---|
| `statements` | top statements by total time | the pg_stat_statements extension, pg_monitor |
| `replication` | replicas, replay, slots | pg_monitor |
| `activity` | locks, lock waits, oldest transactions | pg_monitor |
| `tables` | the largest tables' tuples, vacuum and analyze | nothing |
| `io` | buffer cache, temporary files, checkpoints, WAL | nothing |

A feature whose needs are not met reports "not available" in /health and nothing else
(`collectors.features`).
"""
from __future__ import annotations

from vigil_exporter.collectors.features import all_metrics
from vigil_exporter.collectors.postgres.activity import Activity
from vigil_exporter.collectors.postgres.io import Io
from vigil_exporter.collectors.postgres.replication import Replication
from vigil_exporter.collectors.postgres.server import PostgresFeature, Server, server
from vigil_exporter.collectors.postgres.statements import Statements
from vigil_exporter.collectors.postgres.tables import Tables
from vigil_exporter.validation import Object

FEATURES: list[type[PostgresFeature]] = [Statements, Replication, Activity, Tables, Io]
METRICS = all_metrics(FEATURES)
SCHEMA = Object({cls.key: cls.schema() for cls in FEATURES},
                help="PostgreSQL only: the features beyond up and connections, each with "
                     "`enabled` (docs/postgres-redis.md).")

__all__ = ["FEATURES", "METRICS", "SCHEMA", "Server", "server"]
