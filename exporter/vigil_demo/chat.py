"""Chat: a message posted to a channel is stored (direction "in"), queued in the inbox, and
answered by the responder agent in the background (direction "out", with the agent's id)."""
from __future__ import annotations

import logging
import random

from vigil_exporter.logs import describe_error
from vigil_instrument import request_id_var, tenant_scope

from .agents import AgentRuntime, AllToolsFailed
from .inbox import Inbox
from .llm import LLMError
from .quotas import Quotas
from .storage import Store

log = logging.getLogger("vigil.demo")


class Chat:
    def __init__(self, store: Store, quotas: Quotas, inbox: Inbox, agents: AgentRuntime,
                 seed: int = 42):
        self.store = store
        self.quotas = quotas
        self.inbox = inbox
        self.agents = agents
        self.rng = random.Random(f"{seed}:chat")
        self._agent_ids: dict[int, list[int]] = {}

    async def post(self, tenant_id: int, channel_id: int, text: str, tenant: str | None = None) -> int | None:
        """Store and queue a message; None when the channel is not the tenant's. Both the
        message and its answer count against the daily limit, so two are reserved."""
        if not await self.store.channel_exists(tenant_id, channel_id):
            return None
        self.quotas.take(tenant_id, "messages", 2)
        message_id = await self.store.add_message(tenant_id, channel_id, "in", len(text.encode()))
        await self.inbox.put({"tenant_id": tenant_id, "channel_id": channel_id, "text": text,
                              "message_id": message_id, "request_id": request_id_var.get(),
                              "tenant": tenant})
        return message_id

    async def answer(self, item: dict) -> None:
        """The worker's handler: run the responder and store its reply."""
        token = request_id_var.set(item.get("request_id"))
        try:
            tenant_id = item["tenant_id"]
            try:
                with tenant_scope(item.get("tenant")):
                    reply = await self.agents.run("responder", item["text"])
            except (LLMError, AllToolsFailed) as exc:  # counted by the agent metrics
                log.info("no answer: %s", describe_error(exc))
                return
            await self.store.add_message(tenant_id, item["channel_id"], "out",
                                         len(reply.text.encode()),
                                         agent_id=await self._agent_id(tenant_id))
        finally:
            request_id_var.reset(token)

    async def _agent_id(self, tenant_id: int) -> int | None:
        ids = self._agent_ids.get(tenant_id)
        if ids is None:
            ids = self._agent_ids[tenant_id] = await self.store.active_agent_ids(tenant_id)
        return self.rng.choice(ids) if ids else None
