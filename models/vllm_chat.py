"""vLLM in process (``AsyncLLM``), for one GPU box that runs both tingshuo and the LLM.

The scalable path is a vLLM server behind :class:`models.openai_chat.OpenAIChatModel`; this
one saves the HTTP hop. The chat template is the served model's own (its tokenizer's
``apply_chat_template``, rendered off the event loop), never assembled by string concatenation here. LoRA adapters: vLLM
serves several on one base model; a persona names its adapter and each request carries the
matching ``LoRARequest``. Closing the stream (barge-in) aborts the request inside the engine,
which frees its KV cache and batch slot at once. Tools go to the chat template, which writes
the model's own tool prompt; the calls come back as text, found by
:class:`models.text_tool_calls.TextToolCalls` (vLLM's tool parsers belong to its HTTP server).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from models.chat_payloads import template_messages, tool_payload
from models.interfaces import ChatMessage, GenerationParams, ToolCall
from models.text_tool_calls import TextToolCalls


@dataclass(frozen=True)
class VLLMParams:
    model: str
    """A Hugging Face id or a local folder: vLLM loads it (and applies its chat template)."""
    adapters: dict[str, str] = field(default_factory=dict)
    """LoRA adapter name -> folder."""
    gpu_memory_utilization: float = 0.85
    max_model_len: int = 8192


def parse_adapters(spec: str) -> dict[str, str]:
    """``"name=path,other=path"`` (the config file's form) as a dict."""
    adapters = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, path = item.partition("=")
        if not name or not path:
            raise ValueError(f"LoRA adapter {item!r}: expected NAME=PATH")
        adapters[name.strip()] = path.strip()
    return adapters


def build_engine(params: VLLMParams) -> Any:
    """The real engine; needs ``vllm`` (the ``gpu`` extra) and a CUDA device."""
    from vllm import AsyncEngineArgs  # noqa: PLC0415

    try:
        from vllm.v1.engine.async_llm import AsyncLLM  # noqa: PLC0415
    except ImportError:  # vLLM before the v1 engine
        from vllm import AsyncLLMEngine as AsyncLLM  # noqa: PLC0415
    args = AsyncEngineArgs(model=params.model, enable_lora=bool(params.adapters),
                           max_loras=max(1, len(params.adapters)), max_model_len=params.max_model_len,
                           gpu_memory_utilization=params.gpu_memory_utilization)
    return AsyncLLM.from_engine_args(args)


class VLLMChatModel:
    """:class:`models.interfaces.ChatModel` on an in-process vLLM engine."""

    def __init__(self, params: VLLMParams, *, engine: Any | None = None, executor: Executor | None = None) -> None:
        self.params = params
        self._executor = executor
        """Where the chat template is rendered (a Jinja render of the whole history is CPU work that
        must not hold the event loop); None: asyncio's default executor."""
        self._engine = engine if engine is not None else build_engine(params)
        self._lora_ids = {name: i for i, name in enumerate(sorted(params.adapters), start=1)}
        self._ids = itertools.count()

    def _lora(self, adapter: str | None) -> Any:
        if not adapter:
            return None
        if adapter not in self.params.adapters:
            raise ValueError(f"unknown LoRA adapter {adapter!r}; configured: {sorted(self.params.adapters)}")
        from vllm.lora.request import LoRARequest  # noqa: PLC0415

        return LoRARequest(adapter, self._lora_ids[adapter], self.params.adapters[adapter])

    @staticmethod
    def _sampling(params: GenerationParams) -> Any:
        from vllm import SamplingParams  # noqa: PLC0415
        from vllm.sampling_params import RequestOutputKind  # noqa: PLC0415

        return SamplingParams(max_tokens=params.max_tokens, temperature=params.temperature, seed=params.seed,
                              output_kind=RequestOutputKind.DELTA)

    async def stream_chat(self, messages: Sequence[ChatMessage],
                          params: GenerationParams) -> AsyncIterator[str | ToolCall]:
        lora = self._lora(params.adapter)
        tokenizer = await self._engine.get_tokenizer()
        offered = params.tools if params.tool_choice != "none" else ()
        extra = {"tools": tool_payload(offered)} if offered else {}  # the template writes the tool prompt
        render = functools.partial(tokenizer.apply_chat_template, template_messages(messages), tokenize=False,
                                   add_generation_prompt=True, **extra)
        prompt = await asyncio.get_running_loop().run_in_executor(self._executor, render)
        calls = TextToolCalls(offered=(t.name for t in offered))
        request_id = f"tingshuo-{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        finished = False
        try:
            async for output in self._engine.generate(prompt, self._sampling(params), request_id, lora_request=lora):
                if text := output.outputs[0].text:
                    for item in calls.push(text):
                        yield item
                finished = output.finished
            for item in calls.flush():
                yield item
        finally:
            if not finished:
                await self._engine.abort(request_id)

    async def aclose(self) -> None:
        shutdown = getattr(self._engine, "shutdown", None)
        if shutdown is not None:
            shutdown()
