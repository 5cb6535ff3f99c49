"""500 connect / talk / disconnect cycles, cut at every stage, leave nothing behind.

Clients vanish right after connecting, mid-utterance, right after their turn is committed, and
mid-answer. Afterwards the server's asyncio tasks and threads must be back at their baseline and
its memory must not have grown beyond allocator noise (the numbers are printed)."""

from __future__ import annotations

import asyncio
import base64
import re
import urllib.request

import aiohttp
import numpy as np
import pytest

from tests.e2e.conftest import API_KEY
from tests.e2e.realtime_client import load_speech

pytestmark = pytest.mark.e2e
CYCLES = 500
PARALLEL = 4
RSS_GROWTH_LIMIT_MB = 120.0


def server_gauges(base: str) -> dict[str, float]:
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    grab = lambda name: float(re.search(rf"^{name} (\S+)", text, re.M).group(1))  # noqa: E731
    return {"tasks": grab("tingshuo_event_loop_tasks"), "threads": grab("tingshuo_threads"),
            "sessions": grab("tingshuo_sessions_active"), "rss_mb": grab("process_resident_memory_bytes") / 2**20}


SPEECH = load_speech("en/en_harvard_spk1_snt1.wav")
CHUNK = base64.b64encode(SPEECH[:24_000 * 1 // 2].astype("<i2").tobytes()).decode()  # 0.5 s


async def one_cycle(http: aiohttp.ClientSession, url: str, stage: int) -> None:
    async with http.ws_connect(url, headers={"Authorization": f"Bearer {API_KEY}"}, max_msg_size=0) as ws:
        await ws.receive(timeout=10)  # session.created
        if stage == 0:
            return  # gone right after connecting
        await ws.send_json({"type": "session.update", "session": {"type": "realtime",
                                                                  "audio": {"input": {"turn_detection": None}}}})
        await ws.send_json({"type": "input_audio_buffer.append", "audio": CHUNK})
        if stage == 1:
            return  # mid-utterance
        await ws.send_json({"type": "input_audio_buffer.commit"})
        if stage == 2:
            return  # turn committed, transcription running
        await ws.send_json({"type": "response.create"})
        while True:  # mid-answer: leave on the first audio or after the response starts
            msg = await ws.receive(timeout=60)
            if msg.type is not aiohttp.WSMsgType.TEXT or '"response.output_audio.delta"' in msg.data \
                    or '"response.done"' in msg.data:
                return


async def run_cycles(base: str, count: int) -> None:
    url = base.replace("http", "ws") + "/v1/realtime"
    async with aiohttp.ClientSession() as http:
        for start in range(0, count, PARALLEL):
            await asyncio.gather(*(one_cycle(http, url, (start + i) % 4) for i in range(PARALLEL)))


async def settled(base: str, baseline: dict[str, float]) -> dict[str, float]:
    for _ in range(60):  # let cancelled jobs drain out of the executors
        now = await asyncio.to_thread(server_gauges, base)
        if now["sessions"] == 0 and now["tasks"] <= baseline["tasks"] and now["threads"] <= baseline["threads"]:
            return now
        await asyncio.sleep(0.5)
    return now


@pytest.mark.timeout(900)  # 520 cycles, a quarter of them waiting for an answer's first audio: 4-6 min here
async def test_five_hundred_cut_off_sessions_leave_nothing_behind(server_url):
    await run_cycles(server_url, 20)  # warm-up: lazy loads (decoders, executors' threads) happen here
    baseline = await settled(server_url, {"tasks": np.inf, "threads": np.inf})
    await run_cycles(server_url, CYCLES)
    after = await settled(server_url, baseline)
    print(f"\nafter {CYCLES} cycles: tasks {baseline['tasks']:.0f} -> {after['tasks']:.0f}, threads "
          f"{baseline['threads']:.0f} -> {after['threads']:.0f}, RSS {baseline['rss_mb']:.0f} -> {after['rss_mb']:.0f} MB")
    assert after["sessions"] == 0
    assert after["tasks"] <= baseline["tasks"] and after["threads"] <= baseline["threads"], (baseline, after)
    assert after["rss_mb"] - baseline["rss_mb"] < RSS_GROWTH_LIMIT_MB, (baseline, after)
