"""Stored conversations as chat training examples, in one engine-free form every exporter reads.

An example is a run of consecutive turns of one conversation with the persona's instructions
(the system prompt) and the tools it offered. A turn is the user's words (the corrected
transcript when a person gave one), then each tool call the assistant made with its result (one
call per assistant message, as the server ran them: server/response_runner.py), then the
assistant's answer: so every turn starts at a user message and ends with an assistant message.
Messages are OpenAI chat dicts (tool-call arguments as JSON text) so that the counting and the
exporters share one shape.

Obviously bad pairs are flagged and, by default, left out: an empty answer, an apology after an
engine failure, an answer cut by a barge-in, an empty user message, a tool call whose arguments
are not JSON. The trainers learn every assistant message of an example, history included, so a
bad pair cannot stay behind as context either; and dropping it alone would leave the next user
turn answering something that is no longer there. So **the conversation is cut at a left-out
pair**: the turns before it make one example, the turns after it start another (with no history
from before the cut). Both pieces stay one conversation for the train/eval split.

With ``include_bad`` the flagged pairs stay, as they happened: a barge-in pair keeps
``answer_heard``, the part the user heard, because that is what the conversation's history held
when the user spoke next (server/conversation.py); an apology keeps its text; an empty answer
stays empty.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from thinking.training_data.dataset_records import RecordedTurn, StoredConversation

Message = dict[str, Any]

EMPTY_ANSWER = "empty answer"
FAILURE_APOLOGY = "apology after an engine failure"
BARGE_IN_CUT = "answer cut by a barge-in"
EMPTY_USER_MESSAGE = "empty user message"
BROKEN_TOOL_ARGUMENTS = "tool call arguments are not JSON"
TOOL_CALLS_UNSUPPORTED = "tool calls (the format has no place for them)"


@dataclass(slots=True)
class ChatTurn:
    item_id: str
    messages: list[Message]
    """The user message, (assistant tool call, tool result) per call, the assistant's answer."""


@dataclass(slots=True)
class ChatExample:
    conversation_id: str
    system: str
    tools: list[dict[str, Any]]
    """Chat Completions tool definitions (``{"type": "function", "function": {...}}``)."""
    turns: list[ChatTurn]
    context_turns: int = 0
    """Leading turns repeated from the window before as history (already learned there)."""
    tokens: int = 0
    """The rendered length in the target model's tokens, once measured."""

    def turn_messages(self) -> list[Message]:
        return [m for turn in self.turns for m in turn.messages]

    def chat_messages(self) -> list[Message]:
        """What a chat template renders: the system prompt (when there is one) first."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + self.turn_messages()

    def window(self, start: int, end: int, *, context_turns: int = 0) -> ChatExample:
        return replace(self, turns=self.turns[start:end], context_turns=context_turns, tokens=0)


@dataclass(slots=True)
class ConversationExamples:
    examples: list[ChatExample] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)
    """Pairs left out, by reason."""
    cuts: int = 0
    """Times the conversation was cut at a left-out pair with kept turns on both sides."""


def bad_pair_reason(turn: RecordedTurn) -> str:
    """Why the pair is no good training example; "" when it is fine. The first reason that applies."""
    if turn.failure:
        return FAILURE_APOLOGY
    if turn.interrupted:
        return BARGE_IN_CUT
    if not answer_text(turn).strip():
        return EMPTY_ANSWER
    if not turn.user_words.strip():
        return EMPTY_USER_MESSAGE
    for call in turn.tool_calls:
        try:
            json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            return BROKEN_TOOL_ARGUMENTS
    return ""


def answer_text(turn: RecordedTurn) -> str:
    """The answer as the conversation kept it: what was heard when a barge-in cut it."""
    if turn.interrupted:
        return turn.answer_heard
    return turn.answer_generated or turn.answer_heard


def chat_examples(conversation: StoredConversation, *, include_bad: bool = False,
                  tool_calls: bool = True) -> ConversationExamples:
    """The conversation's examples (several when it was cut at left-out pairs), whole: windowing
    to a token budget is :mod:`thinking.training_data.token_windows`'s job. ``tool_calls=False``
    (a format with no tool messages) leaves out turns that called tools, cutting there too."""
    out = ConversationExamples()
    tools = chat_tools(conversation.tools) if tool_calls else []
    pieces: list[list[ChatTurn]] = [[]]
    for index, turn in enumerate(conversation.turns):
        reason = "" if include_bad else bad_pair_reason(turn)
        if not reason and turn.tool_calls and not tool_calls:
            reason = TOOL_CALLS_UNSUPPORTED
        if reason:
            out.left_out[reason] += 1
            if pieces[-1]:
                pieces.append([])
            continue
        pieces[-1].append(_chat_turn(turn, index))
    pieces = [p for p in pieces if p]
    out.cuts = max(0, len(pieces) - 1)
    out.examples = [ChatExample(conversation_id=conversation.id, system=conversation.instructions.strip(),
                                tools=tools, turns=piece) for piece in pieces]
    return out


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat Completions tool definitions, also from the Realtime API's flat ones
    (``{"type": "function", "name": ..., "parameters": ...}``, what a session declares)."""
    out = []
    for tool in tools:
        if "function" in tool:
            out.append({"type": "function", "function": tool["function"]})
        elif "name" in tool:
            out.append({"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}})
    return out


def _chat_turn(turn: RecordedTurn, index: int) -> ChatTurn:
    messages: list[Message] = [{"role": "user", "content": turn.user_words.strip()}]
    for k, call in enumerate(turn.tool_calls):
        call_id = call.call_id or f"call_{index}_{k}"
        messages.append({"role": "assistant", "content": "", "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments or "{}"}}]})
        messages.append({"role": "tool", "tool_call_id": call_id, "content": call.result})
    messages.append({"role": "assistant", "content": answer_text(turn).strip()})
    return ChatTurn(item_id=turn.item_id, messages=messages)
