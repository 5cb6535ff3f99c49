"""Server-side tools: Python functions the LLM may call, run by the server rather than the client.

A call the LLM makes is only a guess at a function call: the name may not exist, the
arguments may not be JSON or may not fit the schema, the function may fail or hang.
:meth:`ToolRegistry.call` therefore never raises (cancellation aside): every failure
becomes a :class:`ToolResult` whose error goes back to the LLM as the tool's output, so
the model can correct itself or tell the user, and the turn goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from models.interfaces import ToolSpec
from thinking.argument_schema import schema_errors

log = logging.getLogger(__name__)

DEFAULT_TOOL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ServerTool:
    spec: ToolSpec
    run: Callable[[dict[str, Any]], Awaitable[str]]
    """Called with the validated arguments; returns the text the LLM reads."""
    slow: bool = False
    """Likely to take long enough that the user should hear a filler ("One moment.") meanwhile."""
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True, slots=True)
class ToolResult:
    output: str
    error: str | None = None

    @property
    def content(self) -> str:
        """What the LLM reads in the tool message: the output, or the error said as one."""
        return f"Error: {self.error}" if self.error is not None else self.output


class ToolRegistry:
    def __init__(self, tools: Iterable[ServerTool] = ()) -> None:
        self._tools: dict[str, ServerTool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: ServerTool) -> ServerTool:
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(t.spec for t in self._tools.values())

    def names(self) -> frozenset[str]:
        return frozenset(self._tools)

    def get(self, name: str) -> ServerTool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    async def call(self, name: str, arguments_json: str) -> ToolResult:
        tool = self._tools.get(name)
        if tool is None:
            return ToolResult("", f"there is no tool named {name!r}; available: {', '.join(self._tools) or 'none'}")
        arguments, error = _arguments(arguments_json, tool.spec.parameters)
        if error is not None:
            return ToolResult("", error)
        try:
            async with asyncio.timeout(tool.timeout_s):
                output = await tool.run(arguments)
        except TimeoutError:
            log.warning("tool %s timed out after %.1f s", name, tool.timeout_s)
            return ToolResult("", f"{name} did not answer within {tool.timeout_s:g} s")
        except Exception as exc:  # a tool's bug must not end the turn; the LLM hears what went wrong
            log.warning("tool %s failed: %s: %s", name, type(exc).__name__, exc)
            return ToolResult("", f"{name} failed: {exc}" if str(exc) else f"{name} failed: {type(exc).__name__}")
        if not isinstance(output, str):
            output = json.dumps(output, ensure_ascii=False, default=str)
        return ToolResult(output)


def _arguments(arguments_json: str, schema: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    try:
        # Models and clients send "" for a call without arguments.
        arguments = json.loads(arguments_json) if arguments_json.strip() else {}
    except json.JSONDecodeError as exc:
        return {}, f"the arguments are not valid JSON ({exc.msg} at character {exc.pos})"
    if not isinstance(arguments, dict):
        return {}, "the arguments must be a JSON object"
    if errors := schema_errors(arguments, schema):
        return {}, "invalid arguments: " + "; ".join(errors)
    return arguments, None
