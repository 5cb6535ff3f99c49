"""A client that stops reading is cut off without holding anyone else; a conversation is bounded.
A server of its own with small buffers, a short send timeout and a short conversation limit."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import threading
import time
import urllib.request

import aiohttp
import pytest

from tests.e2e.conftest import start_server

pytestmark = pytest.mark.e2e

SEND_TIMEOUT_S = 2
ASKS = 10
MAX_ITEMS = 4


@pytest.fixture(scope="module")
def bounded_server(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("bounded") / "server.log"
    proc, url = start_server(log_path, TINGSHUO_SERVER_SEND_TIMEOUT_S=str(SEND_TIMEOUT_S),
                             TINGSHUO_SERVER_SEND_BUFFER_BYTES="16384",
                             TINGSHUO_SERVER_MAX_CONVERSATION_ITEMS=str(MAX_ITEMS),
                             TINGSHUO_SERVER_MAX_ITEM_CHARS="2000")
    yield url, log_path
    proc.terminate()
    proc.wait(30)


def _masked_text_frame(text: str) -> bytes:
    """A client-to-server WebSocket text frame (clients must mask)."""
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _stalling_client(url: str) -> socket.socket:
    """A real TCP WebSocket client with a tiny receive buffer that asks for a spoken story and
    then never reads again (a frozen tab)."""
    host, port = re.match(r"http://([^:]+):(\d+)", url).groups()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall((f"GET /v1/realtime HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    story = {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "Tell me a long story about a dragon who learns to bake bread."}]}}
    threading.Thread(target=_keep_asking, args=(sock, story), daemon=True).start()
    return sock


def _keep_asking(sock: socket.socket, story: dict) -> None:
    """Asks again every 2 s: a short answer (in a CI run it was done 4 s after it was asked)
    fits in the buffers, so the frozen tab keeps asking until what it never reads fills them.
    It never reads, but it can still write, until the server cuts it off."""
    for _ in range(ASKS):
        try:
            sock.sendall(_masked_text_frame(json.dumps(story)))
            sock.sendall(_masked_text_frame(json.dumps({"type": "response.create", "response": {
                "instructions": "Tell a long story of at least ten sentences.", "max_output_tokens": 400}})))
        except OSError:
            return  # cut off
        time.sleep(2)


def _stalled_count(url: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    match = re.search(r"^tingshuo_clients_stalled_total ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_a_client_that_stops_reading_is_cut_off_and_others_are_unaffected(bounded_server):
    url, log_path = bounded_server
    before = _stalled_count(url)
    stalled = _stalling_client(url)
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(url.replace("http", "ws") + "/v1/realtime") as ws:
            # While the stalled client's answer backs up, another session holds a whole conversation.
            await ws.send_json({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
            await ws.send_json({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                "content": [{"type": "input_text", "text": "What is two plus two?"}]}})
            await ws.send_json({"type": "response.create"})
            while True:
                event = json.loads((await ws.receive(timeout=120)).data)
                if event["type"] == "response.done":
                    break
            assert event["response"]["status"] == "completed"
            answer = event["response"]["output"][0]["content"][0]["text"]
            assert answer.strip()
        for _ in range(120):  # the abort comes SEND_TIMEOUT_S after the buffers fill
            if _stalled_count(url) > before:
                break
            await asyncio.sleep(0.5)
        assert _stalled_count(url) == before + 1
        assert "stopped reading for 2 s: connection aborted" in log_path.read_text()
        # The stalled client finds its connection reset once it reads what was buffered.
        stalled.settimeout(10)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            while stalled.recv(65536):
                pass
            raise ConnectionResetError("closed")  # an orderly EOF also means the server let go
    finally:
        stalled.close()


async def test_a_conversation_keeps_its_newest_items_and_says_which_it_dropped(bounded_server):
    url, _ = bounded_server
    async with aiohttp.ClientSession() as http, http.ws_connect(url.replace("http", "ws") + "/v1/realtime") as ws:
        await ws.receive(timeout=10)  # session.created
        ids = [f"item_{i}" for i in range(MAX_ITEMS + 2)]
        for item_id in ids:
            await ws.send_json({"type": "conversation.item.create", "item": {
                "id": item_id, "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": f"note {item_id}"}]}})
        await ws.send_json({"type": "conversation.item.create", "event_id": "big", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "x" * 2001}]}})
        await ws.send_json({"type": "conversation.item.retrieve", "item_id": ids[0], "event_id": "gone"})
        await ws.send_json({"type": "conversation.item.retrieve", "item_id": ids[-1], "event_id": "kept"})
        deleted, errors = [], {}
        while True:
            event = json.loads((await ws.receive(timeout=10)).data)
            if event["type"] == "conversation.item.deleted":
                deleted.append(event["item_id"])
            elif event["type"] == "error":
                errors[event["error"]["event_id"]] = event["error"]["code"]
            elif event["type"] == "conversation.item.retrieved":
                assert event["item"]["id"] == ids[-1]
                break
        assert deleted == ids[:2]
        assert errors == {"big": "item_too_large", "gone": "item_not_found"}
