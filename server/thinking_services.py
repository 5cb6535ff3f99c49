"""The server-wide parts of the thinking stage: personas, knowledge base, user memory, tools.

Loaded once at start-up next to the engines. Each part is optional and fails soft:
no persona directory means no personas; no knowledge base file means answers
without passages; a memory database that cannot be opened is reported to each
session that asks for it, and the conversation goes on without memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.bundled_files import bundled_dir
from server.config import Config
from server.stage_executor import StageExecutor
from server.task_group import OwnedTasks
from thinking.personas import PersonaLibrary

log = logging.getLogger(__name__)

BUNDLED_PERSONAS = bundled_dir("personas")


@dataclass
class ThinkingServices:
    personas: PersonaLibrary
    knowledge: Any | None = None
    """A ``thinking.knowledge_base.KnowledgeBase``, or None when no documents were added."""
    knowledge_version: str | None = None
    """The knowledge base's content version as loaded (``/readyz``: every worker should report the same)."""
    memory: Any | None = None
    """A ``thinking.user_memory.UserMemory``, or None when memory is off."""
    tools: Any | None = None
    """A ``thinking.tool_registry.ToolRegistry`` of server-side tools, or None."""
    executor: StageExecutor = field(default_factory=lambda: StageExecutor("thinking"))
    """Knowledge and memory calls block (SQLite, the embedder): they run here, never on the loop."""
    background: OwnedTasks = field(default_factory=lambda: OwnedTasks(name="background jobs", limit=8))
    """Work that outlives a session (its conversation summary), owned by the server so that
    shutdown can cancel it; at most 8 at once, further ones are dropped with a log line."""

    async def aclose(self) -> None:
        await self.background.aclose(grace_s=5.0)
        for part in (self.knowledge, self.memory):
            if part is not None:
                part.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


def personas_dir(config: Config) -> Path:
    return Path(config.assistant.personas_dir) if config.assistant.personas_dir else BUNDLED_PERSONAS


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
            services.knowledge_version = services.knowledge.version()
            log.info("knowledge base %s: %d sources, version %s", kb_path, len(services.knowledge.sources()),
                     services.knowledge_version)
        except KnowledgeBaseError as exc:
            log.error("knowledge base %s not used: %s", kb_path, exc)
    else:
        log.info("no knowledge base at %s (tingshuo kb add PATH... makes one)", kb_path)
    services.tools = _server_tools(config, services)
    if config.memory.enabled:
        services.memory = open_memory(config)
    return services


def open_memory(config: Config) -> Any:
    """The user memory store ``state.backend`` names: SQLite (opened on first use), or PostgreSQL,
    connected and migrated now (a ``MemoryStoreError`` naming the server stops the start)."""
    from thinking.user_memory import MemoryParams, UserMemory

    params = MemoryParams(max_facts_per_user=config.memory.max_facts_per_user)
    if config.state.backend == "redis+postgres":
        from server.shared_state.postgres_memory import PostgresUserMemory

        memory = PostgresUserMemory(url=config.state.postgres_url, params=params,
                                    call_timeout_s=config.state.call_timeout_s)
        applied = memory.open()
        log.info("user memory in %s%s", memory.where, f" (applied migrations {applied})" if applied else "")
        return memory
    return UserMemory(path=config.memory.path, params=params)
