"""A Mandarin speaker who stops mid-sentence is not answered after the first half.

A real recording with a pause spliced in (benchmarks/paused_corpus.py) through the real VAD
(silero) and the real Whisper. The end-of-turn model is a stand-in that is always sure the
turn is over (as Smart Turn was of this recording's first half, 0.98), and the LLM a stand-in
whose judge of the words says "the message ends here" only for (nearly) the whole sentence:
these tests check the session's part, that such a turn waits for the words and that words
reading unfinished keep it open. The real Smart Turn and the real judge on the real LLM are
tested end to end (tests/e2e/test_mandarin_turns.py).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from benchmarks.paused_corpus import paused_utterances
from server.config import AssistantSection, Config
from server.engines import Executors
from tests.server.test_preemptive_session import silero, whisper  # noqa: F401 (module fixtures)

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT.parent / "shared" / "audio"
RATE = 16_000
pytestmark = pytest.mark.timeout(180)
CUT_BY_SMART_TURN = "zh_masr_test_paused"
"""Its first half: "近几年不但我用书给女儿压岁也劝说亲朋"."""


class SureTurnModel:
    """Always sure the speaker has finished."""

    def end_of_turn_probability(self, audio: np.ndarray) -> float:
        return 0.99


@pytest.fixture
def smart_turn() -> SureTurnModel:
    return SureTurnModel()


class JudgingChat:
    """Answers briefly; judges a message finished once it holds most of ``reference``."""

    def __init__(self, reference: str) -> None:
        self.reference = reference
        self.judged: list[str] = []
        self.asked: list[str] = []

    async def end_of_message_probability(self, text: str, *, timeout_s: float) -> float:
        self.judged.append(text)
        return 0.4 if len(text) >= 0.8 * len(self.reference) else 0.0

    async def stream_chat(self, messages, params):
        self.asked.append(messages[-1].content)
        for word in ("好的，", "我明白了。"):
            await asyncio.sleep(0.05)
            yield word


class ShortTTS:
    sample_rate = 16_000

    def synthesize(self, text, *, voice=None, speed=1.0):
        yield np.zeros(1600, np.int16)


async def _session(make_session, silero, whisper, smart_turn, llm, *, judge: str):
    config = dataclasses.replace(Config(), assistant=AssistantSection(text_turn_judge=judge))
    harness = await make_session(llm=llm, tts=ShortTTS(), asr=whisper, vad=silero, executors=Executors(),
                                 turn=smart_turn, config=config)
    await harness.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "semantic_vad", "eagerness": "auto"},
        "transcription": {"model": "whisper-1", "language": "zh"}}}}})
    return harness


async def _play(harness, audio: np.ndarray) -> None:
    """At the pace of a microphone: a turn end is decided while the audio goes on arriving."""
    pcm = np.clip(audio * 32768, -32768, 32767).astype(np.int16)
    loop = asyncio.get_running_loop()
    began = loop.time()
    for n, start in enumerate(range(0, len(pcm), RATE // 10)):
        await harness.send({"type": "input_audio_buffer.append",
                            "audio": base64.b64encode(pcm[start:start + RATE // 10].tobytes()).decode("ascii")})
        await asyncio.sleep(max(0.0, began + (n + 1) * 0.1 - loop.time()))


def _utterance(name: str):
    return next(u for u in paused_utterances(AUDIO) if u.name == name)


async def test_without_the_judge_the_sentence_is_cut_at_its_pause(make_session, silero, whisper, smart_turn):
    """The control: a sure turn model alone answers this recording after its first half."""
    utterance = _utterance(CUT_BY_SMART_TURN)
    llm = JudgingChat(utterance.reference)
    harness = await _session(make_session, silero, whisper, smart_turn, llm, judge="off")
    await _play(harness, utterance.audio)
    await harness.until("input_audio_buffer.committed", count=2, timeout=90)
    assert llm.judged == [] and len(llm.asked) >= 1


async def test_words_that_read_unfinished_keep_the_turn_open(make_session, silero, whisper, smart_turn):
    utterance = _utterance(CUT_BY_SMART_TURN)
    llm = JudgingChat(utterance.reference)
    harness = await _session(make_session, silero, whisper, smart_turn, llm, judge="auto")
    await _play(harness, utterance.audio)
    done = await harness.until("response.done", timeout=90)
    assert done["response"]["status"] == "completed"
    heard = (await harness.until("conversation.item.input_audio_transcription.completed"))["transcript"]
    assert len(harness.of_type("input_audio_buffer.committed")) == 1, heard
    assert len(heard) >= 0.8 * len(utterance.reference), heard
    assert llm.judged and len(llm.judged[0]) < 0.8 * len(utterance.reference)  # the half was judged, and kept open
    assert llm.asked[-1] == heard
    # No answer was started on the half beside its judge: the answer waits for words that read finished.
    assert all(len(asked) >= 0.8 * len(utterance.reference) for asked in llm.asked), llm.asked
