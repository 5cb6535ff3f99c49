"""Per-stage turn latency of a running server, on real recordings streamed at microphone pace.

    python -m benchmarks.turn_latency --url ws://127.0.0.1:8765/v1/realtime --audio ../shared/audio/en

Each recording is streamed in 40 ms appends in real time, followed by silence; the
server's ``response.done.response.latency`` (ms from the end of speech) is collected
and reported as p50/p95 per stage. Sessions run one after another (the full paced,
concurrent harness is issue 4).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
from pathlib import Path

import aiohttp
import numpy as np
import soundfile as sf
import soxr

CHUNK_MS = 40
RATE_HZ = 24_000
TRAILING_SILENCE_S = 2.5
STAGES = ("turn_end", "transcript_final", "first_llm_token", "first_tts_chunk", "first_audio_sent")


def _pcm24k(path: Path) -> bytes:
    audio, rate = sf.read(path, dtype="float32")
    audio = soxr.resample(audio, rate, RATE_HZ) if rate != RATE_HZ else audio
    audio = np.concatenate([audio, np.zeros(int(TRAILING_SILENCE_S * RATE_HZ), np.float32)])
    return np.clip(audio * 32768, -32768, 32767).astype("<i2").tobytes()


async def _one_turn(http: aiohttp.ClientSession, url: str, pcm: bytes) -> dict[str, float]:
    async with http.ws_connect(url, max_msg_size=0) as ws:
        async def stream() -> None:
            step = RATE_HZ * CHUNK_MS // 1000 * 2
            for start in range(0, len(pcm), step):
                await ws.send_str(json.dumps({"type": "input_audio_buffer.append",
                                              "audio": base64.b64encode(pcm[start : start + step]).decode()}))
                await asyncio.sleep(CHUNK_MS / 1000)

        sender = asyncio.create_task(stream())
        try:
            async for msg in ws:
                event = json.loads(msg.data)
                if event["type"] == "response.done":
                    return event["response"].get("latency") or {}
        finally:
            sender.cancel()
    return {}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8765/v1/realtime")
    parser.add_argument("--audio", type=Path, default=Path("../shared/audio/en"))
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    files = sorted(args.audio.glob("*.wav")) * args.rounds
    results: list[dict[str, float]] = []
    async with aiohttp.ClientSession() as http:
        for path in files:
            latency = await asyncio.wait_for(_one_turn(http, args.url, _pcm24k(path)), timeout=120)
            results.append(latency)
            print(f"{path.name}: {latency}")
    print(f"\n{len(results)} turns; ms from the end of user speech")
    print(f"{'stage':18s} {'p50':>8s} {'p95':>8s} {'mean':>8s}")
    for stage in STAGES:
        values = [r[stage] for r in results if r.get(stage) is not None]
        if values:
            print(f"{stage:18s} {_percentile(values, 0.5):8.0f} {_percentile(values, 0.95):8.0f} "
                  f"{statistics.fmean(values):8.0f}")


if __name__ == "__main__":
    asyncio.run(main())
