"""Finds Hermes-style tool calls in a streamed reply: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``.

Qwen2.5 (the embedded LLM) and most open chat models fine-tuned for tools write
their calls this way inside the text; llama.cpp passes them through as plain
tokens. The parser sits between the token stream and the sentence chunker: text
outside the tags flows on at once (held back only while it could be the start
of a tag), and each closed tag becomes one call. A call whose JSON does not
parse is reported as malformed rather than spoken.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

OPEN_TAG, CLOSE_TAG = "<tool_call>", "</tool_call>"


@dataclass(frozen=True, slots=True)
class ParsedToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MalformedToolCall:
    raw: str
    reason: str


ParsedPiece = str | ParsedToolCall | MalformedToolCall


def call_from_object(item: Any, raw: str) -> ParsedToolCall | MalformedToolCall:
    """A decoded ``{"name": ..., "arguments": {...}}``, as models write it inside or outside tags."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        return MalformedToolCall(raw, "no tool name")
    arguments = item.get("arguments", item.get("parameters", {}))  # some models say "parameters"
    if isinstance(arguments, str):  # some models double-encode the arguments
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError:
            return MalformedToolCall(raw, "arguments are not JSON")
    if not isinstance(arguments, dict):
        return MalformedToolCall(raw, "arguments must be an object")
    return ParsedToolCall(item["name"], arguments)


def _parse(raw: str) -> ParsedToolCall | MalformedToolCall:
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        return MalformedToolCall(raw, f"not JSON: {exc.msg}")
    return call_from_object(body, raw)


class ToolCallParser:
    def __init__(self) -> None:
        self._buffer = ""
        self._in_call = False

    def push(self, text: str) -> list[ParsedPiece]:
        self._buffer += text
        out: list[ParsedPiece] = []
        while True:
            if self._in_call:
                end = self._buffer.find(CLOSE_TAG)
                if end < 0:
                    return out
                out.append(_parse(self._buffer[:end].strip()))
                self._buffer = self._buffer[end + len(CLOSE_TAG):]
                self._in_call = False
                continue
            start = self._buffer.find(OPEN_TAG)
            if start >= 0:
                if start:
                    out.append(self._buffer[:start])
                self._buffer = self._buffer[start + len(OPEN_TAG):]
                self._in_call = True
                continue
            keep = _partial_tag_suffix(self._buffer)
            if len(self._buffer) > keep:
                out.append(self._buffer[:len(self._buffer) - keep])
                self._buffer = self._buffer[len(self._buffer) - keep:]
            return out

    def flush(self) -> list[ParsedPiece]:
        """End of the reply: an unclosed call is malformed; a held-back '<tool' was just text."""
        rest, self._buffer = self._buffer, ""
        if self._in_call:
            self._in_call = False
            call = _parse(rest.strip())  # models often stop right after the JSON, without the closing tag
            return [call if isinstance(call, ParsedToolCall) else MalformedToolCall(rest, "unclosed")]
        return [rest] if rest else []


def _partial_tag_suffix(text: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of the opening tag."""
    for size in range(min(len(OPEN_TAG) - 1, len(text)), 0, -1):
        if OPEN_TAG.startswith(text[-size:]):
            return size
    return 0
