"""PooledChatModel against two real OpenAI-compatible SSE servers started here (aiohttp on 127.0.0.1):
conversations spread and stick, a stopped server fails over with no error, an error after the first
token propagates, a restarted server comes back through the prober, closing the stream releases its
slot, and with every server down the error names them. Plus the engines' wiring of the pool."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

import aiohttp
import pytest
from aiohttp import web

from models.endpoint_pool import PoolParams
from models.interfaces import ChatMessage, GenerationParams
from models.openai_chat import ChatEndpointError
from models.pooled_chat import PooledChatModel

FAST = PoolParams(first_backoff_s=0.05, max_backoff_s=0.2, probe_timeout_s=1.0)
WAIT_S = 10.0
MESSAGES = [ChatMessage("user", "hello")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sse(content: str) -> bytes:
    return b"data: " + json.dumps({"choices": [{"delta": {"content": content}}]}).encode() + b"\n\n"


class StandIn:
    """A tiny OpenAI-compatible streaming server: answers ``"<name> says hello"`` in three pieces.

    ``status``: answer every chat request with that HTTP status instead. ``drop_after_first``: close
    the connection after the first piece. ``hold``: wait after the first piece until it is set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.chats = 0
        self.status: int | None = None
        self.drop_after_first = False
        self.hold: asyncio.Event | None = None
        self.first_sent = asyncio.Event()
        self.client_left = asyncio.Event()
        self.probed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/health", self._health)
        # handler_cancellation: a client that closes its stream cancels the handler (as vLLM aborts).
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Kills it as a crash would: the port refuses connections afterwards."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, request: web.Request) -> web.Response:
        self.probed.set()
        return web.json_response({"status": "ok"})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        await request.json()
        self.chats += 1
        if self.status is not None:
            return web.Response(status=self.status, text="unavailable")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for i, piece in enumerate((f"{self.name} ", "says ", "hello")):
                await response.write(sse(piece))
                if i == 0:
                    self.first_sent.set()
                    if self.drop_after_first:
                        assert request.transport is not None
                        request.transport.close()
                        return response
                    if self.hold is not None:
                        await self.hold.wait()
            await response.write(b"data: [DONE]\n\n")
        except asyncio.CancelledError:
            self.client_left.set()
            raise
        return response


@pytest.fixture
async def servers() -> AsyncIterator[tuple[StandIn, StandIn]]:
    a, b = StandIn("A"), StandIn("B")
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


@pytest.fixture
async def model(servers) -> AsyncIterator[PooledChatModel]:
    a, b = servers
    chat = PooledChatModel([a.url, b.url], model="m", pool=FAST)
    await chat.astart()
    yield chat
    await chat.aclose()


async def answer(model: PooledChatModel, conversation: str | None) -> str:
    async def run() -> str:
        return "".join([str(p) async for p in model.stream_chat(MESSAGES, GenerationParams(conversation=conversation))])
    return await asyncio.wait_for(run(), WAIT_S)


