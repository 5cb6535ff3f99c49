"""Tool calling by the embedded Qwen2.5-0.5B: the right tool, the right arguments, and only when asked.

    python -m benchmarks.tool_calling [--temperature 0.0] [--repeat 1] [--threads 2]

Runs English and Chinese utterances through :class:`models.llama_chat.LlamaChatModel`
(loaded as the server loads it) with the two built-in server tools, under the server's
default instructions and under the same instructions plus a one-line hint on when to
call which tool. Then it checks the second half of a call: given the call and its
result, does the model answer in words that use the result? (with and without the
nudge :data:`models.llama_chat.ANSWER_FROM_TOOL_RESULTS`). Prints markdown tables.

Latency is from the request to the yielded ToolCall, with the llama context warm (the
instructions and tool descriptions already evaluated once, as for a running server
whose previous request had the same prefix); a cold prefix adds its evaluation, printed
once per variant.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from benchmarks.latency_stats import percentile
from models.interfaces import ChatMessage, GenerationParams, ToolCall, ToolSpec
from thinking.builtin_tools import CLOCK_TOOL, KNOWLEDGE_TOOL, clock_tool, knowledge_tool, resolve_zone

DEFAULT_ZONE = "Asia/Shanghai"
HINT = ("Call get_current_time only when asked the time, day or date, and search_knowledge_base only for "
        "questions about this place (hours, tickets, rules, services); otherwise just answer.")
MAX_TOKENS = 96

ArgumentCheck = Callable[[dict], bool]


def zone(expected: str | None) -> ArgumentCheck:
    """``None``: the user's own time, so no zone; a guessed one is wrong even when it happens to be the default."""
    def check(arguments: dict) -> bool:
        given = arguments.get("timezone")
        if not given or expected is None:
            return not given and expected is None
        try:
            return str(resolve_zone(given)) == expected  # as the tool reads it: "Tokyo" is Asia/Tokyo
        except ValueError:
            return False
    return check


def query_mentions(*words: str) -> ArgumentCheck:
    return lambda arguments: any(w in str(arguments.get("query", "")).lower() for w in words)


@dataclass(frozen=True)
class Case:
    text: str
    language: Literal["en", "zh"]
    tool: str | None
    arguments: ArgumentCheck | None = None
    expected: str = ""
    """The arguments in words, for the table."""


CASES = (
    Case("What time is it?", "en", CLOCK_TOOL, zone(None), "no zone"),
    Case("What time is it in Tokyo?", "en", CLOCK_TOOL, zone("Asia/Tokyo"), "Asia/Tokyo"),
    Case("Can you tell me the current time in London?", "en", CLOCK_TOOL, zone("Europe/London"), "Europe/London"),
    Case("What day of the week is it today?", "en", CLOCK_TOOL, zone(None), "no zone"),
    Case("Is it still morning in New York right now?", "en", CLOCK_TOOL, zone("America/New_York"),
         "America/New_York"),
    Case("What are the museum's opening hours?", "en", KNOWLEDGE_TOOL, query_mentions("hour", "open"), "hours"),
    Case("How much is a ticket for children?", "en", KNOWLEDGE_TOOL, query_mentions("ticket", "child", "price"),
         "ticket"),
    Case("Is there parking near the entrance?", "en", KNOWLEDGE_TOOL, query_mentions("park"), "parking"),
    Case("Are dogs allowed inside the building?", "en", KNOWLEDGE_TOOL, query_mentions("dog", "pet"), "dogs"),
    Case("Hello!", "en", None),
    Case("Thanks, that's all for now.", "en", None),
    Case("Tell me a joke.", "en", None),
    Case("How are you doing today?", "en", None),
    Case("What is two plus two?", "en", None),
    Case("现在几点了？", "zh", CLOCK_TOOL, zone(None), "no zone"),
    Case("东京现在几点？", "zh", CLOCK_TOOL, zone("Asia/Tokyo"), "Asia/Tokyo"),
    Case("今天星期几？", "zh", CLOCK_TOOL, zone(None), "no zone"),
    Case("图书馆周一开门吗？", "zh", KNOWLEDGE_TOOL, query_mentions("图书馆", "周一", "library", "monday"), "图书馆 周一"),
    Case("门票多少钱？", "zh", KNOWLEDGE_TOOL, query_mentions("票", "ticket", "price", "钱"), "门票"),
    Case("博物馆几点关门？", "zh", KNOWLEDGE_TOOL, query_mentions("关门", "博物馆", "museum", "clos"), "关门"),
    Case("你好！", "zh", None),
    Case("谢谢你的帮助。", "zh", None),
    Case("给我讲个笑话吧。", "zh", None),
)


@dataclass(frozen=True)
class FollowUp:
    """A call already made and its result: the model should now answer from it."""

    question: str
    call: ToolCall
    result: str
    facts: tuple[str, ...]
    """An answer that uses the result contains one of these."""


