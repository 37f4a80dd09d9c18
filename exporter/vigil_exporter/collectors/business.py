"""Business collector: SQL queries from the configuration, each one a metric family.

Every query is a job of its own (`jobs()`), so the scheduler runs it on its own interval and
timeout, and a slow or failing query never holds up the others. All queries of the collector
share one engine whose pool can hand every query a connection at the same time (a few are
kept open, the rest are opened for a run and closed after it).

Queries are read-only: on PostgreSQL every transaction is read-only and has a
`statement_timeout` of the query's timeout; SQLite files are opened read-only; and nothing is
ever committed. A run that is cancelled (its timeout) stops the statement in the database
before it returns: a cancel request on PostgreSQL, `sqlite3_interrupt` on SQLite.

Bind parameters every query may use: `:now` and `:today_start` (the last UTC midnight), both
timezone-naive UTC like the default schema (vigil_exporter/dbschema.py).
"""
from __future__ import annotations

import asyncio
import functools
import logging
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path

import yaml
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vigil_exporter.collectors.base import (
    MIN_INTERVAL,
    Collector,
    Job,
    collector_schema,
    refreshed_every,
)
from vigil_exporter.collectors.sqlutil import (
    count_statements,
    dialect_name,
    dispose,
    make_engine,
)
from vigil_exporter.collectors.tenants import SCHEMA as BOUNDED_TENANTS
from vigil_exporter.collectors.tenants import BoundedTenants, check_limits
from vigil_exporter.logs import describe_error
from vigil_exporter.validation import (
    Bool,
    Duration,
    Errors,
    Int,
    List,
    Object,
    Str,
    format_duration,
)
from vigil_exporter.worker import off_loop

log = logging.getLogger("vigil.business")

DEFAULT_QUERIES = Path(__file__).resolve().parent.parent / "business_queries.yml"
APPLICATION = "vigil-business"  # PostgreSQL application_name; a run sets "vigil-business:<query>"
# Rows one query may return by default: 10,000 tenants in a family with two series per tenant
# (docs/tenants.md has the arithmetic, and what to do beyond it).
DEFAULT_MAX_SERIES = 20_000
KEEP_CONNECTIONS = 2  # connections kept open between runs; more are opened when queries overlap
CANCEL_GRACE = 2.0  # seconds a cancelled statement may take to stop in the database
DEFAULT_CONNECT_TIMEOUT = 3.0
SQLITE_TIMESTAMP = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime in SQLite

PG_SETTINGS = text(
    "SELECT set_config('transaction_read_only', 'on', true), "
    "set_config('statement_timeout', :timeout, true), "
    "set_config('application_name', :application, true)")


# Name prefixes of the families the exporter serves itself (tests/test_hardening_inputs.py reads
# docs/metrics.md to keep this complete). A query named like one of them would be served next
# to it, and Prometheus would store whichever sample it read last.
BUILT_IN_PREFIXES = ("process_", "python_", "vigil_db_", "vigil_redis_", "vigil_system_",
                     "vigil_collector_", "vigil_business_query_", "vigil_business_omitted_",
                     "vigil_business_tenants", "vigil_exposition_", "vigil_alert_notifications",
                     "vigil_build_info", "vigil_start_time_seconds")


def _check_query(query: dict, path: str, errors: Errors) -> None:
    name, labels = query["name"], query["labels"]
    built_in = next((p for p in BUILT_IN_PREFIXES if name.startswith(p)), None)
    if built_in:
        errors.add(f"{path}.name", f'"{name}" is named like a family the exporter serves itself '
                                   f'(names starting with "{built_in}"); choose another name')
    statements = count_statements(query["sql"])
    if statements != 1:
        errors.add(f"{path}.sql", f"expected one SQL statement, got {statements} (a query may "
                                  "not end its read-only transaction or start another)")
    if query["type"] == "gauge" and name.endswith("_total"):
        errors.add(f"{path}.name", f'a gauge must not end in _total, got "{name}" '
                                   "(set type: counter, or rename it)")
    if query["value"] in labels:
        errors.add(f"{path}.labels", f'the value column "{query["value"]}" cannot be a label too')
    for i, label in enumerate(labels):
        if label in labels[:i]:
            errors.add(f"{path}.labels[{i}]", f'"{label}" is already a label')


