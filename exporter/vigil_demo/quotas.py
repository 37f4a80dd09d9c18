"""Plan limits, enforced as a SaaS would: a request that would take a tenant past a limit of
its plan gets 429. Usage is read from the database every few seconds (the same counts the
exporter's business queries make) and counted up locally in between, so a check costs nothing.
"""
from __future__ import annotations

import time

from .storage import LIMIT_COLUMNS, Store

# Kinds that are checked before a write, and the plan limit of each.


class LimitReached(Exception):
    def __init__(self, kind: str):
        super().__init__(f"plan limit reached: {LIMIT_COLUMNS[kind]}")
        self.kind = kind
        self.limit = LIMIT_COLUMNS[kind]


class Quotas:
    def __init__(self, store: Store, refresh_seconds: float = 10.0):
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.limits: dict[int, dict[str, int]] = {}
        self.used: dict[int, dict[str, int]] = {}
        self._refreshed = 0.0

    async def refresh(self) -> None:
        tenants = await self.store.tenants()
        self.limits = {t["id"]: {kind: t[column] for kind, column in LIMIT_COLUMNS.items()}
                       for t in tenants}
        self.used = await self.store.usage()
        self._refreshed = time.monotonic()

    def stale(self) -> bool:
        return time.monotonic() - self._refreshed > self.refresh_seconds

    def check(self, tenant_id: int, kind: str, amount: int = 1) -> None:
        """Raise LimitReached if `amount` more of `kind` would exceed the tenant's plan."""
        limit = self.limits.get(tenant_id, {}).get(kind)
        if limit is not None and self.used.get(tenant_id, {}).get(kind, 0) + amount > limit:
            raise LimitReached(kind)

    def add(self, tenant_id: int, kind: str, amount: int = 1) -> None:
        usage = self.used.setdefault(tenant_id, {})
        usage[kind] = usage.get(kind, 0) + amount

    def take(self, tenant_id: int, kind: str, amount: int = 1) -> None:
        self.check(tenant_id, kind, amount)
        self.add(tenant_id, kind, amount)

    def report(self, tenant_id: int) -> dict:
        """Usage against each limit, for the usage endpoint."""
        limits = self.limits.get(tenant_id, {})
        used = self.used.get(tenant_id, {})
        return {kind: {"used": used.get(kind, 0), "limit": limit,
                       "ratio": round(used.get(kind, 0) / limit, 4) if limit else None}
                for kind, limit in limits.items()}
