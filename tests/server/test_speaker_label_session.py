"""An answer the LLM opens with a speaker label ("Tingshuo: (smiling) ...") is spoken, shown and
remembered without it: the voice never says the assistant's name, and the next prompt does not
teach the model to write it again."""

from __future__ import annotations

import numpy as np

from tests.server.session_harness import ScriptedChat

LABELLED = ["Ting", "shuo", ":", " (", "smiling", ")", " Sure", ",", " here", " it", " is", "."]


class RecordingChat(ScriptedChat):
    def __init__(self, tokens: list[str]) -> None:
        super().__init__(tokens)
        self.prompts: list[list] = []

    async def stream_chat(self, messages, params):
        self.prompts.append(list(messages))
        async for token in super().stream_chat(messages, params):
            yield token


class RecordingTTS:
    sample_rate = 16_000

    def __init__(self) -> None:
        self.texts: list[str] = []

    def synthesize(self, text, *, voice=None, speed=1.0):
        self.texts.append(text)
        yield np.zeros(1600, np.int16)


async def test_a_labelled_answer_is_spoken_shown_and_remembered_without_its_label(make_session):
    llm, tts = RecordingChat(LABELLED), RecordingTTS()
    harness = await make_session(llm=llm, tts=tts)
    await harness.say("Can you help?")
    await harness.send({"type": "response.create"})
    done = await harness.until("response.done", timeout=10)
    assert done["response"]["status"] == "completed"
    assert tts.texts == ["Sure,", "here it is."]  # the short opening word is said at once
    assert done["response"]["output"][0]["content"][0]["transcript"] == "Sure, here it is."
    deltas = "".join(e["delta"] for e in harness.of_type("response.output_audio_transcript.delta"))
    assert deltas == "Sure, here it is."

    await harness.say("Thanks.")
    await harness.send({"type": "response.create"})
    await harness.until("response.done", count=2, timeout=10)
    remembered = [m.content for m in llm.prompts[1] if m.role == "assistant"]
    assert remembered == ["Sure, here it is."]


async def test_a_text_answer_loses_its_label_too(make_session):
    harness = await make_session(llm=ScriptedChat(["助手", "：", "好的", "。"]), tts=RecordingTTS())
    await harness.say("你好")
    await harness.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
    done = await harness.until("response.done", timeout=10)
    assert "".join(e["delta"] for e in harness.of_type("response.output_text.delta")) == "好的。"
    assert done["response"]["output"][0]["content"][0]["text"] == "好的。"