FOLLOW_UPS = (
    FollowUp("What time is it in Tokyo?", ToolCall("call_1", CLOCK_TOOL, '{"timezone": "Asia/Tokyo"}'),
             "Tuesday 2025-03-04, 2:05 PM (14:05) in Asia/Tokyo, UTC+09:00", ("2:05", "14:05", "two")),
    FollowUp("Is the museum open on Monday?", ToolCall("call_2", KNOWLEDGE_TOOL, '{"query": "museum Monday"}'),
             "[handbook.md §Hours] The museum is open Tuesday to Sunday, 9:00 to 17:00. It is closed on Mondays.",
             ("closed", "not open", "no,")),
    FollowUp("How much is a ticket for children?", ToolCall("call_3", KNOWLEDGE_TOOL, '{"query": "child ticket"}'),
             "[prices.md §Tickets] Adults 60 yuan, children under 12 half price (30 yuan), under 6 free.",
             ("30", "half", "free")),
    FollowUp("现在几点了？", ToolCall("call_4", CLOCK_TOOL, "{}"),
             "Tuesday 2025-03-04, 1:05 PM (13:05) in Asia/Shanghai, UTC+08:00", ("13:05", "1:05", "一点", "13点")),
    FollowUp("图书馆周一开门吗？", ToolCall("call_5", KNOWLEDGE_TOOL, '{"query": "图书馆 周一"}'),
             "[guide.md §开放时间] 图书馆周二至周日 9:00-21:00 开放，周一闭馆。", ("闭馆", "不开", "关闭", "closed")),
    FollowUp("东京现在几点？", ToolCall("call_6", CLOCK_TOOL, '{"timezone": "Asia/Tokyo"}'),
             "Tuesday 2025-03-04, 2:05 PM (14:05) in Asia/Tokyo, UTC+09:00", ("14:05", "2:05", "两点", "14点")),
)


@dataclass
class Outcome:
    calls: list[ToolCall] = field(default_factory=list)
    text: str = ""
    call_latency_s: float | None = None
    malformed: int = 0
    untagged: int = 0


