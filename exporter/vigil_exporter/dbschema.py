"""The default business schema (SQLAlchemy Core) and a small, deterministic demo data set.

The business collector's default queries (business_queries.yml) read these tables.
All timestamps are timezone-naive UTC. The demo data set has a few tenants on different plans,
one of them ("initech") at about 96 % of every limit, so that limit alerts have something to
fire on.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import URL, Engine, make_url

metadata = MetaData()


def _id() -> Column:
    return Column("id", Integer, primary_key=True)


def _tenant_id() -> Column:
    return Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False)


def _created_at() -> Column:
    return Column("created_at", DateTime, nullable=False)


tenants = Table(
    "tenants", metadata, _id(),
    Column("name", String(100), nullable=False, unique=True),
    Column("plan", String(50), nullable=False),
    Column("max_agents", Integer, nullable=False),
    Column("max_channels", Integer, nullable=False),
    Column("max_messages_per_day", Integer, nullable=False),
    Column("max_api_calls_per_day", Integer, nullable=False),
    Column("max_storage_bytes", BigInteger, nullable=False),
    Column("max_concurrent_connections", Integer, nullable=False),
    _created_at(),
)
users = Table(
    "users", metadata, _id(), _tenant_id(),
    Column("email", String(255), nullable=False, unique=True),
    Column("is_active", Boolean, nullable=False, default=True),
    _created_at(),
)
api_keys = Table(
    "api_keys", metadata, _id(), _tenant_id(),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("key_prefix", String(16), nullable=False),
    _created_at(),
    Column("expires_at", DateTime, nullable=True),
    Column("revoked_at", DateTime, nullable=True),
)
sessions = Table(
    "sessions", metadata, _id(), _tenant_id(),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    _created_at(),
    Column("expires_at", DateTime, nullable=False),
    Column("ended_at", DateTime, nullable=True),
)
agents = Table(
    "agents", metadata, _id(), _tenant_id(),
    Column("name", String(100), nullable=False),
    Column("is_active", Boolean, nullable=False, default=True),
    _created_at(),
)
channels = Table(
    "channels", metadata, _id(), _tenant_id(),
    Column("name", String(100), nullable=False),
    Column("is_active", Boolean, nullable=False, default=True),
    _created_at(),
)
messages = Table(
    "messages", metadata, _id(), _tenant_id(),
    Column("channel_id", Integer, ForeignKey("channels.id"), nullable=False),
    Column("agent_id", Integer, ForeignKey("agents.id"), nullable=True),
    Column("direction", String(3), nullable=False),  # 'in' | 'out'
    Column("size_bytes", Integer, nullable=False),
    _created_at(),
)
api_calls = Table(
    "api_calls", metadata, _id(), _tenant_id(),
    Column("endpoint", String(200), nullable=False),
    Column("status_code", Integer, nullable=False),
    _created_at(),
)
documents = Table(
    "documents", metadata, _id(), _tenant_id(),
    Column("name", String(255), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    _created_at(),
)

# The per-tenant "today" and "active" queries filter on these.
Index("ix_messages_tenant_created", messages.c.tenant_id, messages.c.created_at)
Index("ix_api_calls_tenant_created", api_calls.c.tenant_id, api_calls.c.created_at)
# Every column the per-tenant counts of messages and API calls read (today's and ever), so that
# PostgreSQL answers them from the index alone; docs/tenants.md has the plans at 10,000 tenants.
Index("ix_messages_created_tenant", messages.c.created_at, messages.c.tenant_id,
      messages.c.direction)
Index("ix_messages_tenant_direction", messages.c.tenant_id, messages.c.direction)
Index("ix_api_calls_created_tenant", api_calls.c.created_at, api_calls.c.tenant_id)
Index("ix_sessions_tenant", sessions.c.tenant_id)
Index("ix_agents_tenant", agents.c.tenant_id)
Index("ix_channels_tenant", channels.c.tenant_id)
Index("ix_documents_tenant", documents.c.tenant_id)
Index("ix_api_keys_tenant", api_keys.c.tenant_id)
Index("ix_users_tenant", users.c.tenant_id)

# Asyncio drivers (and driver-less PostgreSQL URLs) -> the synchronous driver we depend on.
_SYNC_DRIVERS = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql+psycopg",
                 "postgresql+psycopg_async": "postgresql+psycopg",
                 "postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}


def sync_url(url: str | URL) -> URL:
    """The URL with a synchronous driver (these helpers run before the event loop)."""
    url = make_url(url)
    return url.set(drivername=_SYNC_DRIVERS.get(url.drivername, url.drivername))


def _engine(url: str | URL) -> Engine:
    return create_engine(sync_url(url))


def create_schema(url: str | URL) -> list[str]:
    """Create the tables that do not exist yet, and the indexes an older version of the schema
    lacks; return the names of the tables created (empty: nothing to do)."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            inspector = inspect(conn)
            existing = set(inspector.get_table_names())
            missing = [t for t in metadata.sorted_tables if t.name not in existing]
            for table in metadata.sorted_tables:
                if table.name in existing:
                    have = {index["name"] for index in inspector.get_indexes(table.name)}
                    for index in table.indexes:
                        if index.name not in have:
                            index.create(conn)
            metadata.create_all(conn, tables=missing)
        return [t.name for t in missing]
    finally:
        engine.dispose()


