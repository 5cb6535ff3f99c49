"""A voice that is slow per character (Kokoro) gets an answer's first Mandarin words early.

The response runner asks the voice for ``first_chunk_cjk_chars`` and cuts the first chunk of
Mandarin there, between two pieces the LLM streamed; the answer's text is whole either way.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.server.session_harness import ScriptedChat

QWEN_PIECES = ["洗澡", "你", "以后", "能够", "做的", "比我", "还", "好用", "。", "谢谢", "你", "。"]
ANSWER = "".join(QWEN_PIECES)


class RecordingTTS:
    sample_rate = 16_000

    def __init__(self, first_chunk_cjk_chars: int | None) -> None:
        if first_chunk_cjk_chars is not None:
            self.first_chunk_cjk_chars = first_chunk_cjk_chars
        self.texts: list[str] = []

    def synthesize(self, text, *, voice=None, speed=1.0):
        self.texts.append(text)
        yield np.zeros(1600, np.int16)


@pytest.mark.parametrize("wish,expected", [
    (6, ["洗澡你以后能够", "做的比我还好用。谢谢你。"]),
    (None, ["洗澡你以后能够做的比我还好用。", "谢谢你。"]),
])
async def test_the_voice_decides_how_soon_the_first_mandarin_words_go(make_session, wish, expected):
    tts = RecordingTTS(wish)
    harness = await make_session(llm=ScriptedChat(QWEN_PIECES), tts=tts)
    await harness.say("你好")
    await harness.send({"type": "response.create"})
    done = await harness.until("response.done", timeout=10)
    assert done["response"]["status"] == "completed"
    assert tts.texts == expected
    assert done["response"]["output"][0]["content"][0]["transcript"] == ANSWER
