"""What every PostgreSQL feature reads through: one connection, what the server and the
exporter's role can do, and the errors that mean "not available"."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from vigil_exporter.collectors.features import Feature, NotAvailable

# SQLSTATEs that mean "the server lacks something", not "the query failed".
MISSING = {
    "42501": "permission denied",  # insufficient_privilege
    "42P01": "a relation is missing",  # undefined_table (an extension not installed)
    "42883": "a function is missing",  # undefined_function
    "55000": "a library is not loaded",  # e.g. pg_stat_statements without shared_preload_libraries
}

CAPABILITIES = text(
    "SELECT current_setting('server_version_num')::int, pg_is_in_recovery(), "
    "pg_has_role('pg_monitor', 'USAGE') OR "
    "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
    "current_user, current_database(), ARRAY(SELECT extname::text FROM pg_extension)")


@dataclass
class Server:
    """A connection and what the server and the exporter's role offer, read once per round."""

    conn: AsyncConnection
    version: int  # server_version_num, e.g. 150005
    in_recovery: bool
    monitor: bool  # superuser or member of pg_monitor
    user: str
    database: str
    extensions: set[str]

    async def rows(self, statement, **params) -> list[tuple]:
        return [tuple(row) for row in (await self.conn.execute(statement, params)).all()]

    async def row(self, statement, **params) -> tuple:
        return tuple((await self.conn.execute(statement, params)).one())

    def require_monitor(self, what: str) -> None:
        if not self.monitor:
            raise NotAvailable(
                f'role "{self.user}" is not a member of pg_monitor, so PostgreSQL hides {what} '
                f'of other roles: GRANT pg_monitor TO "{self.user}"')


async def server(conn: AsyncConnection) -> Server:
    version, recovery, monitor, user, database, extensions = (
        await conn.execute(CAPABILITIES)).one()
    return Server(conn, version, recovery, bool(monitor), user, database, set(extensions))


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg or asyncpg error (wrapped by SQLAlchemy or not)."""
    for candidate in (getattr(exc, "orig", None), exc, getattr(exc, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


class PostgresFeature(Feature):
    """A feature that reads a `Server`; driver errors with a "missing" SQLSTATE mean that it
    is not available (the message names the state and the server's own words)."""

    async def read(self, source: Server):
        raise NotImplementedError

    def not_available(self, exc: Exception) -> str | None:
        code = sqlstate(exc)
        if code not in MISSING:
            return None
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return f"{MISSING[code]} ({first[0] if first else code})"
