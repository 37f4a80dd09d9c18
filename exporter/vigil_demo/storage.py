"""The demo's storage: SQLAlchemy Core statements against the default business schema
(vigil_exporter.dbschema), the tables the exporter's business queries read.

API calls are buffered and written in one INSERT per second (`flush_api_calls`), the way a
busy service batches audit rows; everything else is written when it happens.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from vigil_exporter import dbschema
from vigil_exporter.dbschema import (
    agents,
    api_calls,
    api_keys,
    channels,
    documents,
    messages,
    sessions,
    tenants,
    users,
)

log = logging.getLogger("vigil.demo")

LIMIT_COLUMNS = {
    "agents": "max_agents", "channels": "max_channels", "messages": "max_messages_per_day",
    "api_calls": "max_api_calls_per_day", "storage_bytes": "max_storage_bytes",
    "connections": "max_concurrent_connections",
}


def utcnow() -> datetime:
    """Timezone-naive UTC, like every timestamp of the schema."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def today_start(now: datetime | None = None) -> datetime:
    return (now or utcnow()).replace(hour=0, minute=0, second=0, microsecond=0)


def prepare_database(url: str, seed: int) -> tuple[list[str], bool]:
    """Create the missing tables and load the demo tenants into an empty database (blocking:
    run it in a thread). Returns (tables created, whether the demo data was loaded)."""
    created = dbschema.create_schema(url)
    try:
        loaded = dbschema.load_demo_data(url, seed=seed)
    except IntegrityError:
        loaded = False  # another process (the exporter's --demo) loaded it at the same moment
    return created, loaded


