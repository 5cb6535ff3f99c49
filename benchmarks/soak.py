"""Soak test: N people talk to the server for a fixed time; does it stay correct, fast and flat?

Each virtual user opens a session, says ``--turns-per-session`` real recordings from
``../shared/audio`` at real time (listening to every answer), closes it and opens the
next, until ``--minutes`` have passed: sessions come and go as at a kiosk. Meanwhile the
server's memory, event-loop tasks and threads are sampled from ``/metrics``. The report
gives turns completed, every error, the voice-to-voice latency per time window and the
memory per window, with the slope over the second half (a leak shows as a steady climb;
warm-up growth shows in the first windows only).

    tingshuo soak --url ws://127.0.0.1:8765/v1/realtime --sessions 2 --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.corpus import Recording, load_corpus
from benchmarks.harness import _headers, _metrics_url, build_plan, machine_facts, versions
from benchmarks.latency_stats import percentile
from benchmarks.realtime_probe import ProbeConfig, SessionProbe

DEFAULT_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"
SAMPLE_INTERVAL_S = 5.0


@dataclass
class ServerSample:
    at_s: float
    rss_mb: float
    loop_tasks: float
    threads: float
    sessions: float


@dataclass
class SoakLog:
    """Everything the run saw, in the order it happened (times in s from the start)."""

    turns: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    session_failures: list[str] = field(default_factory=list)
    sessions_opened: int = 0
    samples: list[ServerSample] = field(default_factory=list)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tingshuo soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="ws://127.0.0.1:8765/v1/realtime")
    p.add_argument("--api-key", default="", help="sent as Authorization: Bearer")
    p.add_argument("--header", action="append", default=[], help="extra header NAME:VALUE")
    p.add_argument("--sessions", type=int, default=2, help="people talking at once")
    p.add_argument("--minutes", type=float, default=10.0, help="no new session starts after this")
    p.add_argument("--turns-per-session", type=int, default=4)
    p.add_argument("--windows", type=int, default=5, help="time windows in the report")
    p.add_argument("--audio", type=Path, default=DEFAULT_AUDIO)
    p.add_argument("--languages", default="en,zh")
    p.add_argument("--include", default="", help="only recordings whose name contains this")
    p.add_argument("--pause-s", type=float, default=1.0)
    p.add_argument("--turn-timeout-s", type=float, default=120.0)
    p.add_argument("--out", type=Path, default=None)
    return p


async def _sample_server(metrics_url: str, log: SoakLog, t0: float) -> None:
    patterns = {name: re.compile(rf"^{name} (\S+)$", re.M) for name in (
        "process_resident_memory_bytes", "tingshuo_event_loop_tasks", "tingshuo_threads", "tingshuo_sessions_active")}
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(metrics_url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                    text = await response.text()
                values = {k: float(m.group(1)) for k, p in patterns.items() if (m := p.search(text))}
                if len(values) == len(patterns):
                    log.samples.append(ServerSample(
                        at_s=round(time.monotonic() - t0, 1), rss_mb=round(values["process_resident_memory_bytes"] / 2**20, 1),
                        loop_tasks=values["tingshuo_event_loop_tasks"], threads=values["tingshuo_threads"],
                        sessions=values["tingshuo_sessions_active"]))
            except (OSError, aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(SAMPLE_INTERVAL_S)


async def _virtual_user(index: int, args: argparse.Namespace, config: ProbeConfig, recordings: list[Recording],
                        log: SoakLog, t0: float, deadline: float) -> None:
    await asyncio.sleep(0.37 * index)
    cycle = 0
    while time.monotonic() < deadline:
        probe = SessionProbe(config, session_index=index, concurrency=args.sessions)
        offset = index + cycle * args.turns_per_session * args.sessions
        plan = build_plan(recordings, turns=args.turns_per_session, session=offset, barge_in_every=0)
        log.sessions_opened += 1
        started = time.monotonic() - t0
        try:
            await probe.run(plan, barge_in_offset_ms=0)
        except Exception as exc:  # noqa: BLE001 (a failed session is a finding, not the end of the soak)
            log.session_failures.append(f"user {index} cycle {cycle}: {exc!r}")
        for turn in probe.turns:
            log.turns.append({**dataclasses.asdict(turn), "user": index, "cycle": cycle,
                              "at_s": round(started, 1)})
        log.errors.extend({**e, "user": index, "cycle": cycle} for e in probe.errors)
        cycle += 1


def _windows(log: SoakLog, wall_s: float, count: int) -> list[dict[str, Any]]:
    width = wall_s / count
    rows = []
    for w in range(count):
        lo, hi = w * width, (w + 1) * width
        turns = [t for t in log.turns if lo <= t["at_s"] < hi or (w == count - 1 and t["at_s"] >= hi)]
        v2v = [t["first_audio_ms"] for t in turns if t["status"] == "completed" and t["first_audio_ms"] is not None]
        samples = [s for s in log.samples if lo <= s.at_s < hi or (w == count - 1 and s.at_s >= hi)]
        rows.append({
            "from_s": round(lo), "to_s": round(hi), "turns": len(turns),
            "completed": sum(t["status"] == "completed" for t in turns),
            "v2v_p50_ms": round(percentile(v2v, 50)) if v2v else None,
            "v2v_p95_ms": round(percentile(v2v, 95)) if v2v else None,
            "rss_mb_end": samples[-1].rss_mb if samples else None,
            "rss_mb_max": max(s.rss_mb for s in samples) if samples else None,
            "loop_tasks_max": max(s.loop_tasks for s in samples) if samples else None,
            "threads_max": max(s.threads for s in samples) if samples else None,
        })
    return rows


def _slope_mb_per_min(samples: list[ServerSample]) -> float | None:
    """Least-squares slope of RSS over the second half of the run."""
    half = [s for s in samples if s.at_s >= samples[-1].at_s / 2] if samples else []
    if len(half) < 3:
        return None
    xs, ys = [s.at_s / 60 for s in half], [s.rss_mb for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den, 2) if den else None


def summarise(log: SoakLog, wall_s: float, windows: int) -> dict[str, Any]:
    completed = [t for t in log.turns if t["status"] == "completed"]
    v2v = [t["first_audio_ms"] for t in completed if t["first_audio_ms"] is not None]
    statuses: dict[str, int] = {}
    for t in log.turns:
        statuses[t["status"]] = statuses.get(t["status"], 0) + 1
    idle = [s for s in log.samples if s.sessions == 0]
    return {
        "wall_s": round(wall_s, 1),
        "sessions_opened": log.sessions_opened,
        "turns": len(log.turns),
        "turns_completed": len(completed),
        "turn_statuses": statuses,
        "error_events": len(log.errors),
        "session_failures": len(log.session_failures),
        "v2v_p50_ms": round(percentile(v2v, 50)) if v2v else None,
        "v2v_p95_ms": round(percentile(v2v, 95)) if v2v else None,
        "rss_mb_first": log.samples[0].rss_mb if log.samples else None,
        "rss_mb_last": log.samples[-1].rss_mb if log.samples else None,
        "rss_mb_max": max((s.rss_mb for s in log.samples), default=None),
        "rss_slope_second_half_mb_per_min": _slope_mb_per_min(log.samples),
        "loop_tasks_when_idle": [s.loop_tasks for s in idle][-3:],
        "threads_first_last": [log.samples[0].threads, log.samples[-1].threads] if log.samples else None,
        "windows": _windows(log, wall_s, windows),
    }


def markdown(run: dict[str, Any]) -> str:
    s, cfg = run["summary"], run["config"]
    lines = [
        f"# Soak: {cfg['sessions']} session(s) for {cfg['minutes']:g} min ({run['started_at']})",
        "",
        f"- sessions opened: {s['sessions_opened']}; turns: {s['turns']}, completed: {s['turns_completed']} "
        f"({s['turn_statuses']})",
        f"- error events: {s['error_events']}; failed sessions: {s['session_failures']}",
        f"- voice-to-voice (end of speech to first answer audio): p50 {s['v2v_p50_ms']} ms, p95 {s['v2v_p95_ms']} ms",
        f"- server RSS: first {s['rss_mb_first']} MB, last {s['rss_mb_last']} MB, max {s['rss_mb_max']} MB; "
        f"slope over the second half {s['rss_slope_second_half_mb_per_min']} MB/min",
        f"- event-loop tasks when no session was open: {s['loop_tasks_when_idle']}; "
        f"threads first/last: {s['threads_first_last']}",
        "",
        "| window (s) | turns | completed | v2v p50 ms | v2v p95 ms | RSS end MB | RSS max MB | tasks max | threads max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in s["windows"]:
        lines.append(f"| {w['from_s']}-{w['to_s']} | {w['turns']} | {w['completed']} | {w['v2v_p50_ms']} | "
                     f"{w['v2v_p95_ms']} | {w['rss_mb_end']} | {w['rss_mb_max']} | {w['loop_tasks_max']} | "
                     f"{w['threads_max']} |")
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    languages = tuple(x.strip() for x in args.languages.split(",") if x.strip())
    recordings = load_corpus(args.audio, languages=languages, include=args.include)
    config = ProbeConfig(url=args.url, headers=_headers(args), pause_after_answer_s=args.pause_s,
                         turn_timeout_s=args.turn_timeout_s)
    log = SoakLog()
    started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.monotonic()
    sampler = asyncio.create_task(_sample_server(_metrics_url(args.url), log, t0), name="soak-sampler")
    try:
        await asyncio.gather(*(_virtual_user(i, args, config, recordings, log, t0, t0 + args.minutes * 60)
                               for i in range(args.sessions)))
        await asyncio.sleep(SAMPLE_INTERVAL_S + 1)  # one sample with every session closed
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    wall_s = time.monotonic() - t0
    return {
        "started_at": started_at,
        "config": {"url": args.url, "sessions": args.sessions, "minutes": args.minutes,
                   "turns_per_session": args.turns_per_session, "languages": languages,
                   "recordings": [str(r.path) for r in recordings]},
        "machine": machine_facts(),
        "versions": versions(),
        "summary": summarise(log, wall_s, args.windows),
        "errors": log.errors,
        "session_failures": log.session_failures,
        "samples": [dataclasses.asdict(s) for s in log.samples],
        "turns": log.turns,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = args.out or Path("var/bench") / ("soak-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(args))
    (out / "soak.json").write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    report = markdown(result)
    (out / "soak.md").write_text(report, encoding="utf-8")
    print(report)
    print(f"wrote {out}/soak.json, soak.md")
    s = result["summary"]
    return 0 if s["error_events"] == 0 and s["session_failures"] == 0 and s["turns_completed"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