async def until(condition: Callable[[], bool], what: str) -> None:
    """For state only polling can see (the prober's verdict lands just after the server answered)."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        await asyncio.sleep(0.01)


def state(model: PooledChatModel) -> list[tuple[bool, int, int]]:
    return [(e.healthy, e.conversations, e.in_flight) for e in model.endpoints()]


async def test_conversations_spread_across_both_and_stick(model):
    first = [await answer(model, f"c{i}") for i in range(4)]
    assert first == ["A says hello", "B says hello", "A says hello", "B says hello"]
    again = [await answer(model, f"c{i}") for i in (3, 2, 1, 0, 0)]
    assert again == ["B says hello", "A says hello", "B says hello", "A says hello", "A says hello"]
    assert state(model) == [(True, 2, 0), (True, 2, 0)]
    assert model.ready


async def test_a_stopped_server_fails_over_then_comes_back_through_the_probe(servers, model):
    a, _ = servers
    assert [await answer(model, c) for c in ("c0", "c1", "c2")] == ["A says hello", "B says hello", "A says hello"]
    await a.stop()
    assert await answer(model, "c0") == "B says hello"  # no error: the request went on to B
    assert state(model) == [(False, 0, 0), (True, 2, 0)]  # c2 forgotten with A; c0 now on B
    assert await answer(model, "c0") == "B says hello"  # and stays there
    assert await answer(model, "c2") == "B says hello"
    assert model.ready

    a.probed.clear()
    await a.start()  # the same port
    await asyncio.wait_for(a.probed.wait(), WAIT_S)
    await until(lambda: model.endpoints()[0].healthy, "A healthy again")
    assert await answer(model, "new") == "A says hello"  # the emptier endpoint gets new conversations
    assert await answer(model, "c0") == "B says hello"  # moved conversations stay where their cache is


async def test_an_unavailable_status_before_the_first_token_fails_over(servers, model):
    a, _ = servers
    a.status = 503
    assert await answer(model, "c0") == "B says hello"
    assert a.chats == 1 and not model.endpoints()[0].healthy


async def test_a_client_error_is_not_retried_elsewhere(servers, model):
    a, b = servers
    a.status = 400
    with pytest.raises(ChatEndpointError, match="HTTP 400"):
        await answer(model, "c0")
    assert b.chats == 0 and model.endpoints()[0].healthy


async def test_a_failure_after_the_first_token_propagates(servers, model):
    a, b = servers
    a.drop_after_first = True
    pieces = []
    with pytest.raises(aiohttp.ClientError):
        async with asyncio.timeout(WAIT_S):
            async for piece in model.stream_chat(MESSAGES, GenerationParams(conversation="c0")):
                pieces.append(piece)
    assert pieces == ["A "]  # never replayed from B
    assert b.chats == 0
    assert state(model) == [(True, 1, 0), (True, 0, 0)]


async def test_closing_the_stream_mid_answer_releases_it(servers, model):
    a, _ = servers
    a.hold = asyncio.Event()
    stream = model.stream_chat(MESSAGES, GenerationParams(conversation="c0"))
    assert await asyncio.wait_for(anext(stream), WAIT_S) == "A "
    assert state(model)[0] == (True, 1, 1)
    await asyncio.wait_for(stream.aclose(), WAIT_S)
    assert state(model)[0] == (True, 1, 0)
    await asyncio.wait_for(a.client_left.wait(), WAIT_S)  # the server saw the connection close


async def test_cancelling_the_consumer_releases_it(servers, model):
    a, _ = servers
    a.hold = asyncio.Event()
    got_first = asyncio.Event()

    async def consume() -> None:
        stream = model.stream_chat(MESSAGES, GenerationParams(conversation="c0"))
        async with aclosing(stream):
            async for _ in stream:
                got_first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), WAIT_S)
    assert state(model)[0][2] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT_S)
    assert state(model)[0][2] == 0
    await asyncio.wait_for(a.client_left.wait(), WAIT_S)


async def test_with_every_server_down_the_error_names_them(servers, model):
    a, b = servers
    await a.stop()
    await b.stop()
    with pytest.raises(ChatEndpointError) as caught:
        await answer(model, "c0")
    assert a.url in str(caught.value) and b.url in str(caught.value)
    assert not model.ready
    with pytest.raises(ChatEndpointError) as again:  # both known down now: fails without trying
        await answer(model, None)
    assert a.url in str(again.value) and b.url in str(again.value) and "down" in str(again.value)


async def test_a_closed_model_refuses_requests_and_its_prober_is_gone(servers):
    a, b = servers
    chat = PooledChatModel([a.url, b.url], model="m", pool=FAST)
    await chat.astart()
    prober = chat.pool._prober
    await chat.aclose()
    assert prober is not None and prober.done()
    with pytest.raises(ChatEndpointError, match="closed"):
        await answer(chat, "c0")


def test_the_engines_build_the_pool_from_llm_endpoints():
    from server.config import ConfigError, load_config
    from server.engines import _load_llm, check_production_engines

    def config(*assignments: str):
        return load_config(path=None, assignments=["models.llm=openai", "models.llm_model=m", *assignments])

    with pytest.raises(ConfigError, match="llm_base_url"):
        check_production_engines(config())
    pooled = config("models.llm_endpoints=http://a:8000/v1,http://b:8000/v1")
    check_production_engines(pooled)
    llm = _load_llm(pooled, pooled.models.model_dir, None)
    assert isinstance(llm, PooledChatModel)
    assert [e.url for e in llm.endpoints()] == ["http://a:8000/v1", "http://b:8000/v1"]
    with pytest.raises(ConfigError, match="repeated"):
        check_production_engines(config("models.llm_endpoints=http://a:8000/v1,http://a:8000/v1"))
    single = config("models.llm_base_url=http://a:8000/v1")
    from models.openai_chat import OpenAIChatModel

    assert type(_load_llm(single, single.models.model_dir, None)) is OpenAIChatModel  # unchanged


async def test_the_engines_start_and_stop_the_prober(servers):
    from server.engines import Engines, Executors

    a, b = servers
    chat = PooledChatModel([a.url, b.url], model="m", pool=FAST)
    engines = Engines(vad=object(), turn=None, asr=object(), llm=chat, tts=object(), executors=Executors())
    await engines.astart()
    prober = chat.pool._prober
    assert prober is not None and not prober.done() and engines.ready
    await engines.aclose()
    assert prober.done() and chat.pool.closed


async def test_readyz_lists_each_endpoint_and_fails_when_none_is_healthy(servers):
    from aiohttp.test_utils import TestClient, TestServer

    from server.app import create_app
    from server.config import Config
    from server.engines import Engines, Executors

    a, b = servers
    chat = PooledChatModel([a.url, b.url], model="m", pool=FAST)
    engines = Engines(vad=object(), turn=None, asr=object(), llm=chat, tts=object(), executors=Executors())
    client = TestClient(TestServer(create_app(Config(), engines), host="127.0.0.1"))
    await client.start_server()
    try:
        await answer(chat, "c1")
        body = await (await client.get("/readyz")).json()
        assert [(e["url"], e["healthy"]) for e in body["llm_endpoints"]] == [(a.url, True), (b.url, True)]
        assert sum(e["conversations"] for e in body["llm_endpoints"]) == 1
        await a.stop()
        await b.stop()
        with pytest.raises(ChatEndpointError):
            await answer(chat, "c2")
        assert (await client.get("/readyz")).status == 503
    finally:
        await client.close()
