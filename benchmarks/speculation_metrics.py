"""CPU work the server spent on speculation, and how much of it was thrown away.

The server counts the worker seconds of speculative work (recognition on a turn not yet over,
an answer started before the turn was confirmed, its first clause's synthesis) in
``tingshuo_speculative_seconds_total{stage="asr|llm|tts", outcome="kept|discarded"}`` at
``/metrics``. The harness reads the counters before and after each concurrency level; the
difference, over the server's CPU seconds in that level, is the share of the CPU the level
wasted. A server without the counters is reported as such, never as zero waste.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp

METRIC = "tingshuo_speculative_seconds_total"
STAGES = ("asr", "llm", "tts")
OUTCOMES = ("kept", "discarded")
_LINE = re.compile(rf"^{METRIC}\{{([^}}]*)\}}\s+(\S+)", re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Counters = dict[tuple[str, str], float]
"""(stage, outcome) → seconds."""


def parse_counters(text: str) -> Counters | None:
    """The speculation counters in a Prometheus text exposition; None when the server has none."""
    found: Counters = {}
    for labels, value in _LINE.findall(text):
        named = dict(_LABEL.findall(labels))
        key = (named.get("stage", ""), named.get("outcome", ""))
        try:
            found[key] = found.get(key, 0.0) + float(value)
        except ValueError:
            continue
    return found or None


async def read_counters(url: str | None) -> Counters | None:
    """Fetch ``url`` once; None when it cannot be read or holds no speculation counters."""
    if not url:
        return None
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as response:
                if response.status != 200:
                    return None
                return parse_counters(await response.text())
    except (OSError, aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None


def speculation_summary(before: Counters | None, after: Counters | None,
                        cpu_seconds: float | None) -> dict[str, Any]:
    """Seconds kept and discarded per stage over a level, and the two ratios: discarded over the
    server's CPU seconds in the level, and discarded over all speculative seconds."""
    if after is None:
        return {"reported": False}
    before = before or {}
    delta = {key: max(0.0, after.get(key, 0.0) - before.get(key, 0.0)) for key in after}
    by_stage = {
        outcome: {stage: round(v, 3) for (stage, o), v in sorted(delta.items()) if o == outcome}
        for outcome in OUTCOMES
    }
    kept = sum(v for (_, o), v in delta.items() if o == "kept")
    discarded = sum(v for (_, o), v in delta.items() if o == "discarded")
    total = kept + discarded
    return {
        "reported": True,
        "kept_s": round(kept, 3),
        "discarded_s": round(discarded, 3),
        "by_stage": by_stage,
        "server_cpu_s": None if cpu_seconds is None else round(cpu_seconds, 2),
        "discarded_over_cpu": round(discarded / cpu_seconds, 4) if cpu_seconds else None,
        "discarded_share": round(discarded / total, 4) if total else None,
    }
