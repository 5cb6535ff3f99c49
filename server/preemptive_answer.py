"""An answer started before the user's turn is confirmed (LiveKit's preemptive generation).

When the user pauses, the turn detector may wait up to the eagerness's longest
silence before it ends the turn. The speculative transcript of the turn so far is
usually ready long before that, so the LLM starts on it at once and its tokens are
buffered. When the turn ends on that same audio, the response adopts the stream
(buffered tokens first, then live ones) if its prompt and parameters came out
exactly the same; otherwise, or when the user goes on, the stream is closed,
which aborts the request in the engine.

Bounds: at most :data:`MAX_BUFFERED_TOKENS` are read before adoption (the
engine's own ``max_tokens`` bounds the rest), and :class:`UserTurns` starts at
most :data:`MAX_PREEMPTIONS_PER_TURN` per user turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from models.interfaces import ChatMessage, ChatModel, GenerationParams, ToolCall

log = logging.getLogger(__name__)

MAX_BUFFERED_TOKENS = 96
"""Tokens read ahead of the turn's end: a few clauses. Unread ones wait in the engine's stream."""
MAX_PREEMPTIONS_PER_TURN = 2
"""A user who pauses again and again mid-turn costs at most this many discarded generations."""


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """The prompt and parameters an answer would be generated with."""

    messages: list[ChatMessage]
    params: GenerationParams


Outcome = Callable[[str, float], None]
"""Called once with ('kept' | 'discarded', the seconds the engine worked on it)."""


class PreemptiveAnswer:
    """Owns one speculative LLM stream; :meth:`adopt` hands it to a response, :meth:`discard` ends it."""

    def __init__(self, *, user_text: str, prepare: Callable[[], Awaitable[PreparedRequest | None]],
                 llm: ChatModel, on_outcome: Outcome | None = None) -> None:
        self.user_text = user_text
        self._prepare = prepare
        self._llm = llm
        self._on_outcome = on_outcome
        self._request: PreparedRequest | None = None
        self._buffer: list[str | ToolCall] = []
        self._finished = False
        self._error: BaseException | None = None
        self._changed = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._started_at: float | None = None
        self._settled = False
        self._adopted = False
        self.task: asyncio.Task[None] | None = None
        """Set by the owner that spawned :meth:`run` (the session's task group)."""

    # -- the speculative stream ---------------------------------------------------------
    async def run(self) -> None:
        try:
            request = await self._prepare()
            if request is None:
                return
            self._request = request
            self._started_at = time.monotonic()
            stream = self._llm.stream_chat(request.messages, request.params)
            try:
                async for piece in stream:
                    self._buffer.append(piece)
                    self._changed.set()
                    if not self._adopted and len(self._buffer) >= MAX_BUFFERED_TOKENS:
                        self._room.clear()
                        await self._room.wait()  # until adopted (or cancelled by discard)
            finally:
                await stream.aclose()  # aborts the request in the engine when it is not finished
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 (handed to the response that adopts it, STYLE 7)
            self._error = exc
        finally:
            self._finished = True
            self._changed.set()

    # -- adoption ---------------------------------------------------------------------------
    def matches(self, request: PreparedRequest) -> bool:
        """True when the real answer would be generated from exactly this prompt and parameters."""
        return (self._request is not None and not self._settled and self._error is None
                and self._request.messages == request.messages and self._request.params == request.params)

    def adopt(self) -> AsyncIterator[str | ToolCall]:
        """The answer's token stream: what was buffered, then the rest as it comes."""
        self._adopted = True
        self._room.set()
        self._settle("kept")
        return self._tokens()

    async def _tokens(self) -> AsyncIterator[str | ToolCall]:
        read = 0
        try:
            while True:
                if read < len(self._buffer):
                    read += 1
                    yield self._buffer[read - 1]
                    continue
                if self._finished:
                    if self._error is not None:
                        raise self._error
                    return
                self._changed.clear()
                await self._changed.wait()
        finally:
            self.discard()  # the response closed its stream early (a barge-in): stop the engine too

    def discard(self) -> None:
        """Stops the speculative stream now; never waits (its task closes the engine's stream)."""
        self._settle("discarded")
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def _settle(self, outcome: str) -> None:
        if self._settled:
            return
        self._settled = True
        if self._on_outcome is not None and self._started_at is not None:
            self._on_outcome(outcome, time.monotonic() - self._started_at)
