"""What a tool call becomes on the wire and in the conversation, for one response.

A client tool (declared in ``session.tools``) is announced as the Realtime API does:
a ``function_call`` output item with ``response.function_call_arguments.delta/done``;
the client runs it, sends ``conversation.item.create`` of type
``function_call_output`` and asks for the next response. A server tool (Python, in
the registry) runs here; its call and output become conversation items placed
before the answer's message, so the history reads call → result → answer, but they
are not response output: no client is expected to act on them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from models.interfaces import ToolCall
from server import events
from server.conversation import ConversationItem
from server.ids import new_id

log = logging.getLogger(__name__)

MAX_TOOL_OUTPUT_CHARS = 4_000
"""A tool output longer than this is cut: it goes into the prompt, and prompt tokens cost time."""

AddItem = Callable[..., Awaitable[str | None]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ResponseToolCalls:
    def __init__(self, *, response_id: str, message_item_id: str, registry: Any | None, add_item: AddItem,
                 send: Send) -> None:
        self._response_id = response_id
        self._message_item_id = message_item_id
        self._registry = registry
        self._add_item = add_item
        self._send = send
        self.output_items: list[ConversationItem] = []
        """Client function calls, in response output order (after the message at index 0)."""
        self._server_anchor: str | None = None

    async def client_call(self, call: ToolCall) -> None:
        item = ConversationItem.function_call(item_id=new_id("item"), call_id=call.call_id, name=call.name,
                                              arguments=call.arguments, status="in_progress")
        index = 1 + len(self.output_items)
        self.output_items.append(item)
        previous = await self._add_item(item)
        ids = {"response_id": self._response_id, "item_id": item.id, "output_index": index, "call_id": call.call_id}
        await self._send(events.output_item_added(response_id=self._response_id, item=item.to_wire(),
                                                  output_index=index))
        await self._send(events.item_added(item.to_wire(), previous_item_id=previous))
        await self._send(events.function_call_arguments_delta(**ids, delta=call.arguments))
        await self._send(events.function_call_arguments_done(**ids, name=call.name, arguments=call.arguments))
        item.status = "completed"
        await self._send(events.output_item_done(response_id=self._response_id, item=item.to_wire(),
                                                 output_index=index))
        await self._send(events.item_done(item.to_wire(), previous_item_id=previous))

    async def server_call(self, call: ToolCall) -> str:
        call_item = ConversationItem.function_call(item_id=new_id("item"), call_id=call.call_id, name=call.name,
                                                   arguments=call.arguments)
        await self._record(call_item)
        if self._registry is None:
            output = f"Error: there is no tool named {call.name!r}"
        else:
            result = await self._registry.call(call.name, call.arguments)  # never raises
            output = result.content
        output = output[:MAX_TOOL_OUTPUT_CHARS]
        await self._record(ConversationItem.function_call_output(item_id=new_id("item"), call_id=call.call_id,
                                                                 output=output))
        return output

    async def _record(self, item: ConversationItem) -> None:
        """Into the conversation before the answer's message item, in call order."""
        previous = await self._add_item(item, before=self._message_item_id)
        await self._send(events.item_added(item.to_wire(), previous_item_id=previous))
        await self._send(events.item_done(item.to_wire(), previous_item_id=previous))
