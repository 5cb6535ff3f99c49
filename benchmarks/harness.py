"""``tingshuo bench``: voice-to-voice latency, barge-in and concurrency of a Realtime server.

    tingshuo bench --url ws://127.0.0.1:8765/v1/realtime --concurrency 1,2,4 --out var/bench/run1
    tingshuo bench --compare var/bench/a/bench.json var/bench/b/bench.json

Real recordings (``../shared/audio`` or any folder with a manifest) are said into each session
at real time; see :mod:`benchmarks.realtime_probe` for what is measured and how. Each
concurrency level runs N sessions at once, every session going through the whole playlist
(rotated, so sessions do not say the same thing at the same moment).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from benchmarks.bench_report import compare_markdown, markdown, plot, summarize_level, write_json
from benchmarks.corpus import Recording, load_corpus
from benchmarks.false_interruptions import OverlayClip, backchannel_clips, false_interrupt_turns, pick_clip
from benchmarks.realtime_probe import ProbeConfig, SessionProbe
from benchmarks.resource_monitor import ResourceMonitor
from benchmarks.speculation_metrics import read_counters, speculation_summary

DEFAULT_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tingshuo bench", description=__doc__.splitlines()[0])
    p.add_argument("--url", default="ws://127.0.0.1:8765/v1/realtime", help="Realtime WebSocket URL")
    p.add_argument("--header", action="append", default=[], metavar="NAME:VALUE",
                   help="extra handshake header, e.g. 'Authorization: Bearer KEY'; repeatable")
    p.add_argument("--api-key", default=os.environ.get("TINGSHUO_BENCH_API_KEY", ""),
                   help="sent as Authorization: Bearer (default $TINGSHUO_BENCH_API_KEY)")
    p.add_argument("--rate", type=int, default=24_000, help="session audio rate (24000; tingshuo also 16000)")
    p.add_argument("--frame-ms", type=int, default=20, choices=range(10, 101), metavar="10-100",
                   help="microphone frame length (default 20)")
    p.add_argument("--audio", type=Path, default=DEFAULT_AUDIO, help="folder of WAVs with a manifest")
    p.add_argument("--languages", default="en,zh")
    p.add_argument("--include", default="", help="only recordings whose path contains this")
    p.add_argument("--turns", type=int, default=0, help="turns per session (default: every recording once)")
    p.add_argument("--concurrency", default="1", help="comma-separated levels, e.g. 1,2,4,8")
    p.add_argument("--barge-in-every", type=int, default=4,
                   help="every Nth turn talks over the answer (0: never)")
    p.add_argument("--barge-in-offset-ms", type=float, default=1500,
                   help="start interrupting this long after the answer's first audio")
    p.add_argument("--false-interrupt-every", type=int, default=4,
                   help="every Nth turn, half a period away from the barge-ins, plays noise or a backchannel "
                        "('uh-huh', '嗯') over the answer and checks the answer survives (0: never)")
    p.add_argument("--false-interrupt-offset-ms", type=float, default=1000,
                   help="start the noise or backchannel this long after the answer's first audio")
    p.add_argument("--backchannel-cache", type=Path, default=Path("var/bench/backchannels"),
                   help="where the synthesized backchannels are kept between runs")
    p.add_argument("--model-dir", type=Path, default=Path("var/models"),
                   help="the embedded voices (Piper, Kokoro) that synthesize the backchannels")
    p.add_argument("--pause-s", type=float, default=1.0, help="silence after an answer before the next turn")
    p.add_argument("--instructions", default="", help="session instructions to send")
    p.add_argument("--turn-timeout-s", type=float, default=120)
    p.add_argument("--server-pid", type=int, help="sample this process's CPU and memory from /proc")
    p.add_argument("--metrics-url", help="Prometheus endpoint with process metrics (default: the server's /metrics)")
    p.add_argument("--label", default="", help="a name for this run in reports and comparisons")
    p.add_argument("--out", type=Path, help="output folder (default var/bench/<time>)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A.json", "B.json"),
                   help="print B's percentiles over A's, stage by stage, and exit")
    return p


def _metrics_url(ws_url: str) -> str:
    parts = urlsplit(ws_url)
    return urlunsplit(("https" if parts.scheme == "wss" else "http", parts.netloc, "/metrics", "", ""))


def _headers(args: argparse.Namespace) -> dict[str, str]:
    headers = {}
    for raw in args.header:
        name, _, value = raw.partition(":")
        if not value:
            raise SystemExit(f"--header {raw!r}: expected NAME:VALUE")
        headers[name.strip()] = value.strip()
    if args.api_key:
        headers.setdefault("Authorization", f"Bearer {args.api_key}")
    return headers


def build_plan(recordings: list[Recording], *, turns: int, session: int, barge_in_every: int
               ) -> list[tuple[Recording, Recording | None]]:
    """The session's playlist, rotated by its index; every Nth turn gets an interruption."""
    count = turns or len(recordings)
    plan = []
    for i in range(count):
        recording = recordings[(session + i) % len(recordings)]
        interruption = None
        if barge_in_every and (i + 1) % barge_in_every == 0:
            same_language = [r for r in recordings if r.language == recording.language and r != recording]
            interruption = min(same_language or recordings, key=lambda r: r.path.stat().st_size)
        plan.append((recording, interruption))
    return plan