class _Records(logging.Handler):
    """The adapter logs what it drops (malformed calls) and how calls were written: counted here."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def _ask(llm, messages: list[ChatMessage], params: GenerationParams, records: _Records) -> Outcome:
    records.messages.clear()
    out = Outcome()
    started = time.perf_counter()
    async for item in llm.stream_chat(messages, params):
        if isinstance(item, ToolCall):
            out.calls.append(item)
            if out.call_latency_s is None:
                out.call_latency_s = time.perf_counter() - started
        else:
            out.text += item
    out.malformed = sum(m.startswith(("malformed tool call", "the model called")) for m in records.messages)
    out.untagged = sum(m.startswith("tool call") and m.endswith("(untagged)") for m in records.messages)
    return out


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else "-"


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.0f} ms" if values else "-"


def _short(outcome: Outcome) -> str:
    if outcome.calls:
        call = outcome.calls[0]
        more = f" +{len(outcome.calls) - 1}" if len(outcome.calls) > 1 else ""
        return f"`{call.name}({call.arguments})`{more}".replace("|", "/")
    text = " ".join(outcome.text.split())
    return (text[:40] + "…" if len(text) > 40 else text).replace("|", "/") or "(nothing)"


async def _selection(llm, tools: tuple[ToolSpec, ...], records: _Records, args: argparse.Namespace) -> None:
    from server.config import DEFAULT_INSTRUCTIONS

    variants = {"instructions": DEFAULT_INSTRUCTIONS, "instructions + hint": f"{DEFAULT_INSTRUCTIONS} {HINT}"}
    params = GenerationParams(max_tokens=MAX_TOKENS, temperature=args.temperature, tools=tools)
    results: dict[str, list[tuple[Case, Outcome]]] = {}
    for name, system in variants.items():
        started = time.perf_counter()
        await _ask(llm, [ChatMessage("system", system), ChatMessage("user", "Hi.")], params, records)
        print(f"{name}: cold prefix (instructions + tool descriptions) and a short reply: "
              f"{time.perf_counter() - started:.2f} s")
        results[name] = [(case, await _ask(llm, [ChatMessage("system", system), ChatMessage("user", case.text)],
                                           params, records))
                         for _ in range(args.repeat) for case in CASES]

    print(f"\n### Choosing a tool (Qwen2.5-0.5B Q4_K_M, {args.threads} threads, temperature {args.temperature}, "
          f"{len(CASES)} utterances x {args.repeat})\n")
    print("| metric | " + " | ".join(variants) + " |")
    print("|---|" + "---|" * len(variants))
    rows: dict[str, list[str]] = {}
    for name, outcomes in results.items():
        tool_cases = [(c, o) for c, o in outcomes if c.tool]
        plain = [(c, o) for c, o in outcomes if not c.tool]
        right = [(c, o) for c, o in tool_cases if o.calls and o.calls[0].name == c.tool]
        good_args = [(c, o) for c, o in right if c.arguments is None or c.arguments(json.loads(o.calls[0].arguments))]
        latencies = [o.call_latency_s for _, o in outcomes if o.call_latency_s is not None]
        calls = sum(len(o.calls) for _, o in outcomes)
        for language in ("en", "zh"):
            mine = [(c, o) for c, o in tool_cases if c.language == language]
            rows.setdefault(f"correct tool, {language}", []).append(
                _pct(sum(bool(o.calls) and o.calls[0].name == c.tool for c, o in mine), len(mine)))
        cells = {
            "correct tool (tool cases)": _pct(len(right), len(tool_cases)),
            "correct arguments (of correct-tool calls)": _pct(len(good_args), len(right)),
            "correct tool and arguments (tool cases)": _pct(len(good_args), len(tool_cases)),
            "missed call (tool cases, no call)": _pct(sum(not o.calls for _, o in tool_cases), len(tool_cases)),
            "false call (no-tool cases)": _pct(sum(bool(o.calls) for _, o in plain), len(plain)),
            "malformed or unoffered call dropped (all cases)": _pct(sum(o.malformed > 0 for _, o in outcomes),
                                                                    len(outcomes)),
            "calls written untagged (bare JSON / ```json)": _pct(sum(o.untagged for _, o in outcomes), calls),
            "JSON left in spoken text": _pct(sum('"name"' in o.text or '{"' in o.text for _, o in outcomes),
                                             len(outcomes)),
            "latency to tool call p50": _ms(latencies, 50),
            "latency to tool call p95": _ms(latencies, 95),
        }
        for key, value in cells.items():
            rows.setdefault(key, []).append(value)
    for key, values in rows.items():
        print(f"| {key} | " + " | ".join(values) + " |")

    print("\n| utterance | expected | " + " | ".join(variants) + " |")
    print("|---|---|" + "---|" * len(variants))
    for i, case in enumerate(CASES):
        expected = f"{case.tool} ({case.expected})" if case.tool else "no tool"
        cells = [_short(results[name][i][1]) for name in variants]
        print(f"| {case.text} | {expected} | " + " | ".join(cells) + " |")


async def _follow_ups(models: dict[str, object], tools: tuple[ToolSpec, ...], records: _Records,
                      args: argparse.Namespace) -> None:
    from server.config import DEFAULT_INSTRUCTIONS

    params = GenerationParams(max_tokens=MAX_TOKENS, temperature=args.temperature, tools=tools)
    print(f"\n### Answering from a tool result ({len(FOLLOW_UPS)} conversations, tools still offered)\n")
    print("| conversation | " + " | ".join(models) + " |")
    print("|---|" + "---|" * len(models))
    totals = {name: [0, 0] for name in models}
    for follow in FOLLOW_UPS:
        messages = [ChatMessage("system", DEFAULT_INSTRUCTIONS), ChatMessage("user", follow.question),
                    ChatMessage("assistant", "", tool_calls=(follow.call,)),
                    ChatMessage("tool", follow.result, tool_call_id=follow.call.call_id)]
        cells = []
        for name, llm in models.items():
            outcome = await _ask(llm, messages, params, records)
            words = not outcome.calls and bool(outcome.text.strip())
            used = words and any(f.lower() in outcome.text.lower() for f in follow.facts)
            totals[name][0] += words
            totals[name][1] += used
            cells.append(("uses result: " if used else "words: " if words else "") + _short(outcome))
        print(f"| {follow.question} | " + " | ".join(cells) + " |")
    print("| **answered in words / used the result** | "
          + " | ".join(f"{w}/{len(FOLLOW_UPS)} / {u}/{len(FOLLOW_UPS)}" for w, u in totals.values()) + " |")


async def _main(args: argparse.Namespace) -> None:
    from models import embedded_store
    from models.llama_chat import LlamaChatModel, LlamaParams

    path = embedded_store.ensure_model(embedded_store.QWEN_05B, Path(args.model_dir)) / "model.gguf"
    records = _Records()
    logger = logging.getLogger("models.text_tool_calls")
    logger.addHandler(records)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # counted, not printed among the tables
    started = time.perf_counter()
    llm = LlamaChatModel(model_path=path, params=LlamaParams(threads=args.threads))
    print(f"model load: {time.perf_counter() - started:.2f} s")
    tools = (clock_tool(default_timezone=DEFAULT_ZONE).spec, knowledge_tool(lambda query: []).spec)
    await _selection(llm, tools, records, args)
    bare = LlamaChatModel(model_path=path, params=LlamaParams(threads=args.threads, tool_result_nudge=""))
    await _follow_ups({"with the nudge (default)": llm, "without": bare}, tools, records, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy, reproducible (server: 0.6)")
    parser.add_argument("--repeat", type=int, default=1, help="times each utterance is asked (for temperature > 0)")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads (the server's inference_threads)")
    parser.add_argument("--model-dir", default="var/models")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
