"""Bad input gets a clear error event; the session and the server keep working."""

from __future__ import annotations

import base64
import json

import aiohttp
import pytest

from tests.e2e.conftest import API_KEY

pytestmark = pytest.mark.e2e

ITEM = {"type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}}


async def still_works(client) -> None:
    before = len(client.of_type("conversation.item.added"))
    await client.send(ITEM)
    await client.wait_for("conversation.item.added", count=before + 1, timeout=10)


BAD_MESSAGES = [
    ("{not json", "invalid_json"),
    ('["a list"]', "invalid_event"),
    ('{"no_type": 1}', "invalid_event"),
    ('{"type": "no.such.event"}', "unknown_event_type"),
    ('{"type": "input_audio_buffer.append", "audio": "%%%not-base64%%%"}', "invalid_base64"),
    ('{"type": "input_audio_buffer.append", "audio": "' + base64.b64encode(b"\x01\x02\x03").decode() + '"}',
     "invalid_audio"),
    ('{"type": "input_audio_buffer.append"}', "invalid_event"),
    ('{"type": "input_audio_buffer.commit"}', "input_audio_buffer_commit_empty"),
    ('{"type": "response.cancel"}', "response_cancel_not_active"),
    ('{"type": "conversation.item.truncate", "item_id": "nope", "content_index": 0, "audio_end_ms": 5}',
     "item_not_found"),
    ('{"type": "conversation.item.delete", "item_id": "nope"}', "item_not_found"),
    (json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "format": {"type": "audio/pcm", "rate": 44100}}}}}), "invalid_event"),
    (json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"speed": 9}}}}),
     "invalid_value"),
]


@pytest.mark.parametrize("message,code", BAD_MESSAGES, ids=[c for _, c in BAD_MESSAGES])
async def test_bad_message_gets_error_and_session_continues(connect, message, code):
    client = await connect()
    await client.ws.send_str(message)
    error = await client.wait_for("error", timeout=10)
    assert error["error"]["code"] == code
    assert error["error"]["message"]
    await still_works(client)


async def test_oversized_message(connect):
    client = await connect()
    huge = base64.b64encode(bytes(6 * 1024 * 1024)).decode()
    await client.send({"type": "input_audio_buffer.append", "audio": huge, "event_id": "evt_big"})
    error = await client.wait_for("error", timeout=20)
    assert error["error"]["code"] == "message_too_large"
    await still_works(client)


async def test_too_long_append(connect):
    client = await connect()
    pcm = bytes(24_000 * 2 * 15)  # 15 s in one append; the limit is 10 s
    await client.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode(), "event_id": "e1"})
    error = await client.wait_for("error", timeout=10)
    assert error["error"]["code"] == "audio_too_long"
    assert error["error"]["event_id"] == "e1"
    await still_works(client)


async def test_binary_audio_before_it_is_enabled(connect):
    client = await connect()
    await client.ws.send_bytes(bytes(960))
    error = await client.wait_for("error", timeout=10)
    assert error["error"]["code"] == "binary_audio_not_enabled"
    await still_works(client)


async def test_second_response_while_one_is_active(connect):
    client = await connect()
    await client.send(ITEM)
    await client.send({"type": "response.create"})
    await client.send({"type": "response.create"})
    error = await client.wait_for("error", timeout=30)
    assert error["error"]["code"] == "conversation_already_has_active_response"
    done = await client.wait_for("response.done", timeout=120)
    assert done["response"]["status"] in ("completed", "cancelled")


async def test_server_survives_a_client_that_vanishes_mid_answer(connect):
    client = await connect()
    await client.send(ITEM)
    await client.send({"type": "response.create"})
    await client.wait_for("response.created", timeout=10)
    await client.ws.close()
    other = await connect()
    await still_works(other)


@pytest.mark.parametrize("headers, protocols", [
    ({}, ()),
    ({"Authorization": "Bearer wrong-key"}, ()),
    ({}, ("realtime", "openai-insecure-api-key.wrong-key")),
])
async def test_missing_or_wrong_key_is_refused_with_a_reason(server_url, headers, protocols):
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(server_url.replace("http", "ws") + "/v1/realtime", headers=headers,
                                   protocols=protocols) as ws:
            msg = await ws.receive(timeout=10)
            event = json.loads(msg.data)
            assert event["type"] == "error" and event["error"]["code"] == "invalid_api_key", event
            closing = await ws.receive(timeout=10)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1008


async def test_browser_subprotocol_key_is_accepted(server_url):
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(server_url.replace("http", "ws") + "/v1/realtime",
                                   protocols=("realtime", f"openai-insecure-api-key.{API_KEY}")) as ws:
            assert ws.protocol == "realtime"
            event = json.loads((await ws.receive(timeout=10)).data)
            assert event["type"] == "session.created", event
