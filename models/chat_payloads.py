"""Chat messages and tool specs as the OpenAI-style dicts that chat templates and endpoints take.

Two spellings of an assistant's tool call exist, and mixing them up is silent: the
OpenAI wire format carries ``arguments`` as JSON *text*, while Hugging Face chat
templates (Qwen2.5's included) apply ``tojson`` to ``arguments`` themselves, so a
string there reaches the model double-encoded (``"{\\"timezone\\": ...}"``), unlike
anything it was trained on. :func:`template_messages` therefore decodes the
arguments and :func:`wire_messages` keeps them as text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from models.interfaces import ChatMessage, ToolCall, ToolSpec


def tool_payload(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """``tools`` for a chat template or a ``/chat/completions`` request."""
    return [{"type": "function",
             "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in tools]


def wire_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """For an OpenAI-compatible endpoint: arguments stay JSON text."""
    return [_message(m, decode_arguments=False) for m in messages]


def template_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """For a Hugging Face / GGUF chat template rendered here (llama.cpp, in-process vLLM)."""
    return [_message(m, decode_arguments=True) for m in messages]


def _message(m: ChatMessage, *, decode_arguments: bool) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content}
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [_call(c, decode_arguments=decode_arguments) for c in m.tool_calls]
    return out


def _call(call: ToolCall, *, decode_arguments: bool) -> dict[str, Any]:
    arguments: Any = call.arguments
    if decode_arguments:
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            pass  # the template shows the text as it was; the model sees its own mistake
    return {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": arguments}}
