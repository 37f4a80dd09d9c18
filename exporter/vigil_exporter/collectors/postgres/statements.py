"""Top statements by total execution time, from pg_stat_statements.

Ranking reads `pg_stat_statements(false)`, which leaves the query texts on disk; texts are read
only for a statement that enters the top list (and kept while it stays), because reading the
text file is what makes pg_stat_statements expensive on a busy server.
"""
from __future__ import annotations

import re

from sqlalchemy import bindparam, text

from vigil_exporter.collectors.families import Sample, Spec
from vigil_exporter.collectors.features import NotAvailable
from vigil_exporter.collectors.postgres.server import PostgresFeature, Server
from vigil_exporter.validation import Int

TOP = text(
    "SELECT queryid, sum(calls), sum(total_exec_time) / 1000, sum(rows), "
    "sum(shared_blks_hit), sum(shared_blks_read) FROM pg_stat_statements(false) "
    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND queryid IS NOT NULL GROUP BY queryid ORDER BY 3 DESC, 1 LIMIT :limit")
TEXTS = text(
    "SELECT DISTINCT ON (queryid) queryid, left(query, 2000) FROM pg_stat_statements(true) "
    "WHERE queryid IN :ids "
    "AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
).bindparams(bindparam("ids", expanding=True))

# The counters TOP reads per statement, in the order of its columns after queryid.
COUNTERS = (
    ("vigil_db_statement_calls", "Calls of a top statement (pg_stat_statements, by queryid)."),
    ("vigil_db_statement_time_seconds", "Total execution time of a top statement."),
    ("vigil_db_statement_rows", "Rows returned or affected by a top statement."),
    ("vigil_db_statement_shared_blocks_hit", "Shared buffer hits of a top statement."),
    ("vigil_db_statement_shared_blocks_read",
     "Shared blocks a top statement read from disk or the OS cache."),
)
_SPACE = re.compile(r"\s+")


def short_text(query: str, length: int) -> str:
    """One line of at most `length` characters ("..." marks a cut)."""
    line = _SPACE.sub(" ", query).strip()
    return line if len(line) <= length else line[:length - 3].rstrip() + "..."


class Statements(PostgresFeature):
    key = "statements"
    help = "the top statements of pg_stat_statements by total execution time"
    fields = {
        "limit": Int(20, "Statements exported per database (the ones with most total time).",
                     minimum=1),
        "query_length": Int(120, "Characters of normalised query text in "
                                 "vigil_db_statement_info.", minimum=16),
    }
    metrics = {
        **{name: Spec("counter", help, ("queryid",)) for name, help in COUNTERS},
        "vigil_db_statement_mean_time_seconds": Spec(
            "gauge", "Mean execution time of a top statement since its statistics began.",
            ("queryid",)),
        "vigil_db_statement_info": Spec("gauge", "Normalised text of a top statement; "
                                        "always 1.", ("queryid", "query")),
    }

    def __init__(self, config: dict):
        super().__init__(config)
        self.texts: dict[int, str] = {}

    async def read(self, source: Server) -> list[Sample]:
        if "pg_stat_statements" not in source.extensions:
            raise NotAvailable(
                f'the pg_stat_statements extension is not installed in database '
                f'"{source.database}": CREATE EXTENSION pg_stat_statements (the server needs '
                f"shared_preload_libraries = 'pg_stat_statements')")
        if source.version < 130000:
            raise NotAvailable("top statements need PostgreSQL 13 or later")
        source.require_monitor("the statements")
        top = await source.rows(TOP, limit=self.config["limit"])
        await self._learn_texts(source, [row[0] for row in top])
        samples = []
        for queryid, *sums in top:
            qid = str(queryid)
            counts = [float(x) for x in sums]  # sums are numeric
            samples += [Sample(name, value, (qid,)) for (name, _), value in zip(COUNTERS, counts)]
            calls, seconds = counts[:2]
            samples += [
                Sample("vigil_db_statement_mean_time_seconds", seconds / calls if calls else 0,
                       (qid,)),
                Sample("vigil_db_statement_info", 1, (qid, self.texts.get(queryid, ""))),
            ]
        return samples

    async def _learn_texts(self, source: Server, ids: list[int]) -> None:
        """Texts of the statements new in the top list; forget those that left it."""
        self.texts = {qid: self.texts[qid] for qid in ids if qid in self.texts}
        new = [qid for qid in ids if qid not in self.texts]
        if new:
            for qid, query in await source.rows(TEXTS, ids=new):
                self.texts[qid] = short_text(query or "", self.config["query_length"])
