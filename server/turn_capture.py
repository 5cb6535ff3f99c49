"""One session's side of recording (``data.record``): each user turn paired with the answer it got.

The user's words come first (the final transcript, its language and, for ``audio``, the
utterance); the end of an answer pairs with the nearest user message before the answer's
item in the conversation, and the pair goes to the :class:`TurnRecorder`. Everything taken
here is a reference or a short string: no copy of audio, no file, no wait on the event loop.

A user turn is kept once, with the answer that ended it: a failed answer waits for its
apology (the turn is then flagged with the failure); an answer that ended in a client tool
call waits for the answer given with the tool's output; a turn with no words, or one the
assistant never answered, leaves nothing. The mode is read at each turn from the session's
persona (``record``), else ``data.record``: a persona switched mid-session applies at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from models.interfaces import MODEL_SAMPLE_RATE_HZ, ToolSpec
from server.config import Config
from server.conversation import Conversation
from server.session_settings import SessionSettings
from server.session_thinking import SessionThinking
from server.turn_recorder import TurnRecorder, TurnToKeep
from thinking.personas import Persona
from thinking.training_data.dataset_records import RecordedTurn, StoredConversation, ToolCallRecord

if TYPE_CHECKING:
    from server.responder import AssistantResponse

MAX_UNANSWERED = 8
"""User turns waiting for their answer (with their audio, in ``audio`` mode); older ones are forgotten."""


def recording_mode(config: Config, persona: Persona | None) -> str:
    """'off', 'text' or 'audio': the persona's ``record`` when it sets one, else the server's."""
    if persona is not None and persona.record is not None:
        return persona.record
    return config.data.record


class CaptureHost(Protocol):
    config: Config
    settings: SessionSettings
    conversation: Conversation
    thinking: SessionThinking


@dataclass(slots=True)
class _UserWords:
    text: str
    language: str
    started_at: float
    audio: np.ndarray | None
    failure: str = ""


class TurnCapture:
    def __init__(self, host: CaptureHost, *, recorder: TurnRecorder | None,
                 tools: Callable[[], Sequence[ToolSpec]] = tuple) -> None:
        """``tools``: what the model is offered now (server and client tools), for the record."""
        self._host = host
        self._recorder = recorder
        self._tools = tools
        self._started_at = time.time()
        self._waiting: dict[str, _UserWords] = {}

    @property
    def mode(self) -> str:
        return "off" if self._recorder is None else recording_mode(self._host.config, self._host.settings.persona)

    @property
    def wants_audio(self) -> bool:
        return self.mode == "audio"

    def user_said(self, item_id: str, text: str, language: str | None, *, audio: np.ndarray | None = None,
                  ended_at: float | None = None) -> None:
        """A user turn's final words (a transcript, or a typed message). ``audio``: its 16 kHz
        utterance; ``ended_at``: when the turn ended (``time.monotonic()``), for its start time."""
        mode = self.mode
        if mode == "off" or not text.strip():
            return
        seconds = len(audio) / MODEL_SAMPLE_RATE_HZ if audio is not None else 0.0
        ago = time.monotonic() - ended_at if ended_at is not None else 0.0
        self._waiting[item_id] = _UserWords(text=text, language=language or "", started_at=time.time() - ago - seconds,
                                            audio=audio if mode == "audio" else None)
        while len(self._waiting) > MAX_UNANSWERED:
            del self._waiting[next(iter(self._waiting))]

    def response_finished(self, response: AssistantResponse, status: str, *, apologised: bool = False) -> None:
        """A response has ended (an answer that played out, one cut by a barge-in, a failure)."""
        mode = self.mode
        if mode == "off" or self._recorder is None:
            self._waiting.clear()
            return
        user_item = self._answered(response.item.id)
        words = self._waiting.get(user_item) if user_item is not None else None
        if words is None:
            return  # a greeting, an answer already kept, a turn said while recording was off
        outcome = response.outcome
        if status == "failed":
            words.failure = outcome.failed_stage or "response"
            if apologised:
                return  # the apology is the answer the user got
        elif status == "completed" and outcome.client_calls:
            return  # the client runs its tool; the answer with its output follows
        assert user_item is not None
        for earlier in list(self._waiting):  # this one, and any before it that was never answered
            del self._waiting[earlier]
            if earlier == user_item:
                break
        turn = self._turn(user_item, words, response, status)
        speaks = response.request.speaks and mode == "audio"
        self._recorder.offer(TurnToKeep(
            conversation=self._conversation(response), turn=turn, user_audio=words.audio,
            assistant_audio=outcome.sent_audio if speaks and outcome.sent_audio else (),
            assistant_rate_hz=response.request.output_rate_hz))

    # -- building the record -----------------------------------------------------------
    def _answered(self, assistant_item_id: str) -> str | None:
        """The nearest user message before the answer's item: the turn it answers."""
        items = self._host.conversation.items
        index = next((i for i in range(len(items) - 1, -1, -1) if items[i].id == assistant_item_id), None)
        if index is None:
            return None
        for item in reversed(items[:index]):
            if item.role == "user" and item.type == "message":
                return item.id
        return None

    def _turn(self, user_item: str, words: _UserWords, response: AssistantResponse, status: str) -> RecordedTurn:
        item = response.item
        generated = response.outcome.full_text
        heard = item.text or ""
        return RecordedTurn(
            item_id=user_item, user_text=words.text, answer_generated=generated,
            answer_heard=heard_prefix(generated, heard), language=words.language, started_at=words.started_at,
            interrupted=status == "cancelled" or (status == "completed" and item.status == "incomplete"),
            failure=words.failure, tool_calls=self._tool_calls(user_item, item.id),
            latency_ms={stage: ms for stage, ms in response.timeline.as_ms().items() if ms is not None})

    def _tool_calls(self, user_item: str, answer_item: str) -> list[ToolCallRecord]:
        """The calls between the user's words and the answer, each with its output."""
        items = self._host.conversation.items
        ids = [item.id for item in items]
        if user_item not in ids or answer_item not in ids:
            return []
        between = items[ids.index(user_item) + 1: ids.index(answer_item)]
        outputs = {item.call_id: item.output for item in between if item.type == "function_call_output"}
        return [ToolCallRecord(name=item.name, arguments=item.arguments, result=outputs.get(item.call_id, ""),
                               call_id=item.call_id)
                for item in between if item.type == "function_call"]

    def _conversation(self, response: AssistantResponse) -> StoredConversation:
        settings = self._host.settings
        persona = settings.persona
        return StoredConversation(
            id=settings.id, source="recorded", started_at=self._started_at, user_id=self._host.thinking.user_id or "",
            persona_id=persona.id if persona else "", persona_version=str(persona.version) if persona else "",
            instructions=settings.instructions, adapter=response.request.adapter or "",
            tools=[{"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}
                   for t in self._tools()])


def heard_prefix(generated: str, heard: str) -> str:
    """What was heard, as a prefix of the generated text. The spoken chunks are the generated text
    cut and re-joined (whitespace may differ), so ``heard`` is mapped back onto ``generated`` by
    its other characters; when they differ (a filler said while a tool ran) ``heard`` stays as is."""
    wanted = [ch for ch in heard if not ch.isspace()]
    if not wanted:
        return ""
    matched = 0
    for position, ch in enumerate(generated):
        if ch.isspace():
            continue
        if ch != wanted[matched]:
            return heard
        matched += 1
        if matched == len(wanted):
            return generated[: position + 1]
    return heard
