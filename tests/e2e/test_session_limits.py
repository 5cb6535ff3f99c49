"""Limits with clear errors: sessions per client address, audio faster than real time, idle time.
A server of its own, with small limits, so the limits are reached quickly."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import numpy as np
import pytest

from streaming.audio_rate_limit import AudioRateLimit
from tests.e2e.conftest import start_server

pytestmark = pytest.mark.e2e

BURST_S = int(AudioRateLimit().burst_s)
"""Seconds of audio a session may send at once."""
MAX_AUDIO_SPEED = 0.001
"""So slow a refill that the allowance gains under a second of audio in 1,000 s: which appends are
refused depends on the burst alone, not on how fast this machine runs (the refill itself is
tests/streaming/test_audio_rate_limit.py's)."""


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    proc, url = start_server(tmp_path_factory.mktemp("limited") / "server.log",
                             TINGSHUO_SERVER_MAX_SESSIONS_PER_CLIENT="2", TINGSHUO_SERVER_IDLE_TIMEOUT_S="2",
                             TINGSHUO_SERVER_MAX_AUDIO_SPEED=str(MAX_AUDIO_SPEED))
    yield url
    proc.terminate()
    proc.wait(30)


async def sessions_active(http: aiohttp.ClientSession, url: str) -> float:
    async with http.get(url + "/metrics") as response:
        text = await response.text()
    (line,) = [line for line in text.splitlines() if line.startswith("tingshuo_sessions_active ")]
    return float(line.split()[1])


async def wait_for_sessions(http: aiohttp.ClientSession, url: str, at_most: int, *, timeout_s: float = 10) -> None:
    """Until the server counts at most ``at_most`` open sessions. It frees a client's slot just before
    it counts the session closed, which is after the closing handshake that ``close()`` waits for."""
    deadline = time.monotonic() + timeout_s
    while (active := await sessions_active(http, url)) > at_most:
        assert time.monotonic() < deadline, f"the server still counts {active:g} sessions after {timeout_s} s"
        await asyncio.sleep(0.05)


async def test_a_third_session_from_one_address_is_refused(limited_server):
    ws_url = limited_server.replace("http", "ws") + "/v1/realtime"
    async with aiohttp.ClientSession() as http:
        await wait_for_sessions(http, limited_server, 0)  # whatever another test left is gone
        first, second = await http.ws_connect(ws_url), await http.ws_connect(ws_url)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws_url)
        assert refused.value.status == 429
        await first.close()
        await wait_for_sessions(http, limited_server, 1)
        third = await http.ws_connect(ws_url)  # a slot is free again
        await third.close()
        await second.close()


async def test_audio_faster_than_the_limit_is_refused_and_the_session_goes_on(limited_server):
    ws_url = limited_server.replace("http", "ws") + "/v1/realtime"
    second_of_audio = base64.b64encode(np.zeros(24_000, "<i2").tobytes()).decode()
    async with aiohttp.ClientSession() as http:
        await wait_for_sessions(http, limited_server, 0)  # the slots another test closed are free
        async with http.ws_connect(ws_url) as ws:
            await ws.receive(timeout=10)
            appends = [f"append-{i}" for i in range(BURST_S + 10)]  # 40 s of audio at once
            for event_id in appends:
                await ws.send_json({"type": "input_audio_buffer.append", "event_id": event_id,
                                    "audio": second_of_audio})
            await ws.send_json({"type": "input_audio_buffer.clear"})
            refused, other = [], []
            while True:
                event = json.loads((await ws.receive(timeout=20)).data)
                if event["type"] == "input_audio_buffer.cleared":
                    break
                if event["type"] == "error":
                    error = event["error"]
                    (refused if error["code"] == "audio_rate_exceeded" else other).append(error["event_id"])
            # The 30 s burst is taken whole; nothing refills in the test's lifetime, so each append after it is refused.
            assert refused == appends[BURST_S:] and not other, (refused, other)


async def test_an_idle_session_is_told_why_and_closed(limited_server):
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(limited_server.replace("http", "ws") + "/v1/realtime") as ws:
            await ws.receive(timeout=10)
            event = json.loads((await ws.receive(timeout=10)).data)
            assert event["type"] == "error" and event["error"]["code"] == "idle_timeout", event
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) and ws.close_code == 1000
