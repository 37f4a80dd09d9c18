"""The largest tables of the database: live and dead tuples, size, and when they were last
vacuumed and analysed (manually or by autovacuum).

Tables are ranked by `pg_class.relpages`, the planner's size estimate, which costs nothing to
read; the exact size is asked only for the tables kept."""
from __future__ import annotations

from sqlalchemy import text

from vigil_exporter.collectors.families import Sample, Spec
from vigil_exporter.collectors.postgres.server import PostgresFeature, Server
from vigil_exporter.validation import Int

LARGEST = text(
    "SELECT s.schemaname || '.' || s.relname, s.n_live_tup, s.n_dead_tup, "
    "pg_total_relation_size(s.relid), "
    "coalesce(extract(epoch FROM greatest(s.last_vacuum, s.last_autovacuum)), 0), "
    "coalesce(extract(epoch FROM greatest(s.last_analyze, s.last_autoanalyze)), 0), "
    "s.vacuum_count + s.autovacuum_count, s.analyze_count + s.autoanalyze_count "
    "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
    "ORDER BY c.relpages DESC, 1 LIMIT :limit")

TABLE = ("table",)


class Tables(PostgresFeature):
    key = "tables"
    help = "dead tuples, vacuum and analyze of the largest tables"
    fields = {"limit": Int(20, "Tables exported per database (the largest by the planner's "
                               "estimate, pg_class.relpages).", minimum=1)}
    metrics = {
        "vigil_db_table_live_tuples": Spec("gauge", "Estimated live rows of a large table.",
                                           TABLE),
        "vigil_db_table_dead_tuples": Spec(
            "gauge", "Estimated dead rows of a large table, waiting for vacuum.", TABLE),
        "vigil_db_table_size_bytes": Spec(
            "gauge", "Size of a large table with its indexes and TOAST.", TABLE),
        "vigil_db_table_last_vacuum_timestamp_seconds": Spec(
            "gauge", "Unix time of the last vacuum or autovacuum of a large table (0: never); "
                     "time since = time() - this.", TABLE),
        "vigil_db_table_last_analyze_timestamp_seconds": Spec(
            "gauge", "Unix time of the last analyze or autoanalyze of a large table (0: never).",
            TABLE),
        "vigil_db_table_vacuums": Spec("counter", "Vacuums and autovacuums of a large table.",
                                       TABLE),
        "vigil_db_table_analyzes": Spec("counter", "Analyzes and autoanalyzes of a large "
                                        "table.", TABLE),
    }
    _ORDER = ("vigil_db_table_live_tuples", "vigil_db_table_dead_tuples",
              "vigil_db_table_size_bytes", "vigil_db_table_last_vacuum_timestamp_seconds",
              "vigil_db_table_last_analyze_timestamp_seconds", "vigil_db_table_vacuums",
              "vigil_db_table_analyzes")

    async def read(self, source: Server) -> list[Sample]:
        samples = []
        for table, *values in await source.rows(LARGEST, limit=self.config["limit"]):
            samples += [Sample(name, value, (table,)) for name, value in zip(self._ORDER, values)]
        return samples
