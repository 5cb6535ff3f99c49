"""The OpenAI-compatible chat path (how tingshuo talks to a vLLM server), against a real
streaming server started here: llama.cpp's (``llama_cpp.server``) with the embedded Qwen2.5-0.5B
GGUF stands in for vLLM. Includes cancelling a stream mid-answer and checking that the server
stopped generating."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web

from models.interfaces import ChatMessage, GenerationParams, ToolCall, ToolSpec
from models.openai_chat import ChatEndpointError, OpenAIChatModel, OpenAIChatParams

REPO = Path(__file__).resolve().parents[2]
GGUF = REPO / "var" / "models" / "qwen2.5-0.5b" / "model.gguf"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    import uvicorn  # noqa: F401  (llama-cpp-python[server], in the test extra: fail loudly if missing)
    if not GGUF.exists():
        pytest.fail(f"{GGUF} missing: run `tingshuo models install` (scripts/setup.sh does)")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(GGUF), "--port", str(port),
                             "--n_ctx", "2048", "--n_threads", "2", "--model_alias", "qwen"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/models", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("llama.cpp server did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.5)
    yield url, proc.pid
    proc.terminate()
    proc.wait(20)
    log.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_streams_an_answer_token_by_token(llama_server):
    url, _ = llama_server
    model = OpenAIChatModel(params=OpenAIChatParams(base_url=url, model="qwen"))
    try:
        pieces = [p async for p in model.stream_chat(
            [ChatMessage("system", "Answer in one full sentence."),
             ChatMessage("user", "What colour is the sky on a clear day, and why?")],
            GenerationParams(max_tokens=60, temperature=0.0))]
    finally:
        await model.aclose()
    assert len(pieces) > 3, pieces
    assert "blue" in "".join(pieces).lower()


async def test_closing_the_stream_stops_the_generation(llama_server):
    url, pid = llama_server
    model = OpenAIChatModel(params=OpenAIChatParams(base_url=url, model="qwen"))
    long_answer = [ChatMessage("user", "Count from 1 to 2000, one number per line, with no other text.")]
    try:
        stream = model.stream_chat(long_answer, GenerationParams(max_tokens=1500, temperature=0.0))
        received = [await stream.__anext__() for _ in range(10)]
        busy_before = cpu_seconds(pid)
        await asyncio.sleep(1.0)
        busy = cpu_seconds(pid) - busy_before  # generating: about one to two CPU-seconds per second
        await stream.aclose()  # what a barge-in does
        await asyncio.sleep(0.5)
        idle_before = cpu_seconds(pid)
        await asyncio.sleep(2.0)
        idle = cpu_seconds(pid) - idle_before
        # The server is idle although 1490 of the 1500 tokens were never generated: closing the
        # HTTP response aborted the request (what vLLM does too).
        print(f"server CPU while streaming {busy:.2f} s/s, after closing {idle / 2:.2f} s/s")
        assert len(received) == 10 and busy > 0.5
        assert idle < 0.15 * 2.0, f"the server kept working after the stream was closed ({idle:.2f} CPU-s in 2 s)"
        quick = [p async for p in model.stream_chat([ChatMessage("user", "Say OK.")],
                                                     GenerationParams(max_tokens=4, temperature=0.0))]
        assert quick  # and it serves the next request
    finally:
        await model.aclose()


async def test_an_endpoint_error_is_reported(llama_server):
    url, _ = llama_server
    model = OpenAIChatModel(params=OpenAIChatParams(base_url=url + "/nowhere", model="qwen"))
    try:
        with pytest.raises(ChatEndpointError, match="HTTP 404"):
            async for _ in model.stream_chat([ChatMessage("user", "hi")], GenerationParams(max_tokens=4)):
                pass
    finally:
        await model.aclose()


async def test_a_persona_adapter_is_requested_as_the_model():
    # vLLM serves LoRA adapters under their own model names (--lora-modules NAME=PATH).
    seen: list[dict] = []
    runner, url = await _canned_endpoint([{"choices": [{"delta": {"content": "hi"}}]}, "[DONE]"], seen)
    model = OpenAIChatModel(params=OpenAIChatParams(base_url=url, model="base-model"))
    try:
        out = [p async for p in model.stream_chat([ChatMessage("user", "hi")],
                                                  GenerationParams(max_tokens=4, adapter="museum-guide"))]
        out += [p async for p in model.stream_chat([ChatMessage("user", "hi")], GenerationParams(max_tokens=4))]
    finally:
        await model.aclose()
        await runner.cleanup()
    assert out == ["hi", "hi"]
    assert [s["model"] for s in seen] == ["museum-guide", "base-model"]
    assert seen[0]["messages"] == [{"role": "user", "content": "hi"}]  # the server applies the chat template


CLOCK = ToolSpec("get_current_time", "The time now.",
                 {"type": "object", "properties": {"timezone": {"type": "string"}}})
SEARCH = ToolSpec("search_knowledge_base", "Look it up.",
                  {"type": "object", "properties": {"query": {"type": "string"}}})


async def _canned_endpoint(events: list[dict | str], seen: list[dict]):
    """A stand-in endpoint that streams ``events`` as SSE ``data:`` lines (a str is sent as is, e.g. [DONE])."""
    async def completions(request: web.Request) -> web.StreamResponse:
        seen.append(await request.json())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events:
            payload = event if isinstance(event, str) else json.dumps(event)
            await response.write(f"data: {payload}\n\n".encode())
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/v1"


def _delta(delta: dict, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def test_streamed_tool_call_fragments_are_assembled():
    # As vLLM's hermes parser streams two calls: id and name first, the arguments JSON in pieces.
    events = [
        _delta({"role": "assistant", "content": "Let me check."}),
        _delta({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                "function": {"name": "get_current_time", "arguments": ""}}]}),
        _delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"timezone": '}}]}),
        _delta({"tool_calls": [{"index": 0, "function": {"arguments": '"Asia/Tokyo"}'}}]}),
        _delta({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                "function": {"name": "search_knowledge_base", "arguments": '{"query"'}}]}),
        _delta({"tool_calls": [{"index": 1, "function": {"arguments": ': "opening hours"}'}}]}),
        _delta({}, finish="tool_calls"),
        "[DONE]",
    ]
    seen: list[dict] = []
    runner, url = await _canned_endpoint(events, seen)
    model = OpenAIChatModel(params=OpenAIChatParams(base_url=url, model="qwen"))
    earlier = ToolCall("call_z", "get_current_time", "{}")
    history = [ChatMessage("user", "What time is it?"), ChatMessage("assistant", "", tool_calls=(earlier,)),
               ChatMessage("tool", "14:05", tool_call_id="call_z"), ChatMessage("user", "And in Tokyo?")]
    try:
        out = [p async for p in model.stream_chat(history, GenerationParams(tools=(CLOCK, SEARCH)))]
    finally:
        await model.aclose()
        await runner.cleanup()
    assert out == ["Let me check.", ToolCall("call_a", "get_current_time", '{"timezone": "Asia/Tokyo"}'),
                   ToolCall("call_b", "search_knowledge_base", '{"query": "opening hours"}')]
    body = seen[0]
    assert body["tool_choice"] == "auto"
    assert body["tools"][0] == {"type": "function", "function": {
        "name": "get_current_time", "description": "The time now.", "parameters": CLOCK.parameters}}
    assert body["messages"][1:3] == [  # the wire format: arguments stay JSON text
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_z", "type": "function", "function": {"name": "get_current_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_z", "content": "14:05"}]


async def test_calls_still_open_when_the_stream_ends_are_yielded():
    # No finish_reason "tool_calls" and no [DONE]: a server that just closes the stream. No id: one is made.
    events = [_delta({"tool_calls": [{"index": 0, "function": {"name": "get_current_time"}}]}),
              _delta({"tool_calls": [{"index": 0, "function": {"name": "", "arguments": "{}"}}]})]
    seen: list[dict] = []
    runner, url = await _canned_endpoint(events, seen)
    model = OpenAIChatModel(params=OpenAIChatParams(base_url=url, model="qwen"))
    try:
        (call,) = [p async for p in model.stream_chat([ChatMessage("user", "time?")],
                                                      GenerationParams(tools=(CLOCK,)))]
    finally:
        await model.aclose()
        await runner.cleanup()
    assert call.name == "get_current_time" and call.arguments == "{}" and call.call_id.startswith("call_")


async def test_a_call_to_a_tool_not_offered_is_dropped():
    events = [_delta({"tool_calls": [{"index": 0, "id": "call_x", "function": {"name": "launch_rockets",
                                                                               "arguments": "{}"}}]}),
              _delta({"content": "Done."}, finish="tool_calls"), "[DONE]"]
    seen: list[dict] = []
    runner, url = await _canned_endpoint(events, seen)
    model = OpenAIChatModel(params=OpenAIChatParams(base_url=url, model="qwen"))
    try:
        out = [p async for p in model.stream_chat([ChatMessage("user", "go")], GenerationParams(tools=(CLOCK,)))]
        no_tools = [p async for p in model.stream_chat([ChatMessage("user", "go")], GenerationParams())]
    finally:
        await model.aclose()
        await runner.cleanup()
    assert out == ["Done."] and no_tools == ["Done."]
    assert "tools" not in seen[1] and "tool_choice" not in seen[1]


async def test_calls_left_in_the_text_are_found(llama_server):
    # llama-cpp-python's server gives Qwen the tools (its own template) but does not parse the calls:
    # the 0.5B model writes them as bare JSON in the content, like a vLLM started without a tool parser.
    url, _ = llama_server
    model = OpenAIChatModel(params=OpenAIChatParams(base_url=url, model="qwen"))
    try:
        out = [p async for p in model.stream_chat(
            [ChatMessage("system", "You are a voice assistant."), ChatMessage("user", "What time is it in Tokyo?")],
            GenerationParams(max_tokens=64, temperature=0.0, tools=(CLOCK, SEARCH)))]
    finally:
        await model.aclose()
    calls = [p for p in out if isinstance(p, ToolCall)]
    assert [c.name for c in calls] == ["get_current_time"], out
    assert json.loads(calls[0].arguments) == {"timezone": "Asia/Tokyo"}
    assert not any(isinstance(p, str) and "{" in p for p in out)
