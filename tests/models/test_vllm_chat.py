"""The in-process vLLM adapter's contract with the engine replaced at its boundary.

vLLM needs CUDA, which this machine lacks: the engine here is a stand-in with AsyncLLM's
methods (``get_tokenizer``, ``generate``, ``abort``) and the three vLLM types the adapter
builds are minimal stand-ins in ``sys.modules``. Not covered: a real vLLM engine and GPU.
"""

from __future__ import annotations

import asyncio
import sys
import types
from dataclasses import dataclass

import pytest

from models.interfaces import ChatMessage, GenerationParams, ToolCall, ToolSpec
from models.vllm_chat import VLLMChatModel, VLLMParams, parse_adapters


@dataclass
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


@dataclass
class SamplingParams:
    max_tokens: int
    temperature: float
    output_kind: str
    seed: int | None = None  # as vLLM's own: None lets the engine pick


@pytest.fixture(autouse=True)
def vllm_types(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = SamplingParams
    sampling = types.ModuleType("vllm.sampling_params")
    sampling.RequestOutputKind = types.SimpleNamespace(DELTA="delta")
    lora = types.ModuleType("vllm.lora.request")
    lora.LoRARequest = LoRARequest
    for name, module in {"vllm": vllm, "vllm.sampling_params": sampling, "vllm.lora": types.ModuleType("vllm.lora"),
                         "vllm.lora.request": lora}.items():
        monkeypatch.setitem(sys.modules, name, module)


class Tokenizer:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    def apply_chat_template(self, messages, tokenize, add_generation_prompt, tools=None):
        assert tokenize is False and add_generation_prompt is True
        self.messages = messages
        offered = f"<tools>{','.join(t['function']['name'] for t in tools)}</tools>" if tools else ""
        return "<template>" + offered + "|".join(f"{m['role']}:{m['content']}" for m in messages)


class StandInEngine:
    def __init__(self, pieces: list[str]) -> None:
        self.pieces, self.calls, self.aborted = pieces, [], []
        self.tokenizer = Tokenizer()

    async def get_tokenizer(self):
        return self.tokenizer

    async def generate(self, prompt, sampling, request_id, lora_request=None):
        self.calls.append((prompt, sampling, request_id, lora_request))
        for i, piece in enumerate(self.pieces):
            await asyncio.sleep(0)
            yield types.SimpleNamespace(outputs=[types.SimpleNamespace(text=piece)], finished=i == len(self.pieces) - 1)

    async def abort(self, request_id):
        self.aborted.append(request_id)


PARAMS = VLLMParams(model="Qwen/Qwen2.5-7B-Instruct", adapters={"museum-guide": "/loras/museum"})
MESSAGES = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hello")]


async def test_streams_deltas_with_the_models_own_chat_template():
    engine = StandInEngine(["Hel", "lo", "!"])
    model = VLLMChatModel(PARAMS, engine=engine)
    out = [p async for p in model.stream_chat(MESSAGES, GenerationParams(max_tokens=32, temperature=0.2))]
    assert out == ["Hel", "lo", "!"]
    prompt, sampling, _, lora = engine.calls[0]
    assert prompt == "<template>system:Be brief.|user:Hello"
    assert sampling == SamplingParams(max_tokens=32, temperature=0.2, output_kind="delta", seed=None)
    assert lora is None and engine.aborted == []  # a finished request needs no abort


async def test_tools_go_to_the_template_and_calls_come_back_as_tool_calls():
    clock = ToolSpec("get_current_time", "The time now.", {"type": "object", "properties": {}})
    engine = StandInEngine(['{"name": "get_current_time", ', '"arguments": {"timezone": "Asia/Tokyo"}}'])
    model = VLLMChatModel(PARAMS, engine=engine)
    earlier = ToolCall("call_z", "get_current_time", '{"timezone": "UTC"}')
    history = [*MESSAGES, ChatMessage("assistant", "", tool_calls=(earlier,)),
               ChatMessage("tool", "14:05", tool_call_id="call_z")]
    (call,) = [p async for p in model.stream_chat(history, GenerationParams(tools=(clock,)))]
    assert call.name == "get_current_time" and call.arguments == '{"timezone": "Asia/Tokyo"}'
    assert engine.calls[0][0].startswith("<template><tools>get_current_time</tools>system:Be brief.")
    # A Hugging Face template applies tojson to the arguments itself: they go in decoded.
    assert engine.tokenizer.messages[2]["tool_calls"][0]["function"]["arguments"] == {"timezone": "UTC"}
    assert engine.tokenizer.messages[3] == {"role": "tool", "tool_call_id": "call_z", "content": "14:05"}


async def test_closing_mid_answer_aborts_the_request_in_the_engine():
    engine = StandInEngine(["a"] * 100)
    model = VLLMChatModel(PARAMS, engine=engine)
    stream = model.stream_chat(MESSAGES, GenerationParams())
    assert [await stream.__anext__() for _ in range(3)] == ["a", "a", "a"]
    await stream.aclose()
    assert engine.aborted == [engine.calls[0][2]]


async def test_a_persona_names_its_lora_adapter():
    engine = StandInEngine(["ok"])
    model = VLLMChatModel(PARAMS, engine=engine)
    _ = [p async for p in model.stream_chat(MESSAGES, GenerationParams(adapter="museum-guide"))]
    assert engine.calls[0][3] == LoRARequest("museum-guide", 1, "/loras/museum")
    with pytest.raises(ValueError, match="unknown LoRA adapter 'pirate'"):
        _ = [p async for p in model.stream_chat(MESSAGES, GenerationParams(adapter="pirate"))]


def test_adapter_list_from_config():
    assert parse_adapters("a=/x, b=/y/z") == {"a": "/x", "b": "/y/z"}
    assert parse_adapters("") == {}
    with pytest.raises(ValueError):
        parse_adapters("broken")


async def test_a_seed_reaches_the_engines_sampling_parameters():
    engine = StandInEngine(["Hi"])
    model = VLLMChatModel(PARAMS, engine=engine)
    assert [p async for p in model.stream_chat(MESSAGES, GenerationParams(max_tokens=8, seed=7))] == ["Hi"]
    assert engine.calls[0][1].seed == 7
