"""What a front door and shared state add to a Realtime session, measured without the models.

A voice-to-voice time is seconds of model work with run-to-run noise of a hundred milliseconds, so
a millisecond-sized cost cannot be read off two ``tingshuo bench`` runs. This probe measures the
two places where a fleet's machinery sits on the user's path directly, on every URL given, in
interleaved rounds (so machine load falls on all alike):

- **open**: the WebSocket handshake to ``session.created`` (behind nginx: the proxy's connect,
  then Redis admission and the client-secret lookup on the worker); once per session;
- **round trip**: ``session.update`` → ``session.updated`` on an open session: one message up and
  one down through everything between the client and the session. A turn's voice-to-voice time
  crosses that path once each way (the last audio frame up, the first audio frame down), so the
  difference of two URLs' round trips is what the path adds to every answer.

    python -m benchmarks.front_door --url direct=ws://127.0.0.1:8765/v1/realtime \
        --url nginx=ws://127.0.0.1:8080/v1/realtime --sessions 20 --rounds 50 --out var/bench/front-door
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from benchmarks.latency_stats import summarize


@dataclass
class Samples:
    open_ms: list[float] = field(default_factory=list)
    round_trip_ms: list[float] = field(default_factory=list)


async def _receive_type(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout_s: float) -> dict:
    while True:
        msg = await ws.receive(timeout=timeout_s)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"expected {kind}, the socket said {msg.type.name} {msg.data!r}")
        event = json.loads(msg.data)
        if event["type"] == kind:
            return event
        if event["type"] == "error":
            raise RuntimeError(f"expected {kind}, got an error: {event['error']}")


async def one_session(http: aiohttp.ClientSession, url: str, headers: dict[str, str], rounds: int,
                      samples: Samples, timeout_s: float = 10.0) -> None:
    started = time.perf_counter()
    ws = await http.ws_connect(url, headers=headers, max_msg_size=0)
    try:
        await _receive_type(ws, "session.created", timeout_s)
        samples.open_ms.append((time.perf_counter() - started) * 1000)
        for i in range(rounds):
            sent = time.perf_counter()
            await ws.send_str(json.dumps({"type": "session.update", "session": {
                "type": "realtime", "instructions": f"Round {i}."}}))
            await _receive_type(ws, "session.updated", timeout_s)
            samples.round_trip_ms.append((time.perf_counter() - sent) * 1000)
    finally:
        await ws.close()


async def measure(urls: dict[str, str], *, sessions: int, rounds: int, headers: dict[str, str]) -> dict[str, Samples]:
    results = {name: Samples() for name in urls}
    async with aiohttp.ClientSession() as http:
        for name, url in urls.items():  # warm: the first connection pays for imports and pools
            await one_session(http, url, headers, 2, Samples())
        for _ in range(sessions):
            for name, url in urls.items():
                await one_session(http, url, headers, rounds, results[name])
    return results


def report(results: dict[str, Samples], *, label: str) -> tuple[dict, str]:
    names = list(results)
    summary = {name: {"open_ms": asdict(summarize(s.open_ms)), "round_trip_ms": asdict(summarize(s.round_trip_ms))}
               for name, s in results.items()}
    lines = [f"# Front door and shared state: {label}", "",
             "| path | open p50 | open p95 | round trip p50 | round trip p95 | sessions | round trips |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        o, r = summary[name]["open_ms"], summary[name]["round_trip_ms"]
        lines.append(f"| {name} | {o['p50']:.2f} | {o['p95']:.2f} | {r['p50']:.2f} | {r['p95']:.2f} | "
                     f"{o['n']} | {r['n']} |")
    base = names[0]
    if len(names) > 1:
        lines += ["", f"Added over `{base}` (ms, p50): "]
        for name in names[1:]:
            lines.append(f"- `{name}`: open {summary[name]['open_ms']['p50'] - summary[base]['open_ms']['p50']:+.2f}, "
                         f"round trip {summary[name]['round_trip_ms']['p50'] - summary[base]['round_trip_ms']['p50']:+.2f}")
    return summary, "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="what a front door and shared state add to a Realtime session")
    parser.add_argument("--url", action="append", required=True, metavar="NAME=WS_URL",
                        help="a path to measure; the first is the baseline the others are compared with")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=50, help="round trips per session")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    urls = dict(item.split("=", 1) for item in args.url)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    results = asyncio.run(measure(urls, sessions=args.sessions, rounds=args.rounds, headers=headers))
    summary, markdown = report(results, label=args.label or ", ".join(urls))
    print(markdown)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "front_door.json").write_text(json.dumps({
            "label": args.label, "urls": urls, "sessions": args.sessions, "rounds": args.rounds,
            "summary": summary, "samples": {n: asdict(s) for n, s in results.items()}}, indent=1))
        (args.out / "front_door.md").write_text(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
