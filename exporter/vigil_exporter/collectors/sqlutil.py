"""SQL helpers shared by the database and business collectors.

Everything the exporter does with a database goes through an asyncio SQLAlchemy engine, so a
database that accepts a connection and then never answers only ever blocks a coroutine, which a
timeout can abandon; never a thread, which nothing could stop. Plain URLs are therefore moved
to asyncio drivers transparently:

    postgresql://, postgres://, postgresql+psycopg2://, postgresql+pg8000://  -> postgresql+psycopg://
    sqlite://, sqlite+pysqlite://                                           -> sqlite+aiosqlite://

URLs that already name an asyncio driver (postgresql+asyncpg://, mysql+aiomysql://, ...) are
used as they are. For PostgreSQL the exporter speaks both psycopg (the default: libpq, so every
libpq connection parameter works) and asyncpg (about 6 MiB less resident memory; libpq-style
`application_name`, `options=-c ...`, `sslmode` and `connect_timeout` in the URL are translated).
"""
from __future__ import annotations

import asyncio
import math
import os
import re
import shlex
import sqlite3
import threading
import time
import weakref

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

APPLICATION_NAME = "vigil-exporter"
WORKERS_WAIT = 1.0  # seconds dispose() waits for the threads of an SQLite engine's connections

# backend -> (the asyncio driver we use, the drivers we replace by it; "" = none named)
_ASYNC_DRIVERS = {
    "postgresql": ("psycopg", {"", "psycopg", "psycopg2", "psycopg2cffi", "pg8000"}),
    "sqlite": ("aiosqlite", {"", "pysqlite"}),
}
_BACKEND_ALIASES = {"postgres": "postgresql"}


def async_url(url: str | URL) -> URL:
    """The URL with its driver replaced by the asyncio driver the exporter uses."""
    url = make_url(url)
    backend, _, driver = url.drivername.partition("+")
    backend = _BACKEND_ALIASES.get(backend, backend)
    target, replaced = _ASYNC_DRIVERS.get(backend, (driver, {driver}))
    if driver in replaced:
        driver = target
    return url.set(drivername=f"{backend}+{driver}" if driver else backend)


def dialect_name(url: str | URL) -> str:
    """"postgresql", "sqlite", "mysql", ... for any spelling of the URL."""
    backend = make_url(url).drivername.partition("+")[0]
    return _BACKEND_ALIASES.get(backend, backend)


def sqlite_path(url: str | URL) -> str | None:
    """The file of an SQLite URL (relative to the working directory, as SQLite opens it);
    None for an in-memory database or another dialect."""
    url = make_url(url)
    if dialect_name(url) != "sqlite":
        return None
    database = url.database or ""
    if database.startswith("file:"):  # URI filename: file:path?mode=ro
        if "mode=memory" in database or url.query.get("mode") == "memory":
            return None
        database = database[len("file:"):].split("?", 1)[0]
    if database in ("", ":memory:"):
        return None
    return os.path.expanduser(database)


