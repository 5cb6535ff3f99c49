"""What the data stage keeps of a conversation: its persona and, per turn, what the user said and
what the assistant answered (as generated and as heard), with the facts an exporter needs to
judge the pair (a barge-in, an engine failure) and to find its audio."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Source = Literal["recorded", "chatgpt", "wechat-csv", "jsonl"]
SOURCES: tuple[str, ...] = ("recorded", "chatgpt", "wechat-csv", "jsonl")


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    name: str
    arguments: str
    """JSON text, as the model produced it."""
    result: str
    call_id: str = ""


@dataclass(slots=True)
class RecordedTurn:
    item_id: str
    """The user's conversation item id (``tingshuo data correct ITEM_ID``); imports make their own."""
    user_text: str
    """The final transcript (or the typed/imported message)."""
    answer_generated: str
    answer_heard: str
    """What the user heard: shorter than ``answer_generated`` when a barge-in cut it."""
    language: str = ""
    started_at: float = 0.0
    """Unix time of the user's turn (0 when the source has no times)."""
    interrupted: bool = False
    failure: str = ""
    """Why the answer is an apology, when an engine failed (the pair is then no training example)."""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    user_audio: str = ""
    """Path of the user's 16 kHz utterance, relative to the store's directory; "" when not kept."""
    assistant_audio: str = ""
    corrected_text: str = ""
    """A person's correction of ``user_text``; it replaces Whisper's transcript in every export."""

    @property
    def user_words(self) -> str:
        return self.corrected_text or self.user_text


@dataclass(slots=True)
class StoredConversation:
    id: str
    source: Source
    started_at: float = 0.0
    user_id: str = ""
    persona_id: str = ""
    persona_version: str = ""
    instructions: str = ""
    """The system prompt the persona gave this conversation."""
    adapter: str = ""
    """The persona's LoRA adapter, if it has one."""
    tools: list[dict[str, Any]] = field(default_factory=list)
    """Tool definitions offered to the model (OpenAI function format)."""
    title: str = ""
    turns: list[RecordedTurn] = field(default_factory=list)
