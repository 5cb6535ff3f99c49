"""The embedded chat model: a managed ``llama-server`` behind the OpenAI-compatible adapter.

The requests go through :class:`models.openai_chat.OpenAIChatModel`, the same adapter a vLLM
server gets, so streaming, tool calls and cancellation are one code path for the embedded
and the production engines. What only a llama-server we run ourselves allows is added here:
each request names its slot (``id_slot``, from :class:`models.llama_slots.SlotRouter`) with
``cache_prompt``, so a conversation's prompt prefix stays cached on its slot.

Closing the stream (barge-in, a deadline) closes the HTTP response; llama-server notices the
closed connection and stops generating on that slot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from models.interfaces import ChatMessage, GenerationParams, ToolCall
from models.llama_chat import ANSWER_FROM_TOOL_RESULTS
from models.llama_server_process import LlamaServerError, LlamaServerParams, LlamaServerProcess
from models.llama_slots import SlotRouter
from models.llama_turn_judge import end_of_message_probability
from models.openai_chat import OpenAIChatModel, OpenAIChatParams


@dataclass(frozen=True, slots=True)
class LlamaServerChatParams:
    model_name: str
    """Reported as ``model`` in requests; llama-server serves its one model whatever the name."""
    ready_timeout_s: float = 20.0
    """How long a request waits for the server (starting, or restarting after a crash) before it fails."""
    tool_result_nudge: str = ANSWER_FROM_TOOL_RESULTS
    """As for the in-process engine (models/llama_chat.py): the same 0.5B model needs it."""


class LlamaServerChatModel:
    """A :class:`models.interfaces.ChatModel`; :meth:`astart` with the event loop, :meth:`aclose` at shutdown."""

    def __init__(self, *, server: LlamaServerParams, params: LlamaServerChatParams) -> None:
        self.process = LlamaServerProcess(server)
        self.params = params
        # The last slot is the turn judge's (models/llama_turn_judge.py): its short prompt, the same
        # head every time, stays cached there, and it never waits behind a summary or an answer.
        self.judge_slot = server.slots - 1 if server.slots >= 3 else None
        self.slots = SlotRouter(slots=server.slots - 1 if self.judge_slot is not None else server.slots)
        self._chat = OpenAIChatModel(params=OpenAIChatParams(base_url="", model=params.model_name, keep_alive=False))

    @property
    def ready(self) -> bool:
        """The server is up and healthy (``/readyz`` says not ready while it starts or restarts)."""
        return self.process.ready

    async def astart(self) -> None:
        self.process.start()

    async def aclose(self) -> None:
        await self._chat.aclose()
        await self.process.aclose()

    async def prefill(self, messages: Sequence[ChatMessage], params: GenerationParams) -> None:
        """Reads ``messages`` into the conversation's slot (:class:`models.interfaces.PromptCachingChatModel`).

        One token is asked for and dropped: llama-server samples it from the prompt's last logits
        and does not feed it back. The slot then holds the rendered ``messages``, and a next request
        whose prompt starts the same way reads only what follows the common part."""
        stream = self.stream_chat(messages, dataclasses.replace(params, max_tokens=1))
        async with aclosing(stream):
            async for _ in stream:
                pass

    async def end_of_message_probability(self, text: str, *, timeout_s: float) -> float:
        """How likely the user's message ends after ``text`` (:mod:`models.llama_turn_judge`), read
        on a slot of its own so that no conversation's cached prompt is overwritten."""
        base_url = await self.process.wait_ready(timeout_s)
        slot = self.judge_slot if self.judge_slot is not None else self.slots.background_slot
        return await end_of_message_probability(self._chat.client(), base_url, text, slot=slot, timeout_s=timeout_s)

    async def stream_chat(self, messages: Sequence[ChatMessage],
                          params: GenerationParams) -> AsyncIterator[str | ToolCall]:
        try:
            base_url = await self.process.wait_ready(self.params.ready_timeout_s)
        except LlamaServerError as exc:
            raise LlamaServerError(f"the LLM server is unavailable: {exc}") from None
        if params.tool_choice == "none" and params.tools:
            # As in process: tools left out of the prompt altogether. Shown them, the 0.5B model
            # writes a call anyway, which "none" then drops, leaving an empty answer.
            params = dataclasses.replace(params, tools=(), tool_choice="auto")
        if self.params.tool_result_nudge and messages and messages[-1].role == "tool":
            messages = [*messages, ChatMessage("system", self.params.tool_result_nudge)]
        extra = {"id_slot": self.slots.slot_for(params), "cache_prompt": True}
        stream = self._chat.stream_chat(messages, params, base_url=base_url + "/v1", extra_body=extra)
        async with aclosing(stream):
            async for item in stream:
                yield item
