"""No session reaches another's audio, transcript or history; the server log, even at DEBUG,
holds neither the API key, nor a client secret, nor the audio. A server of its own, logging at DEBUG."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import numpy as np
import pytest

from tests.e2e.conftest import start_server
from tests.e2e.realtime_client import RealtimeTestClient, load_speech, silence

pytestmark = pytest.mark.e2e

KEY = "sk-hygiene-0123456789abcdef"


@pytest.fixture(scope="module")
def debug_server(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("hygiene") / "server.log"
    proc, url = start_server(log_path, TINGSHUO_SERVER_API_KEY=KEY, TINGSHUO_SERVER_LOG_LEVEL="DEBUG")
    yield url, log_path
    proc.terminate()
    proc.wait(30)


async def _client(http: aiohttp.ClientSession, url: str, key: str) -> RealtimeTestClient:
    ws = await http.ws_connect(url.replace("http", "ws") + "/v1/realtime", max_msg_size=0,
                               headers={"Authorization": f"Bearer {key}"})
    client = RealtimeTestClient(ws=ws)
    client.start()
    await client.wait_for("session.created", timeout=10)
    return client


def _ask(text: str, item_id: str) -> dict:
    return {"type": "conversation.item.create", "item": {"id": item_id, "type": "message", "role": "user",
                                                         "content": [{"type": "input_text", "text": text}]}}


async def test_sessions_cannot_reach_each_other_and_logs_hold_no_secrets_or_audio(debug_server):
    url, log_path = debug_server
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/v1/realtime/client_secrets", headers={"Authorization": f"Bearer {KEY}"},
                             json={"session": {"type": "realtime", "instructions": "You are Alice's butler."}}) as r:
            secret = (await r.json())["value"]
        alice = await _client(http, url, secret)
        bob = await _client(http, url, KEY)

        # Alice speaks (real speech) and tells a secret in text; Bob asks for it.
        audio = load_speech("en/en_cheetah_platforms.wav")
        await alice.send_audio(np.concatenate([audio, silence(1.5)]), realtime_factor=0.0)
        await alice.wait_for("conversation.item.input_audio_transcription.completed", timeout=120)
        await alice.send(_ask("Remember this: my locker code word is marmalade.", "item_alice_secret"))
        await alice.wait_for("conversation.item.done", timeout=10,
                             where=lambda e: e["item"]["id"] == "item_alice_secret")

        await bob.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
        for event_id, event in {
            "retrieve": {"type": "conversation.item.retrieve", "item_id": "item_alice_secret"},
            "delete": {"type": "conversation.item.delete", "item_id": "item_alice_secret"},
            "truncate": {"type": "conversation.item.truncate", "item_id": "item_alice_secret",
                         "content_index": 0, "audio_end_ms": 0},
        }.items():
            await bob.send({**event, "event_id": event_id})
        await bob.send(_ask("What is my locker code word? If you do not know, say you do not know.", "item_bob_q"))
        await bob.send({"type": "response.create"})
        done = await bob.wait_for("response.done", timeout=120)

        bob_errors = {e["error"]["event_id"]: e["error"]["code"] for e in bob.events if e["type"] == "error"}
        assert bob_errors == {"retrieve": "item_not_found", "delete": "item_not_found", "truncate": "item_not_found"}
        answer = done["response"]["output"][0]["content"][0]["text"]
        assert "marmalade" not in answer.lower()
        bob_text = json.dumps(bob.events, ensure_ascii=False)
        assert "marmalade" not in bob_text and "butler" not in bob_text
        assert not any(e["type"].startswith("input_audio_buffer") for e in bob.events)
        # Alice's item is intact after Bob's attempts.
        await alice.send({"type": "conversation.item.retrieve", "item_id": "item_alice_secret"})
        kept = await alice.wait_for("conversation.item.retrieved", timeout=10)
        assert "marmalade" in kept["item"]["content"][0]["text"]
        await alice.close()
        await bob.close()

    await asyncio.sleep(0.5)
    log = log_path.read_text(errors="replace")
    assert "session" in log and "DEBUG" in log  # the log was written, at DEBUG
    assert KEY not in log
    assert secret not in log and secret[3:] not in log
    pcm_b64 = base64.b64encode(audio[24_000:36_000].tobytes()).decode()
    fragments = {pcm_b64[i:i + 24] for i in range(0, len(pcm_b64) - 24, 997)}
    assert not any(f in log for f in fragments), "audio (base64) found in the server log"
    assert not any(f in log for f in _raw_fragments(audio)), "raw audio bytes found in the server log"


def _raw_fragments(audio: np.ndarray) -> set[str]:
    raw = audio[24_000:30_000].tobytes().decode("latin-1")
    return {raw[i:i + 16] for i in range(0, len(raw) - 16, 1009)}