QUERY = Object({
    "name": Str(help="Metric name of the family (a counter's may end in _total).",
                pattern=r"[a-zA-Z_:][a-zA-Z0-9_:]*"),
    "help": Str(help="HELP text of the family."),
    "sql": Str(help="SELECT statement; may use the bind parameters :now and :today_start."),
    "value": Str("value", "Column holding the sample value (NULL: the row is skipped)."),
    "labels": List(Str(pattern=r"(?!__)[a-zA-Z_][a-zA-Z0-9_]*"), list,
                   "Columns that become labels of the same name (NULL: empty value)."),
    "type": Str("gauge", "Metric type.", choices=("gauge", "counter")),
    "interval": Duration(None, "How often the query runs (default: the collector's interval).",
                         minimum=MIN_INTERVAL),
    "timeout": Duration(None, "How long one run may take (default: the collector's timeout)."),
    "max_series": Int(None, "Rows kept at most (default: the collector's max_series).",
                      minimum=1),
}, check=_check_query)


def _check_section(section: dict, path: str, errors: Errors) -> None:
    """Two queries must not produce the same family (a counter's name without _total), and
    bounded_tenants names queries that exist."""
    first: dict[str, int] = {}
    for i, query in enumerate(section["queries"]):
        family = query["name"].removesuffix("_total")
        if family in first:
            errors.add(f"{path}.queries[{i}].name", f'"{query["name"]}" is already the family '
                                                    f"of queries[{first[family]}]")
        first.setdefault(family, i)
    names = {q["name"] for q in section["queries"]}
    if section["default_queries"]:
        defaults = {q["name"].removesuffix("_total"): q["name"] for q in default_queries()}
        for i, query in enumerate(section["queries"]):
            default = defaults.get(query["name"].removesuffix("_total"))
            if default is not None and default != query["name"]:
                errors.add(f"{path}.queries[{i}].name", f'"{query["name"]}" is the family of the '
                           f'default query "{default}" (name it "{default}" to replace it, or '
                           "set default_queries: false)")
        names.update(q["name"] for q in default_queries())
    check_limits(section["bounded_tenants"], names, f"{path}.bounded_tenants", errors)


@dataclass(frozen=True)
class Query:
    """One configured query with the collector's defaults filled in."""

    name: str
    help: str
    sql: str
    value: str
    labels: tuple[str, ...]
    type: str
    interval: float
    timeout: float
    max_series: int
    path: str  # configuration key path, for faults

    @classmethod
    def from_config(cls, query: dict, section: dict, path: str) -> Query:
        return cls(query["name"], query["help"], query["sql"], query["value"],
                   tuple(query["labels"]), query["type"],
                   query["interval"] or section["interval"], query["timeout"] or section["timeout"],
                   query["max_series"] or section["max_series"], path)

    @property
    def help_text(self) -> str:
        sentence = self.help.rstrip()
        sentence += "" if sentence.endswith((".", "!", "?")) else "."
        return sentence + refreshed_every(self.interval)


@functools.cache
def default_queries() -> tuple[dict, ...]:
    """The packaged default queries, validated like the configured ones."""
    raw = yaml.safe_load(DEFAULT_QUERIES.read_text(encoding="utf-8"))
    errors = Errors()
    queries = List(QUERY).validate(raw["queries"], "queries", errors)
    if errors.faults:
        raise RuntimeError(f"{DEFAULT_QUERIES}: " + "; ".join(map(str, errors.faults)))
    return tuple(queries)


def configured_queries(section: dict) -> list[Query]:
    """The default queries (if enabled) and the configured ones; a configured query replaces
    the default query of the same name."""
    own = {q["name"] for q in section["queries"]}
    base = "collectors.business"
    defaults = [Query.from_config(q, section, f"{base}.default_queries[{q['name']}]")
                for q in (default_queries() if section["default_queries"] else ())
                if q["name"] not in own]
    return defaults + [Query.from_config(q, section, f"{base}.queries[{i}]")
                       for i, q in enumerate(section["queries"])]


# ------------------------------------------------------------------ running a query