def make_engine(url: str | URL, *, connect_timeout: float = 3.0,
                statement_timeout: float | None = None, pool_size: int = 2,
                max_overflow: int = 0, read_only: bool = False,
                application_name: str = APPLICATION_NAME, **engine_args) -> AsyncEngine:
    """An asyncio engine for `url` (see the module doc for the driver mapping).

    - connect_timeout: seconds to establish a connection, and to wait for a free pooled one.
      psycopg rounds it up to whole seconds, at least 2; asyncpg takes it as it is; SQLite
      uses it as its busy timeout.
    - statement_timeout: PostgreSQL only: the server cancels any statement running longer
      (`-c statement_timeout`). None: the server's setting.
    - read_only: PostgreSQL: every transaction is read-only (`default_transaction_read_only`)
      and every statement is prepared (so one call is one statement); SQLite: the file is
      opened read-only (`mode=ro`), so writes fail.
    - application_name: PostgreSQL `application_name` unless the URL sets one.
    - pool_size / max_overflow: the QueuePool; ignored for in-memory SQLite (one shared
      connection). Connections are pinged on checkout, so the engine recovers by itself after
      the database was down or restarted.
    - engine_args: passed on to `create_async_engine`, overriding these defaults (for example
      `isolation_level="AUTOCOMMIT"`, `echo=True`).

    Creating the engine does not connect; errors in the URL or a missing driver raise here.
    """
    url = async_url(url)
    dialect = dialect_name(url)
    args: dict = {"pool_pre_ping": True}
    if dialect == "postgresql":
        session = _postgres_session(statement_timeout, read_only, application_name)
        if url.get_driver_name() == "asyncpg":
            url, args["connect_args"] = _asyncpg_connect(url, connect_timeout, session)
        else:
            args["connect_args"] = _psycopg_connect(url, connect_timeout, session)
            if read_only:
                # Prepare every statement: a prepared statement is one statement, so a query
                # cannot COMMIT its read-only transaction and run more after it (psycopg sends
                # a query without parameters as a simple query, which may hold several).
                # asyncpg always prepares; sqlite3 runs one statement per call.
                args["connect_args"]["prepare_threshold"] = 0
    elif dialect == "sqlite":
        workers = SQLiteWorkers()
        args["connect_args"] = {"timeout": connect_timeout, "factory": type(
            "SQLiteConnection", (SQLiteConnection,), {"workers": workers})}
        if read_only:
            url = _sqlite_read_only(url)
    if not (dialect == "sqlite" and sqlite_path(url) is None):
        args.update(pool_size=pool_size, max_overflow=max_overflow, pool_timeout=connect_timeout)
    args.update(engine_args)
    engine = create_async_engine(url, **args)
    if dialect == "sqlite":
        event.listen(engine.sync_engine, "do_connect", workers.connecting)
        _SQLITE_WORKERS[engine.sync_engine] = workers
    return engine


async def dispose(engine: AsyncEngine, wait: float = WORKERS_WAIT) -> None:
    """`engine.dispose()`, then for SQLite a wait of at most `wait` seconds for the threads of
    its connections to end, while the event loop still runs to take their last results. A
    thread that outlived the loop (a connect cancelled by a shutdown finishes in aiosqlite's
    thread) posted them to a closed loop: "Event loop is closed", raised in that thread."""
    await engine.dispose()
    workers = _SQLITE_WORKERS.get(engine.sync_engine)
    deadline = time.monotonic() + wait
    while workers is not None and workers.running() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


class SQLiteWorkers:
    """The threads aiosqlite runs the connections of one engine in."""

    def __init__(self):
        self._lock = threading.Lock()
        self._unseen = 0  # connections asked for whose thread has not started opening them
        self._threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()

    def connecting(self, *_event_args) -> None:
        """The engine's `do_connect` event, on the loop, before aiosqlite starts a thread."""
        with self._lock:
            self._unseen += 1

    def opening(self) -> None:
        """In the new thread, as it opens the connection."""
        with self._lock:
            self._unseen -= 1
            self._threads.add(threading.current_thread())

    def running(self) -> bool:
        with self._lock:
            return self._unseen > 0 or any(thread.is_alive() for thread in self._threads)


_SQLITE_WORKERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class SQLiteConnection(sqlite3.Connection):
    """The connection of every SQLite engine: close() closes its cursors first.

    A task cancelled while aiosqlite's thread runs its statement leaves the statement stepped
    but unfinished, and the exception's traceback keeps its cursor alive. SQLAlchemy then
    closes the connection, but SQLite only marks it closed while a statement is unfinished: it
    keeps the file locked, its transaction open, until the garbage collector frees that cursor.
    Every write to the file meanwhile waits out its busy timeout and fails with "database is
    locked" (the demo's last write on SIGTERM, and its exit, took 5 s more).

    make_engine() makes a subclass per engine, whose `workers` keep track of its threads."""

    workers: SQLiteWorkers

    def __init__(self, *args, **kwargs):
        self.workers.opening()  # first: a connection that fails to open has a thread too
        self._cursors = weakref.WeakSet()
        super().__init__(*args, **kwargs)

    def cursor(self, factory=sqlite3.Cursor):
        cursor = super().cursor(factory)
        self._cursors.add(cursor)
        return cursor

    # sqlite3's shortcuts make their cursor without calling cursor()
    def execute(self, sql, parameters=(), /):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, parameters, /):
        return self.cursor().executemany(sql, parameters)

    def executescript(self, script, /):
        return self.cursor().executescript(script)

    def close(self) -> None:
        while self._cursors:
            self._cursors.pop().close()
        super().close()


