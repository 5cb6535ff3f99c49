"""The session's conversation: ordered items and what the LLM sees of them.

An assistant item keeps the text the user actually heard; when an answer is
interrupted its transcript is cut back, so the next turn's prompt does not
pretend the user heard words that were never played.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from models.interfaces import ChatMessage, ToolCall

Role = Literal["user", "assistant", "system"]
ItemStatus = Literal["completed", "in_progress", "incomplete"]
ItemType = Literal["message", "function_call", "function_call_output"]


@dataclass
class ConversationItem:
    id: str
    role: Role
    content_type: Literal["input_audio", "input_text", "output_audio", "output_text", "text", "none"]
    text: str | None = None
    status: ItemStatus = "completed"
    audio_ms: float = 0.0
    """Assistant audio: the duration sent; used to validate truncate requests."""
    type: ItemType = "message"
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    output: str = ""
    citations: str = ""
    """Sources of the passages the answer was given: shown after its transcript, never spoken
    and never fed back to the LLM."""

    def wire_text(self) -> str:
        return f"{self.text or ''}\n{self.citations}" if self.citations else (self.text or "")

    @classmethod
    def function_call(cls, *, item_id: str, call_id: str, name: str, arguments: str,
                      status: ItemStatus = "completed") -> ConversationItem:
        return cls(id=item_id, role="assistant", content_type="none", type="function_call", call_id=call_id,
                   name=name, arguments=arguments, status=status)

    @classmethod
    def function_call_output(cls, *, item_id: str, call_id: str, output: str) -> ConversationItem:
        return cls(id=item_id, role="system", content_type="none", type="function_call_output", call_id=call_id,
                   output=output)

    def to_wire(self) -> dict[str, Any]:
        base = {"id": self.id, "object": "realtime.item", "type": self.type, "status": self.status}
        if self.type == "function_call":
            return {**base, "call_id": self.call_id, "name": self.name, "arguments": self.arguments}
        if self.type == "function_call_output":
            return {**base, "call_id": self.call_id, "output": self.output}
        if self.content_type == "input_audio":
            content = {"type": "input_audio", "transcript": self.text}
        elif self.content_type == "output_audio":
            content = {"type": "output_audio", "transcript": self.wire_text()}
        else:
            content = {"type": self.content_type, "text": self.wire_text()}
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

    def add(self, item: ConversationItem, *, after: str | None = None, before: str | None = None) -> str | None:
        """Insert after ``after``, before ``before``, or at the end; returns the previous item's id."""
        if before is not None:
            index = self.index_of(before)
            self.items.insert(index, item)
            return self.items[index - 1].id if index > 0 else None
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

    def chat_history(self) -> list[ChatMessage]:
        """What the LLM sees: messages with text, and each function call together with its
        output (a call without an output, one cut off by a barge-in, is left out: chat
        templates require a result for every call)."""
        outputs = {item.call_id: item for item in self.items if item.type == "function_call_output"}
        calls = {item.call_id for item in self.items if item.type == "function_call"}
        history: list[ChatMessage] = []
        for item in self.items:
            if item.type == "function_call" and item.call_id in outputs:
                history.append(ChatMessage(role="assistant", content="", tool_calls=(
                    ToolCall(call_id=item.call_id, name=item.name, arguments=item.arguments),)))
            elif item.type == "function_call_output" and item.call_id in calls:
                history.append(ChatMessage(role="tool", content=item.output, tool_call_id=item.call_id))
            elif item.type == "message" and item.text:
                history.append(ChatMessage(role=item.role, content=item.text))
        return history
