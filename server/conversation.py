"""The session's conversation: ordered items and what the LLM sees of them.

An assistant item keeps the text the user actually heard; when an answer is
interrupted its transcript is cut back, so the next turn's prompt does not
pretend the user heard words that were never played.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from models.interfaces import ChatMessage

Role = Literal["user", "assistant", "system"]
ItemStatus = Literal["completed", "in_progress", "incomplete"]


@dataclass
class ConversationItem:
    id: str
    role: Role
    content_type: Literal["input_audio", "input_text", "output_audio", "output_text", "text"]
    text: str | None = None
    status: ItemStatus = "completed"
    audio_ms: float = 0.0
    """Assistant audio: the duration sent; used to validate truncate requests."""

    def to_wire(self) -> dict[str, Any]:
        if self.content_type == "input_audio":
            content = {"type": "input_audio", "transcript": self.text}
        elif self.content_type == "output_audio":
            content = {"type": "output_audio", "transcript": self.text or ""}
        else:
            content = {"type": self.content_type, "text": self.text or ""}
        return {
            "id": self.id,
            "object": "realtime.item",
            "type": "message",
            "role": self.role,
            "status": self.status,
            "content": [content],
        }


@dataclass
class Conversation:
    items: list[ConversationItem] = field(default_factory=list)

    def last_id(self) -> str | None:
        return self.items[-1].id if self.items else None

    def add(self, item: ConversationItem, *, after: str | None = None) -> str | None:
        """Insert after ``after`` (or at the end); returns the previous item's id."""
        if after is None:
            previous = self.last_id()
            self.items.append(item)
            return previous
        index = self.index_of(after)
        self.items.insert(index + 1, item)
        return after

    def index_of(self, item_id: str) -> int:
        for i, item in enumerate(self.items):
            if item.id == item_id:
                return i
        raise KeyError(item_id)

    def get(self, item_id: str) -> ConversationItem | None:
        for item in self.items:
            if item.id == item_id:
                return item
        return None

    def delete(self, item_id: str) -> bool:
        item = self.get(item_id)
        if item is None:
            return False
        self.items.remove(item)
        return True

    def chat_messages(self, *, instructions: str, max_messages: int) -> list[ChatMessage]:
        history = [
            ChatMessage(role=item.role, content=item.text)
            for item in self.items
            if item.text and item.role in ("user", "assistant", "system")
        ]
        return [ChatMessage(role="system", content=instructions), *history[-max_messages:]]
