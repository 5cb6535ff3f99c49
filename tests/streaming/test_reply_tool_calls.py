"""Calls a small model writes without the Hermes tags, and text that only starts like one."""

from __future__ import annotations

import pytest

from streaming.reply_tool_calls import ReplyToolCallParser
from streaming.tool_call_parser import MalformedToolCall, ParsedToolCall

CLOCK = ParsedToolCall("get_current_time", {"timezone": "Asia/Tokyo"})
BARE = '{"name": "get_current_time", "arguments": {"timezone": "Asia/Tokyo"}}'


def _run(text: str, step: int) -> tuple[list, bool]:
    parser = ReplyToolCallParser()
    out = []
    for i in range(0, len(text), step):
        out.extend(parser.push(text[i:i + step]))
    untagged = parser.untagged
    out.extend(parser.flush())
    merged: list = []
    for piece in out:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return merged, untagged


# What the embedded Qwen2.5-0.5B writes when it calls a tool (see the module docstring).
@pytest.mark.parametrize("text", [BARE, "\n" + BARE + "\n", f"```json\n{BARE}\n```", f"```{BARE}```",
                                  '{"name": "get_current_time", "arguments": "{\\"timezone\\": \\"Asia/Tokyo\\"}"}',
                                  '{"name": "get_current_time", "parameters": {"timezone": "Asia/Tokyo"}}',
                                  f"[{BARE}]"])
@pytest.mark.parametrize("step", [1, 3, 1000])
def test_untagged_calls(text, step):
    assert _run(text, step) == ([CLOCK], True)


def test_two_calls_and_the_words_after_them():
    text = f"```json\n{BARE}\n{BARE}\n```\nThis tells you the time."
    assert _run(text, 4)[0] == [CLOCK, CLOCK, "\nThis tells you the time."]


def test_a_call_cut_off_after_complete_ones_is_not_spoken():
    # The 0.5B model, given a tool result, repeated its call until max_tokens cut it.
    text = f"{BARE}\n{BARE}\n" + '{"name": "get_current_time", "arguments": {"timezone": "UTC+'
    *calls, cut = _run(text, 7)[0]
    assert calls == [CLOCK, CLOCK] and isinstance(cut, MalformedToolCall) and cut.reason == "not JSON"


@pytest.mark.parametrize("step", [1, 5, 1000])
def test_an_ordinary_reply_streams_through_the_tag_parser(step):
    text = f"Let me check. <tool_call>{BARE}</tool_call>"
    assert _run(text, step) == (["Let me check. ", CLOCK], False)


def test_an_ordinary_reply_is_not_held_back():
    parser = ReplyToolCallParser()
    assert parser.push("  ") == []  # undecided until something visible arrives
    assert parser.push("Hello") == ["  Hello"]
    assert parser.push(" {there}") == [" {there}"]


@pytest.mark.parametrize("text", ["[laughs] Sure, happy to help.", "{smiles} Hi!", "```\nls -la\n```"])
def test_text_that_only_starts_like_json_is_spoken(text):
    assert _run(text, 2) == ([text], True)


@pytest.mark.parametrize(("text", "reason"), [
    ('{"name": "get_current_time", "arguments": {"timezone": ', "not JSON"),
    ('{"answer": 42}', "no tool name"),
    ('{"name": "get_current_time", "arguments": [1]}', "arguments must be an object"),
    ('```json\n{"name": "x", "arguments": "{oops"}\n```', "arguments are not JSON"),
])
def test_broken_calls_are_malformed_not_spoken(text, reason):
    (piece,), _ = _run(text, 3)
    assert isinstance(piece, MalformedToolCall) and piece.reason == reason


def test_the_parser_is_ready_for_the_next_reply_after_flush():
    parser = ReplyToolCallParser()
    parser.push(BARE)
    assert parser.flush() == [CLOCK]
    assert parser.push("Hi") == ["Hi"] and parser.flush() == []
    assert parser.flush() == []
