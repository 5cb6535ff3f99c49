"""The in-process vLLM adapter renders the chat template off the event loop (a long history's Jinja
render is CPU work), in the executor it is given or asyncio's default one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from models.interfaces import GenerationParams
from models.vllm_chat import VLLMChatModel
from tests.models.test_vllm_chat import MESSAGES, PARAMS, StandInEngine, Tokenizer
from tests.models.test_vllm_chat import vllm_types  # noqa: F401 (the autouse fixture: stand-in vLLM types)


class ThreadNotingTokenizer(Tokenizer):
    thread: threading.Thread | None = None

    def apply_chat_template(self, *args, **kwargs):
        self.thread = threading.current_thread()
        return super().apply_chat_template(*args, **kwargs)


async def test_the_chat_template_is_rendered_off_the_event_loop():
    engine = StandInEngine(["ok"])
    engine.tokenizer = ThreadNotingTokenizer()
    out = [p async for p in VLLMChatModel(PARAMS, engine=engine).stream_chat(MESSAGES, GenerationParams())]
    assert out == ["ok"] and engine.calls[0][0] == "<template>system:Be brief.|user:Hello"
    assert engine.tokenizer.thread is not None and engine.tokenizer.thread is not threading.current_thread()
    with ThreadPoolExecutor(1, thread_name_prefix="llm") as pool:
        model = VLLMChatModel(PARAMS, engine=engine, executor=pool)
        assert [p async for p in model.stream_chat(MESSAGES, GenerationParams())] == ["ok"]
    assert engine.tokenizer.thread.name.startswith("llm")
