"""What every Redis feature reads through: the instance's client and this round's INFO, and
the replies that mean "not available" (a command renamed away, or an ACL without it)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vigil_exporter.collectors.features import Feature


@dataclass
class RedisSource:
    client: Any  # redis.asyncio.Redis, decode_responses=True
    info: dict  # INFO (the default sections), already read by the collector this round
    _commandstats: dict | None = field(default=None, repr=False)

    @property
    def version(self) -> tuple[int, ...]:
        return tuple(int(p) for p in str(self.info.get("redis_version", "0")).split(".")
                     if p.isdigit())

    async def commandstats(self) -> dict[str, dict]:
        """{command: its INFO commandstats entry}, read at most once per round."""
        if self._commandstats is None:
            stats = await self.client.info("commandstats")
            self._commandstats = {name.removeprefix("cmdstat_"): entry
                                  for name, entry in stats.items() if isinstance(entry, dict)}
        return self._commandstats


class RedisFeature(Feature):
    async def read(self, source: RedisSource):
        raise NotImplementedError

    def not_available(self, exc: Exception) -> str | None:
        from redis.exceptions import NoPermissionError

        message = str(exc)
        if isinstance(exc, NoPermissionError) or message.startswith("NOPERM"):
            return f"the exporter's Redis user lacks a permission ({message})"
        if "unknown command" in message:
            return f"the server does not know a command this needs ({message})"
        return None
