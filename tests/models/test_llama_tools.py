"""Tool calling through the embedded Qwen2.5-0.5B (llama.cpp in process), greedy so the answers repeat.

The model writes its calls as bare JSON (streaming/reply_tool_calls.py says why); these tests
check the whole path: the template gets the tools, the calls come out as ToolCall items with
JSON arguments, plain chat stays plain text, and a tool result is answered in words.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.interfaces import ChatMessage, GenerationParams, ToolCall
from server.config import DEFAULT_INSTRUCTIONS
from thinking.builtin_tools import CLOCK_TOOL, clock_tool, knowledge_tool

REPO = Path(__file__).resolve().parents[2]
GGUF = REPO / "var" / "models" / "qwen2.5-0.5b" / "model.gguf"
TOOLS = (clock_tool().spec, knowledge_tool(lambda query: []).spec)
SYSTEM = ChatMessage("system", DEFAULT_INSTRUCTIONS)
TOKYO_TIME = "Tuesday 2025-03-04, 2:05 PM (14:05) in Asia/Tokyo, UTC+09:00"


@pytest.fixture(scope="module")
def in_process_llm():
    if not GGUF.exists():
        pytest.skip(f"{GGUF} missing: run `tingshuo models install`")
    from models.llama_chat import LlamaChatModel, LlamaParams

    return LlamaChatModel(model_path=GGUF, params=LlamaParams(context_tokens=2048, threads=2))


@pytest.fixture(params=["in_process", "server"])
async def llm(request):
    """Both embedded engines: llama.cpp in process, and the managed llama-server (the default)."""
    if request.param == "in_process":
        yield request.getfixturevalue("in_process_llm")
        return
    binary = REPO / "var" / "bin" / "llama-server"
    if not GGUF.exists() or not binary.exists():
        pytest.skip(f"{GGUF} or {binary} missing: run scripts/setup.sh")
    from models.llama_server_chat import LlamaServerChatModel, LlamaServerChatParams
    from models.llama_server_process import LlamaServerParams

    model = LlamaServerChatModel(server=LlamaServerParams(binary=binary, model_path=GGUF, slots=2,
                                                          context_tokens_per_slot=2048, threads=2),
                                 params=LlamaServerChatParams(model_name="qwen2.5-0.5b"))
    await model.astart()
    yield model
    await model.aclose()


async def _reply(llm, messages: list[ChatMessage], **params) -> tuple[str, list[ToolCall]]:
    text, calls = "", []
    async for item in llm.stream_chat(messages, GenerationParams(**({"max_tokens": 64, "temperature": 0.0,
                                                                     "tools": TOOLS} | params))):
        if isinstance(item, ToolCall):
            calls.append(item)
        else:
            assert isinstance(item, str)
            text += item
    return text, calls


async def test_a_clock_question_calls_the_clock(llm):
    text, calls = await _reply(llm, [SYSTEM, ChatMessage("user", "What time is it in Tokyo?")])
    assert [c.name for c in calls] == [CLOCK_TOOL], (text, calls)
    assert json.loads(calls[0].arguments) == {"timezone": "Asia/Tokyo"}
    assert calls[0].call_id.startswith("call_") and len(calls[0].call_id) == len("call_") + 24
    assert "{" not in text  # the call is never spoken


async def test_a_greeting_is_answered_in_words(llm):
    text, calls = await _reply(llm, [SYSTEM, ChatMessage("user", "Hello!")])
    assert calls == [] and text.strip(), text


async def test_the_answer_uses_the_tool_result(llm):
    call = ToolCall("call_0123456789abcdef01234567", CLOCK_TOOL, '{"timezone": "Asia/Tokyo"}')
    text, calls = await _reply(llm, [SYSTEM, ChatMessage("user", "What time is it in Tokyo?"),
                                     ChatMessage("assistant", "", tool_calls=(call,)),
                                     ChatMessage("tool", TOKYO_TIME, tool_call_id=call.call_id)])
    assert calls == [], calls
    assert "2:05" in text or "14:05" in text, text


async def test_tool_choice_none_keeps_the_tools_out(llm):
    text, calls = await _reply(llm, [SYSTEM, ChatMessage("user", "What time is it in Tokyo?")], tool_choice="none")
    assert calls == [] and text.strip() and "{" not in text, text


async def test_closing_the_stream_frees_the_model_for_the_next_request(llm):
    # Without tools (offered, the model makes up a "count_numbers" tool); the reply still goes through the parser.
    stream = llm.stream_chat([SYSTEM, ChatMessage("user", "Count from 1 to 500, one number per line.")],
                             GenerationParams(max_tokens=1000, temperature=0.0))
    first = [await stream.__anext__() for _ in range(3)]
    await stream.aclose()  # barge-in: the worker stops within a token and releases the llama context
    assert all(isinstance(p, str) for p in first)
    text, calls = await _reply(llm, [SYSTEM, ChatMessage("user", "Hello!")], max_tokens=8)
    assert text.strip() and calls == []