def bind_values(dialect: str, now: datetime | None = None) -> dict:
    """:now and :today_start, as the dialect compares them with the schema's timestamps."""
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    values = {"now": now, "today_start": now.replace(hour=0, minute=0, second=0, microsecond=0)}
    if dialect == "sqlite":  # stored as text: compare text
        values = {key: value.strftime(SQLITE_TIMESTAMP) for key, value in values.items()}
    return values


def query_engine(database: dict, connections: int, application: str = APPLICATION) -> AsyncEngine:
    """A read-only engine that can hand out `connections` connections at once."""
    keep = min(KEEP_CONNECTIONS, connections)
    return make_engine(database["url"], read_only=True, pool_size=keep,
                       max_overflow=connections - keep, application_name=application,
                       connect_timeout=database.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))


async def run_query(engine: AsyncEngine, query: Query) -> tuple[list[str], list[tuple]]:
    """Column names and rows of one read-only run; never committed."""
    async with engine.connect() as conn:
        dialect = conn.dialect.name
        if dialect == "postgresql":
            await conn.execute(PG_SETTINGS, {
                "timeout": str(max(1, int(query.timeout * 1000))),
                "application": f"{APPLICATION}:{query.name}"})
        result = await _execute_interruptibly(conn, query.sql, bind_values(dialect))
        # The async drivers' cursors hold every row already: take their plain tuples, without
        # making a Row object of each (a query's 10,000 rows cost 4 ms more as Rows).
        columns, rows = list(result.keys()), result.cursor.fetchall()
        result.close()
        return columns, rows


async def _execute_interruptibly(conn: AsyncConnection, sql: str, params: dict):
    """Execute; when cancelled, stop the statement in the database before giving up."""
    driver = (await conn.get_raw_connection()).driver_connection
    task = asyncio.ensure_future(conn.execute(text(sql), params))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await _interrupt(driver, task)
        raise


async def _interrupt(driver, task: asyncio.Task) -> None:
    try:
        if hasattr(driver, "cancel_safe"):  # psycopg: a cancel request to the server
            await driver.cancel_safe(timeout=CANCEL_GRACE)
        elif hasattr(driver, "interrupt"):  # aiosqlite: sqlite3_interrupt, from any thread
            await driver.interrupt()
        elif type(driver).__module__.startswith("asyncpg"):
            task.cancel()  # asyncpg sends the cancel request itself when its call is cancelled
    except Exception:  # noqa: BLE001 - the database may be gone; the task is cancelled below
        pass
    done, _ = await asyncio.wait({task}, timeout=CANCEL_GRACE)
    if not done:
        task.cancel()
    task.add_done_callback(_consume)