class Store:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self._api_calls: list[dict] = []

    # ---- maintenance -------------------------------------------------------------------------

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # ---- tenants, usage, directory -----------------------------------------------------------

    async def tenants(self) -> list[dict]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(tenants).order_by(tenants.c.id))
            return [dict(row._mapping) for row in rows]

    async def usage(self, now: datetime | None = None) -> dict[int, dict[str, int]]:
        """Per tenant id: what counts against each plan limit (today's messages and API calls,
        agents, channels, stored bytes, active sessions)."""
        now = now or utcnow()
        since = today_start(now)
        counts = {
            "messages": select(messages.c.tenant_id, func.count()).where(
                messages.c.created_at >= since).group_by(messages.c.tenant_id),
            "api_calls": select(api_calls.c.tenant_id, func.count()).where(
                api_calls.c.created_at >= since).group_by(api_calls.c.tenant_id),
            "agents": select(agents.c.tenant_id, func.count()).group_by(agents.c.tenant_id),
            "channels": select(channels.c.tenant_id, func.count()).group_by(channels.c.tenant_id),
            "storage_bytes": select(documents.c.tenant_id,
                                    func.coalesce(func.sum(documents.c.size_bytes), 0))
            .group_by(documents.c.tenant_id),
            "connections": select(sessions.c.tenant_id, func.count()).where(
                sessions.c.ended_at.is_(None), sessions.c.expires_at > now)
            .group_by(sessions.c.tenant_id),
        }
        out: dict[int, dict[str, int]] = {}
        async with self.engine.connect() as conn:
            tenant_ids = (await conn.execute(select(tenants.c.id))).scalars().all()
            for tenant_id in tenant_ids:
                out[tenant_id] = dict.fromkeys(counts, 0)
            for kind, statement in counts.items():
                for tenant_id, value in await conn.execute(statement):
                    out.setdefault(tenant_id, dict.fromkeys(counts, 0))[kind] = int(value)
        return out

    async def directory(self, per_tenant: int = 20) -> list[dict]:
        """Tenants with a few active users, their active channels, agents and documents: what a
        client needs to make plausible requests (the traffic generator)."""
        async with self.engine.connect() as conn:
            result = await conn.execute(select(tenants).order_by(tenants.c.id))
            rows = [dict(r._mapping) for r in result]
            for tenant in rows:
                tid = tenant["id"]
                tenant["users"] = (await conn.execute(
                    select(users.c.email).where(users.c.tenant_id == tid, users.c.is_active)
                    .order_by(users.c.id).limit(per_tenant))).scalars().all()
                tenant["channels"] = (await conn.execute(
                    select(channels.c.id).where(channels.c.tenant_id == tid, channels.c.is_active)
                    .order_by(channels.c.id).limit(per_tenant))).scalars().all()
                tenant["agents"] = (await conn.execute(
                    select(agents.c.id).where(agents.c.tenant_id == tid, agents.c.is_active)
                    .order_by(agents.c.id).limit(per_tenant))).scalars().all()
                tenant["items"] = (await conn.execute(
                    select(documents.c.id).where(documents.c.tenant_id == tid)
                    .order_by(documents.c.id).limit(per_tenant))).scalars().all()
                tenant["created_at"] = tenant["created_at"].isoformat()
        return rows

    # ---- users and sessions ------------------------------------------------------------------

    async def user_by_email(self, email: str) -> dict | None:
        return await self._first(
            select(users.c.id, users.c.tenant_id, users.c.is_active, tenants.c.name.label("tenant"))
            .join(tenants, tenants.c.id == users.c.tenant_id).where(users.c.email == email))

    async def add_user(self, tenant_id: int, email: str) -> int:
        return await self._insert(users, tenant_id=tenant_id, email=email, is_active=True,
                                  created_at=utcnow())

    async def add_tenant(self, name: str, plan: str, limits: dict[str, int]) -> int:
        return await self._insert(tenants, name=name, plan=plan, created_at=utcnow(), **limits)

    async def open_session(self, tenant_id: int, user_id: int, ttl: timedelta) -> int:
        now = utcnow()
        return await self._insert(sessions, tenant_id=tenant_id, user_id=user_id, created_at=now,
                                  expires_at=now + ttl)

    async def extend_session(self, session_id: int, ttl: timedelta) -> bool:
        """Push the expiry of an open session; False when it has ended or expired."""
        now = utcnow()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(sessions).where(sessions.c.id == session_id, sessions.c.ended_at.is_(None),
                                       sessions.c.expires_at > now)
                .values(expires_at=now + ttl))
        return result.rowcount == 1

    async def end_session(self, session_id: int) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(sessions).where(sessions.c.id == session_id, sessions.c.ended_at.is_(None))
                .values(ended_at=utcnow()))
        return result.rowcount == 1

    # ---- API keys ----------------------------------------------------------------------------

    async def create_api_key(self, tenant_id: int, user_id: int, prefix: str,
                             ttl: timedelta | None) -> int:
        now = utcnow()
        return await self._insert(api_keys, tenant_id=tenant_id, user_id=user_id, key_prefix=prefix,
                                  created_at=now, expires_at=now + ttl if ttl else None)

    async def revoke_api_key(self, tenant_id: int, key_id: int) -> str | None:
        """Revoke a key of the tenant; its prefix, or None when there was no such live key."""
        async with self.engine.begin() as conn:
            return (await conn.execute(
                update(api_keys).where(api_keys.c.id == key_id, api_keys.c.tenant_id == tenant_id,
                                       api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow()).returning(api_keys.c.key_prefix))).scalar()

    async def api_key(self, prefix: str) -> dict | None:
        """The key with this prefix: id, tenant, user, revoked_at, expires_at."""
        return await self._first(
            select(api_keys.c.id, api_keys.c.tenant_id, api_keys.c.user_id,
                   api_keys.c.revoked_at, api_keys.c.expires_at, tenants.c.name.label("tenant"))
            .join(tenants, tenants.c.id == api_keys.c.tenant_id)
            .where(api_keys.c.key_prefix == prefix))

    async def _first(self, query) -> dict | None:
        """The first row of a query as a dict, or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return dict(row._mapping) if row else None

    # ---- agents, channels, messages, documents ------------------------------------------------

    async def add_agent(self, tenant_id: int, name: str) -> int:
        return await self._insert(agents, tenant_id=tenant_id, name=name, is_active=True,
                                  created_at=utcnow())

    async def add_channel(self, tenant_id: int, name: str) -> int:
        return await self._insert(channels, tenant_id=tenant_id, name=name, is_active=True,
                                  created_at=utcnow())

    async def channel_exists(self, tenant_id: int, channel_id: int) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.scalar(select(channels.c.id).where(
                channels.c.id == channel_id, channels.c.tenant_id == tenant_id,
                channels.c.is_active))
        return found is not None

    async def active_agent_ids(self, tenant_id: int) -> list[int]:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(agents.c.id).where(
                agents.c.tenant_id == tenant_id, agents.c.is_active))).scalars().all()

    async def add_message(self, tenant_id: int, channel_id: int, direction: str, size_bytes: int,
                          agent_id: int | None = None) -> int:
        return await self._insert(messages, tenant_id=tenant_id, channel_id=channel_id,
                                  agent_id=agent_id, direction=direction, size_bytes=size_bytes,
                                  created_at=utcnow())

    async def add_document(self, tenant_id: int, name: str, size_bytes: int) -> int:
        return await self._insert(documents, tenant_id=tenant_id, name=name, size_bytes=size_bytes,
                                  created_at=utcnow())

    async def document(self, tenant_id: int, document_id: int) -> dict | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                select(documents.c.id, documents.c.name, documents.c.size_bytes,
                       documents.c.created_at)
                .where(documents.c.id == document_id, documents.c.tenant_id == tenant_id))).first()
        if row is None:
            return None
        found = dict(row._mapping)
        found["created_at"] = found["created_at"].isoformat()
        return found

    # ---- API calls (buffered) ------------------------------------------------------------------

    def log_api_call(self, tenant_id: int, endpoint: str, status_code: int) -> None:
        self._api_calls.append({"tenant_id": tenant_id, "endpoint": endpoint[:200],
                                "status_code": status_code, "created_at": utcnow()})

    async def flush_api_calls(self) -> int:
        rows, self._api_calls = self._api_calls, []
        if rows:
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(insert(api_calls), rows)
            except Exception:
                self._api_calls[:0] = rows[-10_000:]  # keep them for the next round, bounded
                raise
        return len(rows)

    # ---- helpers ---------------------------------------------------------------------------

    async def _insert(self, table, **values) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(insert(table).values(**values).returning(table.c.id))
            return result.scalar_one()
