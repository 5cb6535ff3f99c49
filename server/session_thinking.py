"""One session's thinking: what it remembers of its user, what it looks up, and its history window.

The session calls :meth:`SessionThinking.prepare` when an answer starts and gets the
prompt. The knowledge search and the memory lookups run on the thinking executor
with a deadline, so a slow disk or embedder delays the first word by at most that
deadline and then the answer goes ahead without them. Summarising old turns never
sits on an answer's path: it starts after an answer, and is cancelled the moment
the user speaks again (on the CPU the answer needs the cores; llama-server runs summaries on a slot
of their own, the in-process engine has one context for everything).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from models.interfaces import ChatMessage, ChatModel
from server.config import Config
from server.stage_executor import StageClosed, StageTimeout, run_with_deadline
from server.thinking_services import ThinkingServices
from thinking.history_summariser import HistorySummariser, SummaryParams, summarise
from thinking.memory_intents import ForgetIntent, RememberIntent, detect_memory_intent
from thinking.prompt_assembly import PromptParts, assemble, citations_line
from server.apologies import memory_reply

log = logging.getLogger(__name__)

MEMORY_TIMEOUT_S = 1.0
RELATIVE_PASSAGE_SCORE = 0.75
"""Passages scoring below this share of the best one are left out: they rarely help a small
model and their citations would mislead (measured on the test questions: the runner-up from
another document scores 0.55-0.7 of the answer's passage)."""
MIN_TURNS_TO_SUMMARISE = 2
"""A session with fewer user turns leaves no summary for the next one (nothing worth recalling)."""

ReportError = Callable[[str, str], Awaitable[None]]
"""(code, message): the session sends an ``error`` event and goes on."""


@dataclass(frozen=True)
class PreparedPrompt:
    messages: list[ChatMessage]
    citations: str
    """The sources of the passages given to the LLM, for the transcript (not spoken)."""


class SessionThinking:
    def __init__(self, *, services: ThinkingServices, llm: ChatModel, config: Config, session_id: str,
                 report: ReportError) -> None:
        self._services = services
        self._llm = llm
        self._config = config
        self._session_id = session_id
        self._report = report
        self.user_id: str | None = None
        self._memory_text = ""
        self._confirmation: str | None = None
        self._memory_down = False
        """The last memory call failed. Each turn tries again: one slow call does not turn memory off."""
        self._summariser = HistorySummariser(llm=llm, params=SummaryParams(timeout_s=config.memory.summary_timeout_s))

    @property
    def summary(self) -> str:
        return self._summariser.summary

    # -- memory -----------------------------------------------------------------------
    async def _memory_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A memory call, or None when memory is off or failing (an error event when it goes down;
        the deadline counts the call's own run time, not its wait behind knowledge searches)."""
        memory = self._services.memory
        if memory is None or self.user_id is None:
            return None
        from thinking.user_memory import MemoryStoreError

        try:
            result = await run_with_deadline(self._services.executor, fn, *args, timeout_s=MEMORY_TIMEOUT_S)
        except (MemoryStoreError, StageTimeout, StageClosed) as exc:
            log.warning("memory unavailable: %s", exc)
            if not self._memory_down:
                self._memory_down = True
                await self._report("memory_unavailable", f"long-term memory is unavailable ({exc}); "
                                   "the conversation goes on without it")
            return None
        self._memory_down = False
        return result

    async def start(self, user_id: str | None) -> None:
        """Recall what the user asked it to remember and earlier conversations' summaries."""
        self.user_id = user_id
        memory = self._services.memory
        if memory is None or user_id is None:
            return
        recollection = await self._memory_call(lambda: memory.recall(user_id, limit=self._config.memory.recall_facts))
        if recollection is not None:
            self._memory_text = recollection.prompt_text()

    async def on_user_words(self, text: str, language: str | None) -> None:
        """An explicit "remember …" / "forget …" is carried out at once, and the answer is a fixed
        confirmation (:meth:`take_confirmation`): faster than the LLM, and a small model asked
        to confirm often does not."""
        memory = self._services.memory
        intent = detect_memory_intent(text)
        if intent is None:
            return
        if memory is None or self.user_id is None:
            self._confirmation = memory_reply("no_memory", language)
            return
        if isinstance(intent, RememberIntent):
            fact = await self._memory_call(memory.remember, self.user_id, intent.text)
            self._confirmation = memory_reply("remembered" if fact is not None else "failed", language)
        elif isinstance(intent, ForgetIntent):
            if intent.everything:
                removed = await self._memory_call(memory.delete_user, self.user_id)
            else:
                removed = await self._memory_call(memory.forget, self.user_id, intent.text)
            if removed is None:
                self._confirmation = memory_reply("failed", language)
            else:
                self._memory_text = ""
                self._confirmation = memory_reply("forgot" if removed else "nothing_to_forget", language)
        recollection = await self._memory_call(lambda: memory.recall(self.user_id, limit=self._config.memory.recall_facts))
        if recollection is not None:
            self._memory_text = recollection.prompt_text()

    def take_confirmation(self) -> str | None:
        """The reply to the last memory request, once."""
        reply, self._confirmation = self._confirmation, None
        return reply

    # -- answers ----------------------------------------------------------------------
    async def _passages(self, query: str) -> tuple:
        kb = self._services.knowledge
        if kb is None or not query.strip():
            return ()
        knowledge = self._config.knowledge
        try:
            found = await run_with_deadline(self._services.executor, lambda: kb.search(
                query, k=knowledge.top_k, min_score=knowledge.min_score), timeout_s=knowledge.search_timeout_s)
            best = max((p.score for p in found), default=0.0)
            return tuple(p for p in found if p.score >= RELATIVE_PASSAGE_SCORE * best)
        except StageTimeout:
            log.warning("knowledge search took over %g s; answering without it", knowledge.search_timeout_s)
        except Exception as exc:  # noqa: BLE001 (a broken index must not cost the answer)
            log.warning("knowledge search failed: %s", exc)
            await self._report("knowledge_unavailable", f"the knowledge base could not be searched: {exc}")
        return ()

    async def _memory_for(self, query: str) -> str:
        """What was recalled at the start, plus older facts that match this question (the start
        recalls only the newest ``memory.recall_facts``)."""
        memory = self._services.memory
        if memory is None or self.user_id is None or not query.strip():
            return self._memory_text
        user_id = self.user_id
        facts = await self._memory_call(lambda: memory.relevant(user_id, query, k=3)) or []
        extra = [f.text for f in facts if f.text not in self._memory_text]
        if not extra:
            return self._memory_text
        lines = "\n".join(f"- {text}" for text in extra)
        return f"{self._memory_text}\n\nOther things the user asked you to remember that may matter now:\n{lines}".strip()

    async def prepare(self, *, instructions: str, history: Sequence[ChatMessage], query: str,
                      language: str | None) -> PreparedPrompt:
        self._summariser.cancel()  # the LLM is needed for the answer now
        passages = await self._passages(query)
        parts = PromptParts(instructions=instructions, memory=await self._memory_for(query),
                            passages=passages, language=language)
        window = assemble(parts, history, budget_tokens=self._config.memory.history_token_budget,
                          summary=self._summariser.summary)
        self._dropped = window.dropped
        return PreparedPrompt(messages=list(window.messages), citations=citations_line(passages))

    def prompt_head(self, *, instructions: str, history: Sequence[ChatMessage],
                    language: str | None) -> list[ChatMessage]:
        """The next answer's prompt as far as it is known before the user speaks: ``history`` and an
        empty user turn. A guess to warm the LLM's cache with, so it searches nothing (that needs the
        question) and leaves the summary job and the dropped turns alone."""
        parts = PromptParts(instructions=instructions, memory=self._memory_text, passages=(), language=language)
        window = assemble(parts, [*history, ChatMessage(role="user", content="")],
                          budget_tokens=self._config.memory.history_token_budget, summary=self._summariser.summary)
        return list(window.messages)

    def after_answer(self) -> None:
        """Summarise what fell out of the window while the user listens to the answer."""
        if getattr(self, "_dropped", ()):
            self._summariser.request(self._dropped)

    def user_started_speaking(self) -> None:
        self._summariser.cancel()

    # -- end --------------------------------------------------------------------------
    async def aclose(self, history: Sequence[ChatMessage]) -> None:
        """Cancels this session's own work; the summary for the next conversation with this user is
        written by a server-owned job, since the session is gone by the time it is ready."""
        await self._summariser.aclose()
        memory = self._services.memory
        user_turns = sum(m.role == "user" for m in history)
        if memory is None or self.user_id is None or user_turns < MIN_TURNS_TO_SUMMARISE or self._memory_down:
            return
        self._services.background.spawn(
            _store_summary(self._services, self._llm, list(history), self.user_id, self._session_id,
                           SummaryParams(timeout_s=self._config.memory.summary_timeout_s)),
            name=f"summary-{self._session_id}")


async def _store_summary(services: ThinkingServices, llm: ChatModel, history: list[ChatMessage], user_id: str,
                         session_id: str, params: SummaryParams) -> None:
    text = await summarise(llm, [m for m in history if m.role in ("user", "assistant") and m.content],
                           params=params)
    if text.strip():
        await run_with_deadline(services.executor, services.memory.add_summary, user_id, text, session_id,
                                timeout_s=MEMORY_TIMEOUT_S * 5)
        log.info("stored a conversation summary for the next session of this user")