def _consume(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()


def column_positions(query: Query, columns: list[str]) -> tuple[int, list[int]]:
    """Positions of the value and label columns (names compared case-insensitively, since
    PostgreSQL folds unquoted names to lower case)."""
    lowered = [c.lower() for c in columns]

    def position(name: str, key: str) -> int:
        if name.lower() not in lowered:
            raise LookupError(f'{key}: column "{name}" is not in the result '
                              f"(columns: {', '.join(columns) or 'none'})")
        return lowered.index(name.lower())
    return (position(query.value, "value"),
            [position(label, f"labels[{i}]") for i, label in enumerate(query.labels)])


class LabelSets:
    """One labels dict per distinct label set, shared by the collector's families: a tenant's
    `{"tenant": ...}` is one dict (and one string) for all its per-tenant series instead of one
    per series, a third of the memory of a sample. A set stays while it is in the index; the
    index is rebuilt from the families in use (`prune`) once it has grown to twice its size
    after the last prune, as tenants come and go. Nothing is rebuilt per round: with 50,000
    tenants, carrying the sets from round to round held the GIL for tens of milliseconds at a
    time, and dropping the old round's index held the event loop for as long."""

    def __init__(self):
        # label names -> label values -> their dict; a set is keyed by the values it holds
        self.index: dict[tuple, dict[tuple, dict[str, str]]] = {}
        self.size = self.pruned_size = 0

    def get_all(self, names: tuple[str, ...], keys: list[tuple[str, ...]]) -> list[dict]:
        """The shared labels dict of every tuple of label values in `keys`."""
        index = self.index.setdefault(names, {})
        try:
            return list(map(index.__getitem__, keys))  # the common case: every set is known
        except KeyError:
            pass
        new = {key: dict(zip(names, key)) for key in keys if key not in index}
        index.update(new)
        self.size += len(new)
        return list(map(index.__getitem__, keys))  # one dict for a repeated set

    def grown(self) -> bool:
        return self.size > max(PRUNE_FLOOR, 2 * self.pruned_size)

    def prune(self, in_use: Iterable[tuple[tuple[str, ...], list[dict]]]) -> None:
        """Keep only the sets of `in_use`: (label names, label sets) of every family served."""
        index: dict[tuple, dict[tuple, dict[str, str]]] = {}
        for names, labelsets in in_use:
            sets = index.setdefault(names, {})
            for start in range(0, len(labelsets), SLICE):  # steps of a millisecond or two
                part = labelsets[start:start + SLICE]
                sets.update(zip(map(tuple, map(dict.values, part)), part))
        self.index = index
        self.size = self.pruned_size = sum(map(len, index.values()))


PRUNE_FLOOR = 1024  # sets; below this the index is never rebuilt
# Rows per step of work that runs in C without giving the GIL up (freeing rows, indexing sets):
# about a millisecond, so that the event loop gets its turn between two steps.
SLICE = 10_000


class RowFamily(Metric):
    """A business query's family, kept as its rows: one shared labels dict (LabelSets) and one
    float per series, instead of a `Sample` tuple per series.

    A `Sample` holds a dict, so the garbage collector tracks it for as long as it lives: with
    10,000 tenants a round kept 180,000 of them, and every full collection walked them all while
    holding the GIL, for hundreds of milliseconds. Here nothing per series is tracked (a dict of
    strings is not), and a series costs a few pointers' worth of memory plus its label set's
    share. `columns` holds each label's values in row order (the label sets' own strings), so
    the next run compares its rows with these in C. `samples` is made on demand for whoever
    reads it; the exposition writes from the rows.
    """

    def __init__(self, name: str, documentation: str, typ: str):
        super().__init__(name, documentation, typ)
        self.sample_name = name + ("_total" if typ == "counter" else "")
        self.labelsets: list[dict[str, str]] = []
        self.columns: list[list[str]] = []
        self.values = array("d")

    def add(self, labels: dict[str, str], value: float) -> None:
        self.labelsets.append(labels)
        self.values.append(value)
        self.columns = []  # made again by whoever needs them

    def pairs(self):
        """(labels, value) of every series, for writers that need nothing else."""
        return zip(self.labelsets, self.values)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def samples(self) -> list[Sample]:
        return [Sample(self.sample_name, labels, value) for labels, value in self.pairs()]

    @samples.setter
    def samples(self, samples: list[Sample]) -> None:
        if samples:  # Metric.__init__ sets an empty list; rows are added with add()
            raise AttributeError("add rows with RowFamily.add()")


def to_family(query: Query, columns: list[str], rows: list[tuple],
              label_sets: LabelSets | None = None,
              last: RowFamily | None = None) -> tuple[RowFamily, int]:
    """The metric family of a result, and how many rows the series cap dropped. Written for
    tens of thousands of rows: each step is one pass in C where it can be (comprehensions, map,
    array) rather than a Python loop doing everything per row.

    With thousands of tenants most per-tenant figures (limits, agents, channels) do not move
    between two runs, and the others keep their series while some values move. So against
    `last` (the family of the run before): the same series with the same values, bit for bit,
    give `last` itself, which keeps the exposition's text of it (the render after the round
    formats nothing of it again); the same series with other values share its label sets, which
    the exposition then finds in its cache of label texts."""
    value_at, label_at = column_positions(query, columns)
    kept, numbers = _values(rows, value_at, query.value)
    dropped = max(0, len(numbers) - query.max_series)
    if dropped:
        kept, numbers = kept[:query.max_series], numbers[:query.max_series]
    labels = _label_columns(kept, label_at)
    label_sets = label_sets or LabelSets()
    if last is not None and len(last) == len(numbers) and last.columns == labels:
        if last.values.tobytes() == numbers.tobytes():  # 0.0 and -0.0 differ, and their texts
            return last, dropped
        return _row_family(query, last.labelsets, last.columns, numbers), dropped
    keys = list(zip(*labels)) if labels else [()] * len(kept)
    labelsets = label_sets.get_all(query.labels, keys)
    if len(set(map(id, labelsets))) != len(keys):  # one dict per distinct label set
        first = next(key for key, count in Counter(keys).items() if count > 1)
        raise ValueError(f"two rows have the same labels {dict(zip(query.labels, first))}")
    shared = [list(map(itemgetter(name), labelsets)) for name in query.labels]
    return _row_family(query, labelsets, shared, numbers), dropped


def _row_family(query: Query, labelsets: list[dict], columns: list[list[str]],
                numbers: array) -> RowFamily:
    family = RowFamily(query.name.removesuffix("_total") if query.type == "counter"
                       else query.name, query.help_text, query.type)
    family.labelsets, family.columns, family.values = labelsets, columns, numbers
    return family


def _values(rows: list[tuple], value_at: int, column: str) -> tuple[list[tuple], array]:
    """The rows with a value (a NULL value is no series) and their values as floats."""
    values = list(map(itemgetter(value_at), rows))
    try:
        return rows, array("d", values)  # numbers of any kind, in one pass
    except TypeError:  # NULLs, numeric text
        pass
    kept = [row for row in rows if row[value_at] is not None]
    return kept, array("d", [_number(row[value_at], column) for row in kept])


def _label_columns(rows: list[tuple], positions: list[int]) -> list[list[str]]:
    """Each label column's values as text (NULL: empty)."""
    columns = []
    for i in positions:
        column = list(map(itemgetter(i), rows))
        if not set(map(type, column)) <= {str}:  # numbers, NULLs: as text
            column = ["" if value is None else str(value) for value in column]
        columns.append(column)
    return columns


def _to_family_freeing(query: Query, columns: list[str], box: list[list[tuple]],
                       label_sets: LabelSets, last: RowFamily | None
                       ) -> tuple[RowFamily, int]:
    """to_family of the rows in `box`, which are freed here, in the calling thread, a slice at a
    time (freeing 100,000 rows at once holds the GIL for tens of milliseconds)."""
    rows = box.pop()
    try:
        return to_family(query, columns, rows, label_sets, last)
    finally:
        while isinstance(rows, list) and rows:
            del rows[-SLICE:]


def _number(value, column: str) -> float:
    try:
        return float(value)  # int, float, Decimal, bool, numeric text
    except (TypeError, ValueError):
        raise ValueError(f'column "{column}" is not a number: {value!r}') from None


def report_cap(query: Query, kept: int, dropped: int, dropped_before: int) -> None:
    """One log line when a query starts losing rows to its cap, and one when it stops."""
    if dropped and not dropped_before:
        log.warning("%s returned %d rows, more than its max_series of %d: %d rows dropped "
                    "(%s.max_series, or collectors.business.bounded_tenants)", query.name,
                    kept + dropped, query.max_series, dropped, query.path)
    elif dropped_before and not dropped:
        log.info("%s fits its max_series of %d again (%d rows)", query.name, query.max_series,
                 kept)


# ------------------------------------------------------------------ the collector

SERVER_CONCURRENCY = 4


def default_concurrency(url: str) -> int:
    """SQLite runs a query in a thread of this process: queries run together share its CPUs
    and GIL, finish no sooner, and the event loop waits behind each of their threads in turn
    (10,000 tenants: the loop's worst wait in a round 15-23 ms with 4, 7-12 ms with 1, and the
    round as long). A database server runs its queries on its own CPUs."""
    return 1 if dialect_name(url) == "sqlite" else SERVER_CONCURRENCY


class BusinessCollector(Collector):
    """One metric family per configured query, each refreshed by a job of its own."""

    name = "business"
    config_schema = collector_schema("1m", "10s", {
        "database": Str("main", "Name of the database in collectors.database.databases "
                                "that the queries run against."),
        "default_queries": Bool(True, "Also run the default queries against the default "
                                      "business schema (vigil_exporter/business_queries.yml)."),
        "max_series": Int(DEFAULT_MAX_SERIES, "Default cap on the rows (series) one query may "
                          "return; the rest are dropped, counted, and reported in /health and "
                          "the log.", minimum=1),
        "concurrency": Int(None, "Queries run at once; the others wait for a slot (their "
                                 "timeout starts when they get one). Bounds the memory and CPU "
                                 "of a round with thousands of rows per query. Default: 1 on "
                                 "SQLite, whose queries run in the exporter's own process, "
                                 f"{SERVER_CONCURRENCY} on a database server.", minimum=1),
        "queries": List(QUERY, list, "Queries; each one becomes a metric family."),
        "bounded_tenants": BOUNDED_TENANTS,
    }, check=_check_section)

    def __init__(self, config: dict, database: dict):
        """`database` is the entry of collectors.database.databases that `config["database"]`
        names (the configuration loader has checked that it exists)."""
        super().__init__(config)
        self.database = database
        self.queries = configured_queries(config)
        self.engine: AsyncEngine | None = None
        self.label_sets = LabelSets()
        self._in_use: dict[str, tuple[tuple[str, ...], list[dict]]] = {}  # query -> its sets
        self._slots: asyncio.Semaphore | None = None  # made on the loop, on first use
        self._jobs = [self._job(query) for query in self.queries]
        bounded = config["bounded_tenants"]
        self.bounded = BoundedTenants(bounded, [
            q.name for q in self.queries if bounded["label"] in q.labels]) if bounded[
                "enabled"] else None

    def jobs(self) -> list[Job]:
        return self._jobs

    def serve(self, jobs: list[Job]) -> Iterable[Metric]:
        return self.bounded.serve(jobs) if self.bounded else super().serve(jobs)

    def _job(self, query: Query) -> Job:
        job = Job(query.name, "query", query.interval, query.timeout, run=None)
        last: list[RowFamily] = []  # the family of the run before

        async def run() -> list[Metric]:
            columns, rows = await run_query(self.get_engine(), query)
            # Thousands of rows take milliseconds to become samples, and to free: the worker
            # does both (it takes the only reference to the rows).
            box = [rows]
            del rows
            family, dropped = await off_loop(_to_family_freeing, query, columns, box,
                                             self.label_sets, last[0] if last else None)
            last[:] = [family]
            self._in_use[query.name] = (query.labels, family.labelsets)
            if self.label_sets.grown():
                await off_loop(self.label_sets.prune, list(self._in_use.values()))
            report_cap(query, len(family), dropped, job.series_dropped)
            job.series, job.series_limit, job.series_dropped = (
                len(family), query.max_series, dropped)
            return [family]
        job.run = run
        job.slot = self.slots  # a round's results are in memory a few at a time
        return job

    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.config["concurrency"] or default_concurrency(
                self.database["url"]))
        return self._slots

    def get_engine(self) -> AsyncEngine:
        if self.engine is None:
            self.engine = query_engine(self.database, len(self.queries))
        return self.engine

    async def collect(self) -> list[Metric]:
        """Every query once (the scheduler runs the jobs instead)."""
        return [family for job in self._jobs for family in await job.run()]

    async def close(self) -> None:
        if self.engine is not None:
            await dispose(self.engine)


