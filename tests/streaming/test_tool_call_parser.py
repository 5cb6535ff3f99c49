"""Tool calls found in streamed text, whatever the token boundaries."""

from __future__ import annotations

import pytest

from streaming.tool_call_parser import MalformedToolCall, ParsedToolCall, ToolCallParser

CALL = '<tool_call>\n{"name": "get_time", "arguments": {"timezone": "Asia/Shanghai"}}\n</tool_call>'


def _run(text: str, step: int) -> list:
    parser = ToolCallParser()
    out = []
    for i in range(0, len(text), step):
        out.extend(parser.push(text[i:i + step]))
    out.extend(parser.flush())
    merged: list = []
    for piece in out:  # join adjacent text pieces: the split depends on the step
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return merged


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 1000])
def test_a_call_between_text_is_found_at_any_token_split(step):
    assert _run("Let me check. " + CALL + " Done.", step) == [
        "Let me check. ", ParsedToolCall("get_time", {"timezone": "Asia/Shanghai"}), " Done."]


@pytest.mark.parametrize("step", [1, 4, 1000])
def test_text_that_only_looks_like_a_tag_is_passed_through(step):
    assert _run("a < b and <tool is not a call", step) == ["a < b and <tool is not a call"]


def test_text_is_not_held_back_longer_than_a_possible_tag():
    parser = ToolCallParser()
    assert parser.push("Hello there") == ["Hello there"]
    assert parser.push(" <tool_") == [" "]
    assert parser.push("call>{\"name\": \"x\"}</tool_call>") == [ParsedToolCall("x", {})]


@pytest.mark.parametrize("raw, reason", [
    ('<tool_call>{"name": "x", "arguments": {</tool_call>', "not JSON"),
    ('<tool_call>{"arguments": {}}</tool_call>', "no tool name"),
    ('<tool_call>{"name": "x", "arguments": [1]}</tool_call>', "must be an object"),
    ('<tool_call>{"name": "x", "arguments": {"a": 1}', "unclosed"),
])
def test_malformed_calls_are_reported_not_spoken(raw, reason):
    (piece,) = _run(raw, 3)
    assert isinstance(piece, MalformedToolCall) and reason in piece.reason


def test_double_encoded_arguments_and_an_unclosed_but_complete_call_are_accepted():
    assert _run('<tool_call>{"name": "x", "arguments": "{\\"a\\": 2}"}</tool_call>', 2) == [ParsedToolCall("x", {"a": 2})]
    assert _run('<tool_call>{"name": "x", "arguments": {}}', 2) == [ParsedToolCall("x", {})]
