"""The server-wide parts of the thinking stage: personas, knowledge base, user memory, tools.

Loaded once at start-up next to the engines. Each part is optional and fails soft:
no persona directory means no personas; no knowledge base file means answers
without passages; a memory database that cannot be opened is reported to each
session that asks for it, and the conversation goes on without memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.config import Config
from server.stage_executor import StageExecutor
from thinking.personas import PersonaLibrary

log = logging.getLogger(__name__)

REPO_PERSONAS = Path(__file__).resolve().parent.parent / "personas"


@dataclass
class BackgroundJobs:
    """Work that outlives a session (its conversation summary), owned by the server so that
    shutdown can cancel it; at most ``limit`` at once, further ones are dropped with a log line."""

    limit: int = 8
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Awaitable[Any], name: str) -> bool:
        if len(self.tasks) >= self.limit:
            log.warning("too many background jobs; %s dropped", name)
            coro.close()  # type: ignore[attr-defined]
            return False
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("background job %s failed: %s", task.get_name(), exc)

    async def aclose(self, grace_s: float = 5.0) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=grace_s)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@dataclass
class ThinkingServices:
    personas: PersonaLibrary
    knowledge: Any | None = None
    """A ``thinking.knowledge_base.KnowledgeBase``, or None when no documents were added."""
    memory: Any | None = None
    """A ``thinking.user_memory.UserMemory``, or None when memory is off."""
    tools: Any | None = None
    """A ``thinking.tool_registry.ToolRegistry`` of server-side tools, or None."""
    executor: StageExecutor = field(default_factory=lambda: StageExecutor("thinking"))
    """Knowledge and memory calls block (SQLite, the embedder): they run here, never on the loop."""
    background: BackgroundJobs = field(default_factory=BackgroundJobs)

    async def aclose(self) -> None:
        await self.background.aclose()
        for part in (self.knowledge, self.memory):
            if part is not None:
                part.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


def personas_dir(config: Config) -> Path:
    return Path(config.assistant.personas_dir) if config.assistant.personas_dir else REPO_PERSONAS


def _server_tools(config: Config, services: ThinkingServices) -> Any:
    from thinking.builtin_tools import clock_tool, knowledge_tool
    from thinking.tool_registry import ToolRegistry

    registry = ToolRegistry([clock_tool(default_timezone=config.assistant.timezone)])
    kb = services.knowledge
    if kb is not None:
        registry.register(knowledge_tool(lambda q: kb.search(q, k=config.knowledge.top_k,
                                                             min_score=config.knowledge.min_score),
                                         executor=services.executor))
    return registry


def load_thinking(config: Config) -> ThinkingServices:
    """Blocking (it may load the embedding model): call it before the server starts serving."""
    services = ThinkingServices(personas=PersonaLibrary.from_directory(personas_dir(config)))
    log.info("personas: %s", ", ".join(services.personas.ids()) or "none")
    kb_path = Path(config.knowledge.path)
    if kb_path.is_file():
        from models.e5_embedder import E5Embedder
        from thinking.knowledge_base import KnowledgeBase, KnowledgeBaseError

        try:
            services.knowledge = KnowledgeBase.open(kb_path, embedder=E5Embedder.load())
            log.info("knowledge base %s: %d sources", kb_path, len(services.knowledge.sources()))
        except KnowledgeBaseError as exc:
            log.error("knowledge base %s not used: %s", kb_path, exc)
    else:
        log.info("no knowledge base at %s (tingshuo kb add PATH... makes one)", kb_path)
    services.tools = _server_tools(config, services)
    if config.memory.enabled:
        from thinking.user_memory import MemoryParams, UserMemory

        services.memory = UserMemory(path=config.memory.path,
                                     params=MemoryParams(max_facts_per_user=config.memory.max_facts_per_user))
    return services