# ------------------------------------------------------------------ check-config --connect

async def check_queries(database: dict | str, queries: list[Query]) -> list[str]:
    """Run every query once against the live database (read-only, with its timeout, without
    series cap) and report, by key path, those that fail or lack a configured column."""
    if isinstance(database, str):
        database = {"url": database}
    engine = query_engine(database, 1, application=f"{APPLICATION}:check")
    try:
        async with engine.connect():
            pass
    except Exception as exc:  # noqa: BLE001 - reported as a fault
        await dispose(engine)
        return [f"cannot connect to the business database: {describe_error(exc)}"]
    try:
        return [fault for query in queries for fault in await _check_one(engine, query)]
    finally:
        await dispose(engine)


async def _check_one(engine: AsyncEngine, query: Query) -> list[str]:
    try:
        columns, rows = await asyncio.wait_for(run_query(engine, query), query.timeout)
    except asyncio.TimeoutError:
        return [f"{query.path}.sql: timed out after {format_duration(query.timeout)}"]
    except Exception as exc:  # noqa: BLE001 - any database error is the query's fault
        return [f"{query.path}.sql: {describe_error(exc)}"]
    try:
        to_family(query, columns, rows)
    except LookupError as exc:
        return [f"{query.path}.{exc.args[0]}"]
    except ValueError as exc:
        return [f"{query.path}: {exc}"]
    return []