# ---------------------------------------------------------------- demo data set

GiB = 1 << 30
# plan: limits (max_agents, max_channels, max_messages_per_day, max_api_calls_per_day,
#               max_storage_bytes, max_concurrent_connections), users
PLANS = {
    "free": ((5, 3, 200, 300, GiB // 10, 5), 3),
    "starter": ((25, 10, 1000, 1000, 1 * GiB, 20), 10),
    "business": ((100, 40, 2000, 3000, 10 * GiB, 60), 25),
    "enterprise": ((300, 100, 3000, 5000, 100 * GiB, 150), 50),
}
LIMIT_COLUMNS = ("max_agents", "max_channels", "max_messages_per_day", "max_api_calls_per_day",
                 "max_storage_bytes", "max_concurrent_connections")
# name, plan, share of every limit in use
DEMO_TENANTS = (
    ("acme", "enterprise", 0.40),
    ("globex", "business", 0.55),
    ("initech", "starter", 0.96),  # near its limits
    ("umbrella", "free", 0.20),
    ("hooli", "business", 0.10),
)
ENDPOINTS = ("/v1/agents", "/v1/channels", "/v1/messages", "/v1/documents", "/v1/auth/token")
HISTORY_DAYS = 7


def load_demo_data(url: str | URL, seed: int = 42, now: datetime | None = None) -> bool:
    """Fill an empty default schema (created if needed) with the demo data set.

    Returns False and changes nothing when there are tenants already. The rows are the same
    for the same seed; timestamps are relative to `now` (default: the current UTC time), and
    "today" rows fall between UTC midnight and `now`.
    """
    create_schema(url)
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            if conn.execute(select(func.count()).select_from(tenants)).scalar():
                return False
            for table, rows in demo_rows(random.Random(seed), now).items():
                if rows:
                    conn.execute(table.insert(), rows)
            _advance_sequences(conn)
        return True
    finally:
        engine.dispose()


def _advance_sequences(conn) -> None:
    """The demo rows carry explicit ids; move PostgreSQL's id sequences past them so that
    the application's own inserts do not collide."""
    if conn.dialect.name != "postgresql":
        return
    for table in metadata.sorted_tables:
        conn.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
            f"(SELECT coalesce(max(id), 0) + 1 FROM {table.name}), false)")


def demo_rows(rng: random.Random, now: datetime) -> dict[Table, list[dict]]:
    """Every demo row by table, in insertion order, with explicit ids."""
    data: dict[Table, list[dict]] = {t: [] for t in metadata.sorted_tables}
    for tenant_id, (name, plan, usage) in enumerate(DEMO_TENANTS, start=1):
        _demo_tenant(data, rng, now, tenant_id, name, plan, usage)
    return data


def _demo_tenant(data, rng, now, tenant_id, name, plan, usage) -> None:
    limits, user_count = PLANS[plan]
    limit = dict(zip(LIMIT_COLUMNS, limits))
    data[tenants].append({"id": tenant_id, "name": name, "plan": plan, **limit,
                          "created_at": now - timedelta(days=365 - 30 * tenant_id)})
    used = {column: round(value * usage) for column, value in limit.items()}
    user_ids = _add(data, users, [
        {"tenant_id": tenant_id, "email": f"user{i}@{name}.example",
         "is_active": rng.random() > 0.1, "created_at": _past(rng, now, 300)}
        for i in range(user_count)])
    _add(data, api_keys, [_api_key(rng, now, tenant_id, rng.choice(user_ids))
                          for _ in range(user_count // 2 + 3)])
    _add(data, sessions, _sessions(rng, now, tenant_id, user_ids,
                                   used["max_concurrent_connections"]))
    agent_ids = _add(data, agents, _named(rng, now, tenant_id, "agent", used["max_agents"]))
    channel_ids = _add(data, channels, _named(rng, now, tenant_id, "channel",
                                              max(1, used["max_channels"])))
    _add(data, messages, _messages(rng, now, tenant_id, channel_ids, agent_ids,
                                   used["max_messages_per_day"]))
    _add(data, api_calls, _api_calls(rng, now, tenant_id, used["max_api_calls_per_day"]))
    _add(data, documents, _documents(rng, now, tenant_id, used["max_storage_bytes"]))


def _add(data, table: Table, rows: list[dict]) -> list[int]:
    """Append rows with the next ids of `table`; return those ids."""
    start = len(data[table]) + 1
    for offset, row in enumerate(rows):
        row["id"] = start + offset
    data[table].extend(rows)
    return [row["id"] for row in rows]


def _past(rng, now, days: float) -> datetime:
    return now - timedelta(seconds=rng.uniform(1, days * 86400))


def _today(rng, now) -> datetime:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + (now - midnight) * rng.random()


def _before_today(rng, now) -> datetime:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(seconds=rng.uniform(1, HISTORY_DAYS * 86400))


def _api_key(rng, now, tenant_id, user_id) -> dict:
    kind = rng.choices(("active", "revoked", "expired", "forever"), (5, 2, 1, 2))[0]
    created = _past(rng, now, 200)
    return {"tenant_id": tenant_id, "user_id": user_id,
            "key_prefix": f"vk_{rng.getrandbits(32):08x}", "created_at": created,
            "expires_at": {"expired": now - timedelta(days=rng.randint(1, 30)),
                           "forever": None}.get(kind, now + timedelta(days=rng.randint(1, 90))),
            "revoked_at": now - timedelta(hours=rng.randint(1, 500)) if kind == "revoked" else None}


def _sessions(rng, now, tenant_id, user_ids, active: int) -> list[dict]:
    """`active` open sessions, plus about half as many ended or expired ones."""
    kinds = ["active"] * active + [rng.choice(("ended", "expired")) for _ in range(active // 2 + 2)]
    rows = []
    for kind in kinds:
        created = now - timedelta(minutes=rng.randint(10, 600))
        expires = (now - timedelta(minutes=rng.randint(1, 9)) if kind == "expired"
                   else now + timedelta(hours=rng.randint(1, 12)))
        rows.append({"tenant_id": tenant_id, "user_id": rng.choice(user_ids),
                     "created_at": created, "expires_at": expires,
                     "ended_at": created + timedelta(minutes=5) if kind == "ended" else None})
    return rows


def _named(rng, now, tenant_id, kind: str, count: int) -> list[dict]:
    """Agents or channels: about four in five active (all of them for the first one)."""
    return [{"tenant_id": tenant_id, "name": f"{kind}-{i + 1}",
             "is_active": i == 0 or rng.random() < 0.8, "created_at": _past(rng, now, 180)}
            for i in range(count)]


def _messages(rng, now, tenant_id, channel_ids, agent_ids, today: int) -> list[dict]:
    """`today` messages since UTC midnight, and half as many again on earlier days."""
    def message(created):
        direction = rng.choice(("in", "out"))
        return {"tenant_id": tenant_id, "channel_id": rng.choice(channel_ids),
                "agent_id": rng.choice(agent_ids) if agent_ids and direction == "out" else None,
                "direction": direction, "size_bytes": rng.randint(64, 8192), "created_at": created}
    return ([message(_today(rng, now)) for _ in range(today)]
            + [message(_before_today(rng, now)) for _ in range(today // 2)])


def _api_calls(rng, now, tenant_id, today: int) -> list[dict]:
    def call(created):
        return {"tenant_id": tenant_id, "endpoint": rng.choice(ENDPOINTS),
                "status_code": rng.choices((200, 201, 400, 429, 500), (80, 10, 5, 3, 2))[0],
                "created_at": created}
    return ([call(_today(rng, now)) for _ in range(today)]
            + [call(_before_today(rng, now)) for _ in range(today // 2)])


def _documents(rng, now, tenant_id, total_bytes: int) -> list[dict]:
    """Documents whose sizes add up to exactly `total_bytes`."""
    count = rng.randint(5, 20)
    cuts = sorted(rng.randint(0, total_bytes) for _ in range(count - 1))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, total_bytes])]
    return [{"tenant_id": tenant_id, "name": f"document-{i + 1}.pdf", "size_bytes": size,
             "created_at": _past(rng, now, 90)} for i, size in enumerate(sizes)]