def machine_facts() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
        with open("/proc/meminfo") as fh:
            mem_kb = int(fh.readline().split()[1])
    except OSError:
        mem_kb = 0
    return {"cpu_model": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 2**20, 1),
            "platform": platform.platform(), "python": platform.python_version()}


def versions() -> dict[str, str]:
    out = {}
    for package in ("tingshuo", "aiohttp", "numpy", "onnxruntime", "faster-whisper", "llama-cpp-python", "piper-tts"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


class Progress:
    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit="turn", file=sys.stderr)

    def step(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def plan_false_interruptions(plan: list[tuple[Recording, Recording | None]], *, session: int, every: int,
                             barge_in_every: int, backchannels: list[OverlayClip], noise_files: list[Path]
                             ) -> dict[int, OverlayClip]:
    """Turn index → the noise slice or backchannel said over that turn's answer."""
    overlays = {}
    for k, turn in enumerate(false_interrupt_turns(len(plan), every=every, barge_in_every=barge_in_every)):
        clip = pick_clip(k, language=plan[turn][0].language, session=session, turn=turn,
                         backchannels=backchannels, noise_files=noise_files)
        if clip is not None:
            overlays[turn] = clip
    return overlays


async def run_level(args: argparse.Namespace, config: ProbeConfig, recordings: list[Recording],
                    concurrency: int, clips: tuple[list[OverlayClip], list[Path]] = ([], [])) -> dict[str, Any]:
    plans = [build_plan(recordings, turns=args.turns, session=i, barge_in_every=args.barge_in_every)
             for i in range(concurrency)]
    overlays = [plan_false_interruptions(plans[i], session=i, every=args.false_interrupt_every,
                                         barge_in_every=args.barge_in_every, backchannels=clips[0],
                                         noise_files=clips[1]) for i in range(concurrency)]
    total = sum(len(p) + sum(1 for _, b in p if b) for p in plans)
    progress = Progress(total, f"{concurrency} session(s)", not args.no_progress)
    probes = [SessionProbe(config, session_index=i, concurrency=concurrency) for i in range(concurrency)]
    metrics_url = args.metrics_url or _metrics_url(args.url)
    monitor = ResourceMonitor(pid=args.server_pid, metrics_url=metrics_url)
    speculation_before = await read_counters(metrics_url)
    sampling = asyncio.create_task(monitor.run(), name="resource-monitor")
    started = asyncio.get_running_loop().time()

    async def one(i: int) -> None:
        await asyncio.sleep(0.37 * i)  # people do not all start talking in the same frame
        await probes[i].run(plans[i], barge_in_offset_ms=args.barge_in_offset_ms, on_turn=progress.step,
                            overlays=overlays[i], false_interrupt_offset_ms=args.false_interrupt_offset_ms)

    try:
        outcomes = await asyncio.gather(*(one(i) for i in range(concurrency)), return_exceptions=True)
    finally:
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
        progress.close()
    speculation_after = await read_counters(metrics_url)
    turns = [dataclasses.asdict(t) for p in probes for t in p.turns]
    barge_ins = [dataclasses.asdict(b) for p in probes for b in p.barge_ins]
    false_interruptions = [dataclasses.asdict(f) for p in probes for f in p.false_interruptions]
    samples = monitor.samples
    cpu_seconds = samples[-1].cpu_seconds - samples[0].cpu_seconds if len(samples) >= 2 else None
    return {
        "concurrency": concurrency,
        "wall_s": round(asyncio.get_running_loop().time() - started, 1),
        "session_failures": [repr(o) for o in outcomes if isinstance(o, BaseException)],
        "error_events": [e for p in probes for e in p.errors],
        "server_session": probes[0].server_session.get("model"),
        "resources": monitor.summary(),
        "turns": turns,
        "barge_ins": barge_ins,
        "false_interruptions": false_interruptions,
        "speculation": speculation_summary(speculation_before, speculation_after, cpu_seconds),
        "summary": summarize_level(turns, barge_ins, false_interruptions),
    }


async def overlay_clips(args: argparse.Namespace, languages: tuple[str, ...]
                        ) -> tuple[list[OverlayClip], list[Path], list[str]]:
    """The backchannels (synthesized once, cached) and the noise recordings false interruptions use."""
    if args.false_interrupt_every <= 0:
        return [], [], []
    noise_files = sorted((args.audio / "noise").glob("*.wav"))
    backchannels, problems = await asyncio.to_thread(backchannel_clips, args.backchannel_cache,
                                                     languages=languages, model_dir=args.model_dir)
    return backchannels, noise_files, problems


async def run(args: argparse.Namespace) -> dict[str, Any]:
    languages = tuple(x.strip() for x in args.languages.split(",") if x.strip())
    recordings = load_corpus(args.audio, languages=languages, include=args.include)
    config = ProbeConfig(url=args.url, headers=_headers(args), rate=args.rate, frame_ms=args.frame_ms,
                         pause_after_answer_s=args.pause_s, turn_timeout_s=args.turn_timeout_s,
                         instructions=args.instructions)
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    run_data: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                      if k not in ("api_key", "header", "compare")},
                   "headers": sorted(_headers(args)), "recordings": [str(r.path) for r in recordings]},
        "machine": machine_facts(),
        "versions": versions(),
        "levels": [],
    }
    backchannels, noise_files, problems = await overlay_clips(args, languages)
    run_data["false_interruption_clips"] = {
        "backchannels": [{"name": c.name, "language": c.language, "seconds": c.seconds} for c in backchannels],
        "noise": [str(p) for p in noise_files],
        "problems": problems,
    }
    for concurrency in levels:
        run_data["levels"].append(await run_level(args, config, recordings, concurrency, (backchannels, noise_files)))
    run_data["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return run_data


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.compare:
        a, b = (json.loads(p.read_text(encoding="utf-8")) for p in args.compare)
        print(compare_markdown(a, b))
        return 0
    out = args.out or Path("var/bench") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    run_data = asyncio.run(run(args))
    write_json(run_data, out / "bench.json")
    report = markdown(run_data)
    (out / "summary.md").write_text(report, encoding="utf-8")
    if not args.no_plots:
        plot(run_data, out)
    print(report)
    print(f"\nwrote {out}/bench.json, summary.md" + ("" if args.no_plots else ", latency_cdf.png, stage_breakdown.png, "
                                                   "latency_vs_concurrency.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
