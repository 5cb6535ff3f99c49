"""Limits with clear errors: sessions per client address, audio faster than real time, idle time.
A server of its own, with small limits, so the limits are reached quickly."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import numpy as np
import pytest

from tests.e2e.conftest import start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    proc, url = start_server(tmp_path_factory.mktemp("limited") / "server.log",
                             TINGSHUO_SERVER_MAX_SESSIONS_PER_CLIENT="2", TINGSHUO_SERVER_IDLE_TIMEOUT_S="2",
                             TINGSHUO_SERVER_MAX_AUDIO_SPEED="2")
    yield url
    proc.terminate()
    proc.wait(30)


async def test_a_third_session_from_one_address_is_refused(limited_server):
    ws_url = limited_server.replace("http", "ws") + "/v1/realtime"
    async with aiohttp.ClientSession() as http:
        first, second = await http.ws_connect(ws_url), await http.ws_connect(ws_url)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws_url)
        assert refused.value.status == 429
        await first.close()
        await asyncio.sleep(0.3)
        third = await http.ws_connect(ws_url)  # a slot is free again
        await third.close()
        await second.close()


async def test_audio_faster_than_the_limit_is_refused_and_the_session_goes_on(limited_server):
    ws_url = limited_server.replace("http", "ws") + "/v1/realtime"
    second_of_audio = base64.b64encode(np.zeros(24_000, "<i2").tobytes()).decode()
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(ws_url) as ws:
            await ws.receive(timeout=10)
            for _ in range(40):  # 40 s of audio at once: the 30 s burst, then refusals
                await ws.send_json({"type": "input_audio_buffer.append", "audio": second_of_audio})
            await ws.send_json({"type": "input_audio_buffer.clear"})
            codes = []
            while True:
                event = json.loads((await ws.receive(timeout=20)).data)
                if event["type"] == "input_audio_buffer.cleared":
                    break
                if event["type"] == "error":
                    codes.append(event["error"]["code"])
            assert 8 <= codes.count("audio_rate_exceeded") <= 10, codes


async def test_an_idle_session_is_told_why_and_closed(limited_server):
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(limited_server.replace("http", "ws") + "/v1/realtime") as ws:
            await ws.receive(timeout=10)
            event = json.loads((await ws.receive(timeout=10)).data)
            assert event["type"] == "error" and event["error"]["code"] == "idle_timeout", event
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) and ws.close_code == 1000
