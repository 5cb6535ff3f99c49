"""Server tools: every way a call can go wrong comes back as a ToolResult, never as an exception."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from models.interfaces import ToolSpec
from thinking.argument_schema import schema_errors
from thinking.builtin_tools import (
    CLOCK_TOOL, KNOWLEDGE_TOOL, clock_tool, describe_time, knowledge_tool, resolve_zone,
)
from thinking.tool_registry import ServerTool, ToolRegistry, ToolResult

FIXED_NOW = datetime(2025, 3, 4, 5, 5, 9, tzinfo=UTC)  # a Tuesday


@pytest.fixture
async def no_leaked_tasks():
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert leaked == [], f"tasks left running: {leaked}"


def _tool(name: str, run, *, parameters: dict | None = None, timeout_s: float = 5.0) -> ServerTool:
    schema = parameters if parameters is not None else {"type": "object", "properties": {}}
    return ServerTool(spec=ToolSpec(name, f"the {name} tool", schema), run=run, timeout_s=timeout_s)


async def _echo(arguments: dict) -> str:
    return json.dumps(arguments, sort_keys=True)


BOOKING = {
    "type": "object",
    "required": ["room", "people"],
    "additionalProperties": False,
    "properties": {
        "room": {"type": "string", "enum": ["red", "blue"]},
        "people": {"type": "integer", "minimum": 1},
        "ratio": {"type": "number"},
        "quiet": {"type": "boolean"},
        "note": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


@pytest.mark.parametrize(("arguments", "errors"), [
    ({"room": "red", "people": 2}, []),
    ({"room": "red", "people": 2.0, "ratio": 1, "quiet": False, "note": None, "tags": ["a"]}, []),
    ({"room": "red"}, ["people: required"]),
    ({"room": "green", "people": 2}, ["room: 'green' is not one of ['red', 'blue']"]),
    ({"room": "red", "people": "2"}, ["people: expected integer, got string"]),
    ({"room": "red", "people": True}, ["people: expected integer, got boolean"]),  # JSON true is not 1
    ({"room": "red", "people": 0}, ["people: below the minimum 1"]),
    ({"room": "red", "people": 2, "ratio": "x"}, ["ratio: expected number, got string"]),
    ({"room": "red", "people": 2, "quiet": "yes"}, ["quiet: expected boolean, got string"]),
    ({"room": "red", "people": 2, "tags": ["a", 3]}, ["tags[1]: expected string, got integer"]),
    ({"room": "red", "people": 2, "floor": 3}, ["floor: unknown field (expected: room, people, ratio, quiet, "
                                                "note, tags)"]),
    ([], ["arguments: expected object, got array"]),
])
def test_schema_subset(arguments, errors):
    assert schema_errors(arguments, BOOKING) == errors


async def test_a_valid_call_runs_the_tool(no_leaked_tasks):
    registry = ToolRegistry([_tool("book", _echo, parameters=BOOKING)])
    result = await registry.call("book", '{"room": "blue", "people": 3}')
    assert result == ToolResult('{"people": 3, "room": "blue"}')
    assert result.content == result.output


@pytest.mark.parametrize(("arguments", "error"), [
    ('{"room": "blue"', "the arguments are not valid JSON"),
    ('["blue", 3]', "the arguments must be a JSON object"),
    ('{"room": "blue"}', "invalid arguments: people: required"),
    ('{"room": 7, "people": 0}', "invalid arguments: room: expected string, got integer; people: below the minimum 1"),
])
async def test_bad_arguments_are_reported_not_run(arguments, error):
    ran = []

    async def run(arguments: dict) -> str:
        ran.append(arguments)
        return "booked"

    result = await ToolRegistry([_tool("book", run, parameters=BOOKING)]).call("book", arguments)
    assert result.output == "" and result.error is not None and result.error.startswith(error), result
    assert result.content == "Error: " + result.error
    assert ran == []


async def test_empty_arguments_mean_none():
    assert (await ToolRegistry([_tool("ping", _echo)]).call("ping", "")).output == "{}"


async def test_an_unknown_tool_names_the_available_ones():
    result = await ToolRegistry([_tool("ping", _echo)]).call("pong", "{}")
    assert result.error == "there is no tool named 'pong'; available: ping"


async def test_a_slow_tool_times_out(no_leaked_tasks):
    cancelled = asyncio.Event()

    async def hang(arguments: dict) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    registry = ToolRegistry([_tool("hang", hang, timeout_s=0.05)])
    started = asyncio.get_running_loop().time()
    result = await registry.call("hang", "{}")
    assert result.error == "hang did not answer within 0.05 s"
    assert asyncio.get_running_loop().time() - started < 1.0
    assert cancelled.is_set()  # the tool's own task was cancelled, not left running


async def test_a_failing_tool_is_an_error_result():
    async def broken(arguments: dict) -> str:
        raise KeyError("the database is gone")

    result = await ToolRegistry([_tool("broken", broken)]).call("broken", "{}")
    assert result == ToolResult("", "broken failed: 'the database is gone'")


async def test_cancelling_a_call_still_cancels():
    registry = ToolRegistry([_tool("hang", lambda arguments: asyncio.sleep(30, "late"))])
    task = asyncio.create_task(registry.call("hang", "{}"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_registry_lookup():
    clock = clock_tool()
    registry = ToolRegistry([clock])
    assert registry.specs() == (clock.spec,) and registry.get(CLOCK_TOOL) is clock
    assert CLOCK_TOOL in registry and registry.get("nope") is None and len(registry) == 1
    with pytest.raises(ValueError, match="already registered"):
        registry.register(clock_tool())


async def test_the_clock_in_the_default_zone_and_a_named_one():
    registry = ToolRegistry([clock_tool(default_timezone="Asia/Shanghai", now=lambda: FIXED_NOW)])
    here = await registry.call(CLOCK_TOOL, "{}")
    assert here == ToolResult("Tuesday 2025-03-04, 1:05 PM (13:05) in Asia/Shanghai, UTC+08:00")
    tokyo = await registry.call(CLOCK_TOOL, '{"timezone": "Asia/Tokyo"}')
    assert tokyo.output == "Tuesday 2025-03-04, 2:05 PM (14:05) in Asia/Tokyo, UTC+09:00"
    new_york = await registry.call(CLOCK_TOOL, '{"timezone": "New York"}')  # a city, as small models write it
    assert new_york.output == "Tuesday 2025-03-04, 12:05 AM (00:05) in America/New_York, UTC-05:00"
    beijing = await registry.call(CLOCK_TOOL, '{"timezone": "北京"}')
    assert beijing.output.endswith("(13:05) in Asia/Shanghai, UTC+08:00")


async def test_the_clock_reports_an_unknown_zone():
    registry = ToolRegistry([clock_tool(now=lambda: FIXED_NOW)])
    result = await registry.call(CLOCK_TOOL, '{"timezone": "Atlantis"}')
    assert result.error == ("get_current_time failed: unknown time zone 'Atlantis'; use an IANA name such as "
                            "Asia/Tokyo or Europe/London")
    assert (await registry.call(CLOCK_TOOL, '{"timezone": 9}')).error == (
        "invalid arguments: timezone: expected string, got integer")


def test_a_misconfigured_default_zone_fails_at_construction():
    with pytest.raises(ValueError, match="unknown time zone"):
        clock_tool(default_timezone="Mars/Olympus")


def test_zone_names_and_time_wording():
    assert str(resolve_zone("europe/london")) == "Europe/London"  # ZoneInfo is case-sensitive; the lookup is not
    moment = datetime(2024, 12, 31, 23, 59, tzinfo=resolve_zone("UTC"))
    assert describe_time(moment) == "Tuesday 2024-12-31, 11:59 PM (23:59) in UTC, UTC+00:00"


@dataclass(frozen=True)
class FakePassage:
    source: str
    text: str

    def citation(self) -> str:
        return f"[{self.source}]"


async def test_the_knowledge_tool_cites_its_passages(no_leaked_tasks):
    asked = []

    def search(query: str) -> list[FakePassage]:
        asked.append(query)
        return [FakePassage("handbook.md §Hours", "Open 9:00-17:00, closed on Mondays. "),
                FakePassage("faq.md", "x" * 5000)]

    tool = knowledge_tool(search)
    assert tool.slow and tool.timeout_s == 10.0
    result = await ToolRegistry([tool]).call(KNOWLEDGE_TOOL, '{"query": " opening hours "}')
    assert asked == ["opening hours"]
    assert result.output == "[handbook.md §Hours] Open 9:00-17:00, closed on Mondays."  # the long one would not fit
    nothing = await ToolRegistry([knowledge_tool(lambda q: [])]).call(KNOWLEDGE_TOOL, '{"query": "parking"}')
    assert nothing.output == "Nothing in the knowledge base matches this question."
    missing = await ToolRegistry([tool]).call(KNOWLEDGE_TOOL, "{}")
    assert missing.error == "invalid arguments: query: required"
