"""The conversation item a client's ``conversation.item.create`` asks for, checked before it is added.

Messages carry text; function items are a client tool's result (``function_call_output``,
which must answer a call the conversation holds) or a call replayed into the history.
Anything else, or anything too large, is a :class:`ProtocolError` and nothing is added.
"""

from __future__ import annotations

from typing import Any

from server.conversation import Conversation, ConversationItem
from server.ids import new_id
from server.protocol import ProtocolError


def item_from_client(raw: dict[str, Any], conversation: Conversation, *, max_chars: int,
                     client_event_id: str | None) -> ConversationItem:
    def refuse(code: str, message: str, param: str) -> ProtocolError:
        return ProtocolError(code, message, param=param, client_event_id=client_event_id)

    item_id = raw.get("id") or new_id("item")
    kind = raw.get("type")
    if kind in ("function_call", "function_call_output"):
        call_id = raw.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise refuse("invalid_value", "function items need a call_id", "item.call_id")
        if kind == "function_call":
            return ConversationItem.function_call(item_id=item_id, call_id=call_id, name=str(raw.get("name") or ""),
                                                  arguments=str(raw.get("arguments") or "{}"))
        if call_id not in {i.call_id for i in conversation.items if i.type == "function_call"}:
            raise refuse("item_not_found", f"no function_call with call_id {call_id!r}", "item.call_id")
        output = str(raw.get("output") or "")
        if len(output) > max_chars:
            raise refuse("item_too_large", f"output of {len(output)} characters exceeds the limit of {max_chars}",
                         "item.output")
        return ConversationItem.function_call_output(item_id=item_id, call_id=call_id, output=output)
    if kind != "message":
        raise refuse("unsupported_item", f"conversation items of type {kind!r} are not supported", "item.type")
    text = "".join(c.get("text") or c.get("transcript") or "" for c in raw.get("content") or []
                   if c.get("type") in ("input_text", "text", "output_text"))
    if len(text) > max_chars:
        raise refuse("item_too_large", f"item text of {len(text)} characters exceeds the limit of {max_chars}",
                     "item.content")
    if not text.strip():
        raise refuse("unsupported_content", "message items need input_text (or text) content", "item.content")
    role = raw["role"]
    return ConversationItem(id=item_id, role=role, content_type="input_text" if role in ("user", "system")
                            else "output_text", text=text)
