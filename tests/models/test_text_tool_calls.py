"""Calls found in reply text become ToolCall items; what must not be spoken or sent is dropped with a warning."""

from __future__ import annotations

import json
import logging

from models.interfaces import ToolCall
from models.text_tool_calls import TextToolCalls

CALL = '{"name": "get_current_time", "arguments": {"timezone": "上海"}}'


def _all(calls: TextToolCalls, *pieces: str) -> list[str | ToolCall]:
    out = [item for piece in pieces for item in calls.push(piece)]
    return out + calls.flush()


def test_tagged_and_untagged_calls_get_fresh_ids():
    tagged = _all(TextToolCalls(offered=["get_current_time"]), "One moment. <tool_", f"call>{CALL}</tool_call>")
    untagged = _all(TextToolCalls(offered=["get_current_time"]), CALL[:9], CALL[9:])
    assert tagged[0] == "One moment. " and isinstance(tagged[1], ToolCall) and isinstance(untagged[0], ToolCall)
    assert tagged[1].call_id != untagged[0].call_id
    assert json.loads(untagged[0].arguments) == {"timezone": "上海"}
    assert "上海" in untagged[0].arguments  # not \\u-escaped: the arguments reach a client as written


def test_malformed_and_unoffered_calls_are_dropped(caplog):
    with caplog.at_level(logging.WARNING, logger="models.text_tool_calls"):
        assert _all(TextToolCalls(offered=["get_current_time"]), '{"name": "get_current_time", "arguments": ') == []
        assert _all(TextToolCalls(offered=["get_current_time"]), '{"name": "joke", "arguments": {}}') == []
        assert _all(TextToolCalls(offered=[]), f"<tool_call>{CALL}</tool_call>Hi") == ["Hi"]
    assert [r.getMessage()[:26] for r in caplog.records] == [
        "malformed tool call droppe", "the model called 'joke', w", "the model called 'get_curr"]
