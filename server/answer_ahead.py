"""Work on the next answer before it is asked for; every piece of it a guess.

- An answer started on the pause's transcript before the turn is confirmed
  (:mod:`server.preemptive_answer`, LiveKit's preemptive generation): the response
  takes it over if its prompt comes out the same, else it is aborted in the engine.
- The next prompt's head read into the LLM's cache when an answer ends or a session
  starts (:mod:`server.prompt_warmup`), so that answer reads only the user's words.

Both are dropped or overwritten as soon as the conversation goes another way; a wrong
guess costs only the CPU it used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from models.interfaces import ChatMessage, PromptCachingChatModel
from server.config import Config
from server.conversation import Conversation
from server.engines import Engines
from server.preemptive_answer import Outcome, PreemptiveAnswer, PreparedRequest
from server.prompt_warmup import read_prompt_head
from server.response_planning import ResponseRequest, ToolChoice, plan_response
from server.session_settings import SessionSettings
from server.session_thinking import SessionThinking

PromptFor = Callable[[ResponseRequest, ToolChoice, list[ChatMessage], str | None],
                     Awaitable[tuple[list[ChatMessage], str]]]
"""The LLM's messages (and citations line) for an answer to a history, in a language."""


class AheadHost(Protocol):
    config: Config
    engines: Engines
    settings: SessionSettings
    conversation: Conversation
    thinking: SessionThinking

    @property
    def closed(self) -> bool: ...

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any] | None: ...


class AnswerAhead:
    def __init__(self, host: AheadHost, *, answering: Callable[[], bool], audible: Callable[[], bool],
                 prompt_for: PromptFor, tool_choice: Callable[[], ToolChoice],
                 language: Callable[[], str | None]) -> None:
        self._host = host
        self._answering = answering
        self._audible = audible
        self._prompt_for = prompt_for
        self._tool_choice = tool_choice
        self._language = language
        self._preemption: PreemptiveAnswer | None = None
        """An answer started on the transcript so far, before the turn's end (:meth:`preempt`)."""
        self._warming: asyncio.Task[None] | None = None
        """The next prompt's head being read into the LLM's cache (:meth:`warm_next_prompt`)."""

    # -- preemptive answers ---------------------------------------------------------------
    def preempt(self, user_text: str, language: str | None, on_outcome: Outcome | None = None) -> bool:
        """Starts the answer to ``user_text`` before the user's turn is confirmed; the next
        response adopts it if its prompt comes out the same. Only when nothing is being said or
        prepared: it never competes with an answer."""
        self.discard()
        host = self._host
        if self._answering() or self._audible() or host.closed:
            return False
        settings_language = host.settings.transcription_language or language or self._language()

        async def prepare() -> PreparedRequest | None:
            request = ResponseRequest.from_settings(host.settings, {}, host.config)
            tools = self._tool_choice()
            history = [*host.conversation.chat_history(), ChatMessage(role="user", content=user_text)]
            messages, _ = await self._prompt_for(request, tools, history, settings_language)
            plan = plan_response(request, config=host.config, tools=tools, messages=messages, fixed_text=None,
                                 filler_text="")
            return PreparedRequest(plan.messages, plan.generation)

        answer = PreemptiveAnswer(user_text=user_text, prepare=prepare, llm=host.engines.llm, on_outcome=on_outcome)
        answer.task = host.spawn(answer.run(), name="preemptive-answer")
        if answer.task is None:
            return False
        self._preemption = answer
        return True

    def take(self) -> PreemptiveAnswer | None:
        """The answer started ahead, for the response about to run (it adopts or discards it)."""
        preemption, self._preemption = self._preemption, None
        return preemption

    def discard(self) -> None:
        """The user went on (or the turn changed): the speculative answer is aborted in the engine."""
        preemption = self.take()
        if preemption is not None:
            preemption.discard()

    # -- the next prompt ------------------------------------------------------------------
    def warm_next_prompt(self) -> None:
        """Reads the next turn's prompt up to the user's words into the LLM's cache: after an
        answer, while the user listens to it, and when the session starts or its instructions
        change, before the user's first words."""
        host, llm = self._host, self._host.engines.llm
        if not isinstance(llm, PromptCachingChatModel) or host.closed or self._answering():
            return
        if self._warming is not None:
            self._warming.cancel()
        self._warming = host.spawn(read_prompt_head(
            llm, host.thinking, request=ResponseRequest.from_settings(host.settings, {}, host.config),
            tools=self._tool_choice(), history=host.conversation.chat_history(), language=self._language(),
            config=host.config), name="prompt-warmup")
