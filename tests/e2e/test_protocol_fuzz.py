"""Property-based fuzzing of the Realtime protocol against the real server (hypothesis).

Random and mutated client events, wrong types, huge strings, deep JSON, binary frames where
text is expected, and events out of order. After each one the test sends a marker event and
waits for its answer: every fuzz message must have produced only ``error`` events or the
normal events of a valid request, the session must still answer, and the server must live.
(``response.create`` is left out of the random types so that examples do not queue LLM work;
``tests/e2e/test_bad_input.py`` covers it out of order.)
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import API_KEY

pytestmark = pytest.mark.e2e

CLIENT_TYPES = ["session.update", "input_audio_buffer.append", "input_audio_buffer.commit",
                "input_audio_buffer.clear", "conversation.item.create", "conversation.item.delete",
                "conversation.item.retrieve", "conversation.item.truncate", "response.cancel",
                "no.such.event", ""]
VALID = [
    {"type": "session.update", "session": {"type": "realtime", "instructions": "hi",
                                           "audio": {"input": {"turn_detection": None}}}},
    {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x00\x01" * 480).decode()},
    {"type": "input_audio_buffer.clear"},
    {"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                                  "content": [{"type": "input_text", "text": "hello"}]}},
    {"type": "conversation.item.truncate", "item_id": "item_x", "content_index": 0, "audio_end_ms": 10},
    {"type": "conversation.item.delete", "item_id": "item_x"},
]
MARKER_ID = "event_fuzz_marker"
MARKER = json.dumps({"type": "conversation.item.retrieve", "item_id": "item_does_not_exist", "event_id": MARKER_ID})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_valid(draw) -> str:
    event = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    key = draw(st.sampled_from(sorted(event)))
    event[key] = draw(json_values)
    return json.dumps(event)


@st.composite
def typed_junk(draw) -> str:
    event = draw(st.dictionaries(st.text(max_size=12), json_values, max_size=5))
    event["type"] = draw(st.sampled_from(CLIENT_TYPES))
    return json.dumps(event)


messages = st.one_of(
    json_values.map(json.dumps),
    typed_junk(),
    mutated_valid(),
    st.sampled_from(VALID).map(json.dumps),  # valid, in any order
    st.text(max_size=200),  # not JSON at all
    st.integers(1, 3).map(lambda k: json.dumps({"type": "session.update", "session": {"instructions": "x" * 50_000 * k}})),
    st.integers(200, 50_000).map(lambda depth: "[" * depth + "]" * depth),  # deep JSON
    st.integers(200, 5_000).map(lambda depth: '{"type": "session.update", "session": ' + '{"a": ' * depth + "1"
                                + "}" * depth + "}"),
    st.binary(max_size=300),  # binary where text is expected (and invalid UTF-8)
)


class FuzzConnection:
    """One WebSocket, reopened if the server closes it (which must then be a clean close)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.closes: list[int] = []
        self.cases = 0

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    async def ensure_open(self) -> None:
        if self.ws is not None and not self.ws.closed:
            return
        if self.http is None:
            self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(self.url, headers={"Authorization": f"Bearer {API_KEY}"}, max_msg_size=0)
        first = json.loads((await self.ws.receive(timeout=10)).data)
        assert first["type"] == "session.created"

    async def exchange(self, message: str | bytes) -> list[dict]:
        await self.ensure_open()
        assert self.ws is not None
        if isinstance(message, bytes):
            await self.ws.send_bytes(message)
        else:
            await self.ws.send_str(message)
        await self.ws.send_str(MARKER)
        seen = []
        while True:
            msg = await self.ws.receive(timeout=20)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                self.closes.append(self.ws.close_code)
                return seen + [{"type": "<closed>", "code": self.ws.close_code}]
            event = json.loads(msg.data)
            if event["type"] == "error" and event["error"].get("event_id") == MARKER_ID:
                return seen  # the session answered the marker: it is alive
            seen.append(event)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.http is not None:
            await self.http.close()


@pytest.fixture(scope="module")
def fuzz(server_url):
    connection = FuzzConnection(server_url.replace("http", "ws") + "/v1/realtime")
    yield connection
    connection.run(connection.close())
    connection.loop.close()
    print(f"\nprotocol fuzz: {connection.cases} cases, closes: {connection.closes}")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(message=messages)
def test_any_message_gets_an_answer_and_the_session_lives_on(fuzz, server_url, message):
    fuzz.cases += 1
    seen = fuzz.run(fuzz.exchange(message))
    for event in seen:
        assert event["type"] != "<closed>", f"the server closed the session on {message!r:.200}"
        if event["type"] == "error":
            assert event["error"]["code"] and event["error"]["message"], event
    urllib.request.urlopen(server_url + "/healthz", timeout=5).read()
