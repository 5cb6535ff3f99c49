"""llama.cpp in process (llama-cpp-python) as the embedded chat model."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from models.interfaces import ChatMessage, GenerationParams
from models.token_bridge import stream_from_thread


@dataclass(frozen=True, slots=True)
class LlamaParams:
    context_tokens: int = 4096
    threads: int = 2


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
        # One llama context serves one generation at a time; sessions queue here.
        self._lock = threading.Lock()

    def stream_chat(self, messages: Sequence[ChatMessage], params: GenerationParams) -> AsyncIterator[str]:
        payload = [{"role": m.role, "content": m.content} for m in messages]

        def produce(stop: threading.Event) -> Iterator[str]:
            with self._lock:
                if stop.is_set():
                    return
                stream = self._llm.create_chat_completion(
                    messages=payload, max_tokens=params.max_tokens, temperature=params.temperature, stream=True
                )
                try:
                    for part in stream:
                        if stop.is_set():
                            return
                        text = part["choices"][0]["delta"].get("content")
                        if text:
                            yield text
                finally:
                    stream.close()

        return stream_from_thread(produce, executor=self._executor)
