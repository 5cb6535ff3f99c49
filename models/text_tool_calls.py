"""Tool calls a model wrote into its reply text, turned into the items a ChatModel yields.

The adapters that render the chat template themselves (llama.cpp and vLLM in process) get
the calls only as text; an OpenAI-compatible server started without a tool parser passes
them on as text too. Each call gets a fresh ``call_id``. A malformed call, or a call to a
tool the request did not offer, is logged and dropped: it must be neither spoken as JSON
nor sent to a client that never declared such a function.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable

from models.interfaces import ToolCall
from streaming.reply_tool_calls import ReplyToolCallParser
from streaming.tool_call_parser import MalformedToolCall, ParsedPiece, ParsedToolCall

log = logging.getLogger(__name__)


def new_call_id() -> str:
    """``call_`` and 24 hex digits, the shape OpenAI's ids have."""
    return "call_" + secrets.token_hex(12)


class TextToolCalls:
    """One reply: ``push`` each text delta, ``flush`` at the end; both return text pieces and calls in order."""

    def __init__(self, *, offered: Iterable[str]) -> None:
        self._offered = frozenset(offered)
        self._parser = ReplyToolCallParser()

    def push(self, text: str) -> list[str | ToolCall]:
        return self._convert(self._parser.push(text))

    def flush(self) -> list[str | ToolCall]:
        untagged = self._parser.untagged
        return self._convert(self._parser.flush(), untagged=untagged)

    def _convert(self, pieces: list[ParsedPiece], *, untagged: bool = False) -> list[str | ToolCall]:
        out: list[str | ToolCall] = []
        for piece in pieces:
            match piece:
                case str() if piece:
                    out.append(piece)
                case ParsedToolCall(name=name) if name in self._offered:
                    log.debug("tool call %s (%s)", name, "untagged" if untagged else "tagged")
                    out.append(ToolCall(new_call_id(), name, json.dumps(piece.arguments, ensure_ascii=False)))
                case ParsedToolCall(name=name):
                    log.warning("the model called %r, which it was not offered (%s); dropped",
                                name, ", ".join(sorted(self._offered)) or "no tools")
                case MalformedToolCall(raw=raw, reason=reason):
                    log.warning("malformed tool call dropped (%s): %.200s", reason, raw)
        return out
