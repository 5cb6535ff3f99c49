"""llama.cpp in process (llama-cpp-python) as the embedded chat model.

Tools: llama-cpp-python renders the GGUF's own chat template (``Jinja2ChatFormatter`` on
``tokenizer.chat_template``; Qwen2.5's is not one it recognises by name) and hands it
``tools``, so Qwen2.5 sees its trained Hermes tool prompt. It does not parse calls out of
the reply (only a ``tool_choice`` naming one function would switch it to a grammar), so
the calls come as text and :class:`models.text_tool_calls.TextToolCalls` finds them.
``tool_choice="required"`` is therefore only a wish here: nothing forces a call.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.chat_payloads import template_messages, tool_payload
from models.interfaces import ChatMessage, GenerationParams, ToolCall
from models.text_tool_calls import TextToolCalls
from models.token_bridge import stream_from_thread


ANSWER_FROM_TOOL_RESULTS = "Now answer the user in words, using the tool result."
"""Said after tool results. Without it the embedded Qwen2.5-0.5B, shown its call and the result
in its own template, called a tool again in 6 of 6 conversations of benchmarks/tool_calling.py
(mostly the same call, repeated until ``max_tokens``) instead of answering; with it, 4 to 5 of
the 6 answered in words from the result."""


@dataclass(frozen=True, slots=True)
class LlamaParams:
    context_tokens: int = 4096
    threads: int = 2
    tool_result_nudge: str = ANSWER_FROM_TOOL_RESULTS
    """A system line appended when the conversation ends with tool results; empty: none."""


class LlamaChatModel:
    def __init__(self, *, model_path: Path, params: LlamaParams = LlamaParams(), executor: Executor | None = None) -> None:
        from llama_cpp import Llama

        self._llm = Llama(
            model_path=str(model_path),
            n_ctx=params.context_tokens,
            n_threads=params.threads,
            n_threads_batch=params.threads,
            verbose=False,
        )
        self._executor = executor
        self._nudge = params.tool_result_nudge
        # One llama context serves one generation at a time; sessions queue here.
        self._lock = threading.Lock()

    def stream_chat(self, messages: Sequence[ChatMessage], params: GenerationParams) -> AsyncIterator[str | ToolCall]:
        # "none": leave the tools out of the prompt altogether, which also keeps it short.
        offered = params.tools if params.tool_choice != "none" else ()
        if self._nudge and messages and messages[-1].role == "tool":
            messages = [*messages, ChatMessage("system", self._nudge)]
        request: dict[str, Any] = {"messages": template_messages(messages), "max_tokens": params.max_tokens,
                                   "temperature": params.temperature, "stream": True}
        if params.seed is not None:
            request["seed"] = params.seed
        if offered:
            request |= {"tools": tool_payload(offered), "tool_choice": params.tool_choice}

        def produce(stop: threading.Event) -> Iterator[str | ToolCall]:
            with self._lock:
                if stop.is_set():
                    return
                stream = self._llm.create_chat_completion(**request)
                # Also without tools: a call the model makes up must not be spoken as JSON.
                calls = TextToolCalls(offered=(t.name for t in offered))
                try:
                    for part in stream:
                        if stop.is_set():
                            return
                        text = part["choices"][0]["delta"].get("content")
                        if text:
                            yield from calls.push(text)
                    yield from calls.flush()
                finally:
                    stream.close()

        return stream_from_thread(produce, executor=self._executor)
