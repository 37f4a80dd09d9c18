"""The demo's agents and tools: a planner that hands tasks to a researcher (tools + a local
model) and a draft request to a writer, and a responder that answers chat messages.

Every agent run is recorded with `track_agent`, every hand-over between agents with
`record_agent_message` + `track_message`, every tool call with `track_tool`, every model call by
the fake provider with `track_llm`. A failing tool is retried once and then skipped (the
researcher carries on); a failing model call fails the agent, and the agent that delegated to it.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from vigil_instrument import Metrics, record_agent_message, track_agent, track_message, track_tool

from .llm import FakeLLM

AGENTS = ("planner", "researcher", "writer", "responder")
TOOLS = ("web_search", "vector_search", "calculator", "code_runner")
MESSAGE_TYPES = ("task", "result", "draft_request", "draft", "escalation")
# (source, target, message type) of every hand-over the agents make.
EDGES = (
    ("planner", "researcher", "task"),
    ("researcher", "planner", "result"),
    ("planner", "writer", "draft_request"),
    ("writer", "planner", "draft"),
    ("responder", "planner", "escalation"),
)
# Median seconds of each tool, and its failure rate.
TOOL_PROFILE = {"web_search": (0.12, 0.04), "vector_search": (0.03, 0.01),
                "calculator": (0.002, 0.005), "code_runner": (0.25, 0.06)}


class ToolError(Exception):
    pass


class AllToolsFailed(Exception):
    """The researcher had no tool result at all."""


@dataclass
class AgentResult:
    agent: str
    text: str
    steps: int


class AgentRuntime:
    def __init__(self, llm: FakeLLM, metrics: Metrics, seed: int = 42, latency_scale: float = 1.0):
        self.llm = llm
        self.metrics = metrics
        self.rng = random.Random(f"{seed}:agents")
        self.latency_scale = latency_scale
        self._run = {"planner": self.planner, "researcher": self.researcher,
                     "writer": self.writer, "responder": self.responder}

    async def run(self, agent: str, task: str) -> AgentResult:
        """Run one agent by name (KeyError for an unknown one)."""
        return await self._run[agent](task)

    async def _handover(self, source: str, target: str, message_type: str, payload: str, handler):
        """Send `payload` from one agent to another and time its processing."""
        record_agent_message(source, target, message_type, len(payload.encode()),
                             context_tokens=len(payload) // 4 + self.rng.randint(200, 4000),
                             retries=1 if self.rng.random() < 0.03 else 0, metrics=self.metrics)
        async with track_message(message_type, source_agent=source, target_agent=target,
                                 metrics=self.metrics):
            return await handler(payload)

    async def planner(self, task: str) -> AgentResult:
        async with track_agent("planner", metrics=self.metrics):
            plan = await self.llm.complete("gpt-4o-mini", f"Plan the steps for: {task}", 120)
            subtasks = [f"{task} (part {i + 1})" for i in range(self.rng.randint(1, 3))]
            findings = []
            for subtask in subtasks:
                found = await self._handover("planner", "researcher", "task", subtask,
                                             self.researcher)
                findings.append(found.text)
                record_agent_message("researcher", "planner", "result", len(found.text.encode()),
                                     metrics=self.metrics)
            brief = plan.text + "\n" + "\n".join(findings)
            draft = await self._handover("planner", "writer", "draft_request", brief, self.writer)
            record_agent_message("writer", "planner", "draft", len(draft.text.encode()),
                                 metrics=self.metrics)
            return AgentResult("planner", draft.text, 2 + len(subtasks))

    async def researcher(self, task: str) -> AgentResult:
        async with track_agent("researcher", metrics=self.metrics):
            tools = self.rng.sample(("web_search", "vector_search", "code_runner"),
                                    self.rng.randint(1, 2))
            results = []
            for tool in tools:
                result = await self._tool_with_retry(tool, task)
                if result is not None:
                    results.append(result)
            if not results:
                raise AllToolsFailed(f"no tool answered for {task!r}")
            summary = await self.llm.complete("llama-3-8b", f"Summarise: {' '.join(results)}", 150)
            return AgentResult("researcher", summary.text, len(tools) + 1)

    async def writer(self, brief: str) -> AgentResult:
        async with track_agent("writer", metrics=self.metrics):
            # Mostly the small model; one draft in ten gets the big one.
            model = "gpt-4o" if self.rng.random() < 0.1 else "claude-3-5-haiku"
            draft = await self.llm.complete(model, f"Write a short answer from: {brief}", 250)
            return AgentResult("writer", draft.text, 1)

    async def responder(self, message: str) -> AgentResult:
        async with track_agent("responder", metrics=self.metrics):
            if self.rng.random() < 0.2:
                await self._tool_with_retry("calculator", message)
            reply = await self.llm.complete("gpt-4o-mini", f"Answer the user: {message}", 120)
            steps = 1
            if self.rng.random() < 0.05:  # hard question: hand it to the planner
                escalated = await self._handover("responder", "planner", "escalation", message,
                                                 self.planner)
                return AgentResult("responder", escalated.text, steps + escalated.steps)
            return AgentResult("responder", reply.text, steps)

    async def _tool_with_retry(self, tool: str, query: str) -> str | None:
        for _ in range(2):
            try:
                return await self.tool(tool, query)
            except ToolError:
                continue
        return None

    async def tool(self, tool: str, query: str) -> str:
        median, failure_rate = TOOL_PROFILE[tool]
        with track_tool(tool, metrics=self.metrics):
            await asyncio.sleep(median * self.rng.lognormvariate(0, 0.6) * self.latency_scale)
            if self.rng.random() < failure_rate:
                raise ToolError(f"{tool} failed")
            return f"{tool}: {len(query)} chars of findings"
