"""Tool calls in a reply, tagged or not: Hermes ``<tool_call>`` tags, or a reply that *is* the call.

Measured on the embedded Qwen2.5-0.5B (Q4_K_M GGUF, the Hermes tool prompt of its own
chat template): it never wrote the ``<tool_call>`` token (probability under 0.0001 as the
first token of a clock question); it answered with the bare ``{"name": ..., "arguments":
...}`` object or with the same inside a ```json fence, each about as likely (every one of its
calls in benchmarks/tool_calling.py came untagged). Qwen2.5-Coder is reported to do the same,
and vLLM's ``hermes`` parser leaves such calls in the text.

A spoken reply hardly ever begins with ``{``, ``[`` or a backtick, so a reply that does is held
back whole and parsed when it ends (the model stops right after the JSON, so this costs
nothing); every other reply goes through :class:`ToolCallParser` with no added delay. A
held reply that is not JSON at all (``[laughs] Sure.``, a fenced code block) was text after
all and is passed on; JSON that is not a call, or a call that does not parse, is malformed
and never spoken.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Any

from streaming.tool_call_parser import MalformedToolCall, ParsedPiece, ToolCallParser, call_from_object

_HELD_STARTS = ("{", "[", "`")
_FENCE_OPEN = re.compile(r"```[\w-]*\s*")
_FENCE = "```"


class _State(enum.Enum):
    UNDECIDED = "undecided"
    """Only whitespace so far."""
    HELD = "held"
    """The reply began like JSON: kept until it ends."""
    TAGGED = "tagged"
    """An ordinary reply: streamed through the Hermes tag parser."""


class ReplyToolCallParser:
    """One reply's text in (``push`` as it streams, ``flush`` at its end); text, calls and malformed calls out."""

    def __init__(self) -> None:
        self._state = _State.UNDECIDED
        self._held = ""
        self._tagged = ToolCallParser()

    @property
    def untagged(self) -> bool:
        """Whether this reply was held back as a possible untagged call."""
        return self._state is _State.HELD

    def push(self, text: str) -> list[ParsedPiece]:
        match self._state:
            case _State.TAGGED:
                return self._tagged.push(text)
            case _State.HELD:
                self._held += text
                return []
            case _State.UNDECIDED:
                self._held += text
                start = self._held.lstrip()
                if not start:
                    return []
                if start.startswith(_HELD_STARTS):
                    self._state = _State.HELD
                    return []
                self._state = _State.TAGGED
                held, self._held = self._held, ""
                return self._tagged.push(held)

    def flush(self) -> list[ParsedPiece]:
        state, held = self._state, self._held
        self._state, self._held = _State.UNDECIDED, ""
        match state:
            case _State.TAGGED:
                return self._tagged.flush()
            case _State.HELD:
                return parse_untagged(held)
            case _State.UNDECIDED:
                return [held] if held else []


def parse_untagged(raw: str) -> list[ParsedPiece]:
    """A whole reply that began like JSON: its calls, then any text after them."""
    text = raw.strip()
    fenced = _FENCE_OPEN.match(text) if text.startswith(_FENCE) else None
    body, after = text, ""
    if fenced:
        body = text[fenced.end():]
        end = body.find(_FENCE)
        if end >= 0:
            body, after = body[:end], body[end + len(_FENCE):]
    objects, rest = _json_values(body)
    if not objects:  # "[laughs] Sure." or a code block was never a call; a broken call must not be spoken
        return [MalformedToolCall(raw, "not JSON")] if '"name"' in body else [raw]
    pieces: list[ParsedPiece] = []
    for value in objects:
        for item in value if isinstance(value, list) else [value]:
            pieces.append(call_from_object(item, raw))
    trailing = rest + after
    if trailing.lstrip().startswith(_HELD_STARTS):  # one more call, perhaps cut off by max_tokens
        pieces += parse_untagged(trailing)
    elif trailing.strip():
        tail = ToolCallParser()  # the model may go on in words, or with a tagged call
        pieces += tail.push(trailing) + tail.flush()
    return pieces


def _json_values(text: str) -> tuple[list[Any], str]:
    """The JSON values at the start of ``text`` (a model may write two calls one after the other), and what follows."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    rest = text.lstrip()
    while rest.startswith(("{", "[")):
        try:
            value, end = decoder.raw_decode(rest)
        except json.JSONDecodeError:
            break
        values.append(value)
        rest = rest[end:].lstrip()
    return values, rest