def _postgres_session(statement_timeout: float | None, read_only: bool,
                      application_name: str) -> dict[str, str]:
    """The server settings every session of the engine gets."""
    settings = {"application_name": application_name}
    if statement_timeout is not None:
        settings["statement_timeout"] = str(max(1, int(statement_timeout * 1000)))
    if read_only:
        settings["default_transaction_read_only"] = "on"
    return settings


def _psycopg_connect(url: URL, connect_timeout: float, session: dict[str, str]) -> dict:
    """psycopg keywords. They override the URL's query, so the URL's `options` are kept in
    front of ours and its `application_name` is left alone."""
    session = dict(session)
    application_name = session.pop("application_name")
    options = [url.query["options"]] if "options" in url.query else []
    options += [f"-c {name}={value}" for name, value in session.items()]
    args: dict = {"connect_timeout": max(2, math.ceil(connect_timeout))}
    if options:
        args["options"] = " ".join(options)
    if "application_name" not in url.query:
        args["application_name"] = application_name
    return args


# URL query keys that work with asyncpg: the libpq ones translated below, and what asyncpg and
# SQLAlchemy's asyncpg dialect take as strings themselves.
ASYNCPG_QUERY_KEYS = ("application_name", "options", "sslmode", "connect_timeout", "passfile",
                      "target_session_attrs", "prepared_statement_cache_size")


def unsupported_query_keys(url: str | URL) -> list[str]:
    """Query keys of `url` its driver would refuse at connect time (only asyncpg is picky:
    psycopg hands every key to libpq, which names a wrong one itself)."""
    url = async_url(url)
    if dialect_name(url) != "postgresql" or url.get_driver_name() != "asyncpg":
        return []
    return [key for key in url.query if key not in ASYNCPG_QUERY_KEYS]


def _asyncpg_connect(url: URL, connect_timeout: float,
                     session: dict[str, str]) -> tuple[URL, dict]:
    """asyncpg keywords, from the libpq-style query keys asyncpg itself would refuse; the URL
    is returned without them."""
    query = url.query
    settings = {**session, **_options_settings(query.get("options", ""))}
    if "application_name" in query:
        settings["application_name"] = query["application_name"]
    args: dict = {"timeout": float(query.get("connect_timeout", connect_timeout)),
                  "server_settings": settings}
    if "sslmode" in query:
        args["ssl"] = query["sslmode"]
    return url.difference_update_query(
        ["application_name", "options", "sslmode", "connect_timeout"]), args


def _options_settings(options: str) -> dict[str, str]:
    """{"search_path": "app"} of a libpq `options` value such as "-c search_path=app"."""
    words = shlex.split(options)
    settings = {}
    for i, word in enumerate(words):
        if word.startswith(("-c", "--")):
            pair = word[2:] or (words[i + 1] if i + 1 < len(words) else "")
            name, sep, value = pair.partition("=")
            if sep:
                settings[name.replace("-", "_")] = value
    return settings


def _sqlite_read_only(url: URL) -> URL:
    path = sqlite_path(url)
    if path is None:
        return url
    return url.set(database=f"file:{path}", query={**url.query, "mode": "ro", "uri": "true"})


_SQL_TOKEN = re.compile(r"""
      (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<escaped>[eE]'(?:[^'\\]|\\.|'')*')
    | (?P<string>'(?:[^']|'')*')
    | (?P<identifier>"(?:[^"]|"")*")
    | (?P<dollar>\$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?\$(?P=tag)\$)
    | (?P<semicolon>;)
    | (?P<other>[^;'"$\-/eE]+|.)
""", re.VERBOSE | re.DOTALL)


def count_statements(sql: str) -> int:
    """How many statements `sql` holds: semicolons outside strings, quoted identifiers,
    dollar quotes and comments separate them; empty ones (a trailing ";") do not count."""
    count, content = 0, False
    for match in _SQL_TOKEN.finditer(sql):
        kind = match.lastgroup
        if kind == "semicolon":
            count += content
            content = False
        elif kind != "comment" and not (kind == "other" and not match.group().strip()):
            content = True
    return count + content
