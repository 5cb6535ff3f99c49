"""The server tools tingshuo ships: the clock, and a search of the operator's knowledge base.

The descriptions are written for a small model: what the tool is for, in the words a
user's question would use, because the embedded 0.5B model picks a tool by little more
than word overlap (see benchmarks/tool_calling.py).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from models.interfaces import ToolSpec
from thinking.tool_registry import ServerTool

CLOCK_TOOL = "get_current_time"
KNOWLEDGE_TOOL = "search_knowledge_base"
KNOWLEDGE_TIMEOUT_S = 10.0
"""Embedding the question dominates a search; on two busy cores it can take a second or more."""
KNOWLEDGE_MAX_CHARS = 1500
"""Passages beyond this are left out: the tool output is prompt, and the embedded model has 4096 tokens."""

_ZONE_ALIASES = {
    # Places people name that are not the city in an IANA zone name, and the Chinese names
    # of a few common ones: a small model passes the user's words, not a zone.
    "beijing": "Asia/Shanghai", "china": "Asia/Shanghai", "北京": "Asia/Shanghai", "上海": "Asia/Shanghai",
    "中国": "Asia/Shanghai", "香港": "Asia/Hong_Kong", "台北": "Asia/Taipei", "东京": "Asia/Tokyo",
    "首尔": "Asia/Seoul", "新加坡": "Asia/Singapore", "伦敦": "Europe/London", "巴黎": "Europe/Paris",
    "柏林": "Europe/Berlin", "纽约": "America/New_York", "洛杉矶": "America/Los_Angeles",
    "悉尼": "Australia/Sydney", "san francisco": "America/Los_Angeles", "washington": "America/New_York",
}


def resolve_zone(name: str) -> ZoneInfo:
    """An IANA zone from its name, or from a city in it ("Tokyo", "new york"); ValueError otherwise."""
    text = name.strip()
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    if (alias := _ZONE_ALIASES.get(text.lower())) is not None:
        return ZoneInfo(alias)
    if (zone := _zone_index().get(text.lower().replace(" ", "_"))) is not None:
        return ZoneInfo(zone)
    raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Asia/Tokyo or Europe/London")


@functools.cache
def _zone_index() -> dict[str, str]:
    """``"asia/tokyo"`` and ``"tokyo"`` -> ``"Asia/Tokyo"``; built once (it scans the zone database)."""
    zones = sorted(available_timezones())
    index = {zone.rsplit("/", 1)[-1].lower(): zone for zone in zones if "/" in zone}
    return index | {zone.lower(): zone for zone in zones}


def describe_time(moment: datetime) -> str:
    """``Tuesday 2025-03-04, 2:05 PM (14:05) in Asia/Tokyo, UTC+09:00``: every form a reply might say."""
    offset = moment.strftime("%z")
    hour12 = moment.hour % 12 or 12
    return (f"{moment:%A %Y-%m-%d}, {hour12}:{moment:%M} {'AM' if moment.hour < 12 else 'PM'} "
            f"({moment:%H:%M}) in {moment.tzinfo}, UTC{offset[:3]}:{offset[3:]}")


def clock_tool(*, default_timezone: str = "UTC", now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> ServerTool:
    """``get_current_time``; ``default_timezone`` is the user's own, for a question naming no place."""
    default_zone = resolve_zone(default_timezone)  # a bad configured zone fails at start-up, not mid-call

    async def run(arguments: dict[str, Any]) -> str:
        requested = arguments.get("timezone")
        zone = resolve_zone(requested) if requested else default_zone
        return describe_time(now().astimezone(zone))

    spec = ToolSpec(
        name=CLOCK_TOOL,
        description="Get the current date, day of the week and time. Use it when the user asks what time "
                    "or what day it is, here or in another city.",
        parameters={"type": "object", "properties": {"timezone": {
            "type": "string",
            # No example zone: the 0.5B model copied "Asia/Tokyo" from an example into most calls.
            "description": "Only when the user names another city: its IANA time zone (Region/City). "
                           "Omit it otherwise."}}},
    )
    return ServerTool(spec=spec, run=run)


class CitablePassage(Protocol):
    """What a knowledge-base search returns (``thinking.knowledge_base.Passage``)."""

    @property
    def text(self) -> str: ...

    def citation(self) -> str: ...


def knowledge_tool(search: Callable[[str], Sequence[CitablePassage]], *, executor: Executor | None = None,
                   timeout_s: float = KNOWLEDGE_TIMEOUT_S, max_chars: int = KNOWLEDGE_MAX_CHARS) -> ServerTool:
    """``search_knowledge_base``; ``search`` blocks (SQLite, the embedder), so it runs on ``executor``."""

    async def run(arguments: dict[str, Any]) -> str:
        query = arguments["query"].strip()
        if not query:
            raise ValueError("the query is empty")
        passages = await asyncio.get_running_loop().run_in_executor(executor, search, query)
        if not passages:
            return "Nothing in the knowledge base matches this question."
        lines: list[str] = []
        used = 0
        for passage in passages:
            line = f"{passage.citation()} {passage.text.strip()}"
            if lines and used + len(line) > max_chars:
                break
            lines.append(line[:max_chars])
            used += len(line)
        return "\n".join(lines)

    spec = ToolSpec(
        name=KNOWLEDGE_TOOL,
        description="Search the documents about this place: opening hours, prices, tickets, rules, services, "
                    "facilities and directions. Use it for any question about the venue or organisation.",
        parameters={"type": "object", "required": ["query"], "properties": {"query": {
            "type": "string", "minLength": 1,
            "description": "What to look up, in the user's words."}}},
    )
    return ServerTool(spec=spec, run=run, slow=True, timeout_s=timeout_s)
