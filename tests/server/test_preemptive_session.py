"""Preemptive answers on real speech: real recordings through the real VAD (silero) and Whisper.

The session, its turns, responder and runner are the product's. The end-of-turn model is
scripted (it answers only once the answer has started, so the order of events is the one
under test, not a race), and the LLM records what it was asked and whether its stream was
closed early. Each test waits for events.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest

from models import embedded_store
from models.silero_vad import SileroVAD
from models.whisper_asr import WhisperRecognizer
from server.config import AssistantSection, Config
from server.engines import Executors
from tests.server.test_false_interruptions import RATE, clip, silence

MODELS_DIR = Path(__file__).resolve().parents[2] / "var" / "models"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def silero() -> SileroVAD:
    return SileroVAD()


@pytest.fixture(scope="module")
def whisper() -> WhisperRecognizer:
    return WhisperRecognizer(model_dir=embedded_store.ensure_model(embedded_store.WHISPER_BASE, MODELS_DIR))


class RecordingChat:
    """Answers every request with the same words, slowly, and records each request's fate."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.started = threading.Event()
        """Set when a request arrives: the scripted turn model waits for it."""

    async def stream_chat(self, messages, params):
        record = {"user": messages[-1].content, "closed_early": True}
        self.requests.append(record)
        self.started.set()
        for word in ("Sure, ", "here ", "is ", "the ", "answer. "):
            await asyncio.sleep(0.3)  # slow enough that an aborted stream is cut mid-answer
            yield word
        record["closed_early"] = False


class TurnModelAfterTheAnswerStarts:
    """Answers the end-of-turn question only once an answer has been asked of the LLM (or after
    a long limit), with the scripted probabilities in order."""

    def __init__(self, llm: RecordingChat, probabilities: list[float]) -> None:
        self.llm, self.probabilities = llm, probabilities

    def end_of_turn_probability(self, audio: np.ndarray) -> float:
        self.llm.started.wait(30)
        return self.probabilities.pop(0) if self.probabilities else 0.9


class ShortTTS:
    sample_rate = 16_000

    def synthesize(self, text, *, voice=None, speed=1.0):
        yield np.zeros(1600, np.int16)


async def _open(make_session, silero, whisper, llm, probabilities):
    config = dataclasses.replace(Config(), assistant=AssistantSection(turn_model_timeout_s=30))
    harness = await make_session(llm=llm, tts=ShortTTS(), asr=whisper, vad=silero, executors=Executors(),
                                 turn=TurnModelAfterTheAnswerStarts(llm, probabilities), config=config)
    await harness.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "semantic_vad", "eagerness": "low"},
        "transcription": {"model": "whisper-1"}}}}})
    return harness


async def _play(harness, audio: np.ndarray) -> None:
    for start in range(0, len(audio), RATE // 10):
        chunk = audio[start:start + RATE // 10]
        await harness.send({"type": "input_audio_buffer.append",
                            "audio": base64.b64encode(chunk.tobytes()).decode("ascii")})


def _speculative(harness, stage: str, outcome: str) -> float:
    metric = harness.session.metrics.speculative_seconds.labels(stage=stage, outcome=outcome)
    return metric._value.get()


async def test_an_answer_started_in_the_pause_is_kept_when_the_turn_ends_there(make_session, silero, whisper):
    llm = RecordingChat()
    harness = await _open(make_session, silero, whisper, llm, probabilities=[0.9])
    await _play(harness, np.concatenate([silence(0.3), clip("en/en_harvard_spk1_snt1.wav"), silence(0.6)]))
    done = await harness.until("response.done", timeout=60)
    assert done["response"]["status"] == "completed"
    heard = (await harness.until("conversation.item.input_audio_transcription.completed"))["transcript"]
    assert "small dog" in heard.lower()
    # One LLM request, started before the turn ended and taken over by the response.
    assert llm.requests == [{"user": heard, "closed_early": False}]
    transcript = (await harness.until("response.output_audio_transcript.done"))["transcript"]
    assert transcript == "Sure, here is the answer."
    assert _speculative(harness, "llm", "kept") > 0 and _speculative(harness, "llm", "discarded") == 0
    assert _speculative(harness, "asr", "kept") > 0


async def test_an_answer_started_in_the_pause_is_aborted_when_the_user_goes_on(make_session, silero, whisper):
    llm = RecordingChat()
    harness = await _open(make_session, silero, whisper, llm, probabilities=[0.1, 0.9])
    first, second = clip("en/en_harvard_spk1_snt1.wav"), clip("en/en_harvard_spk1_snt4.wav")
    await _play(harness, np.concatenate([silence(0.3), first, silence(0.6)]))
    await harness.until("input_audio_buffer.speech_stopped", timeout=30)
    await asyncio.get_running_loop().run_in_executor(None, llm.started.wait, 30)
    # The turn model said "not finished": the turn waits for more silence, and the user goes on.
    await _play(harness, np.concatenate([second, silence(0.6)]))
    done = await harness.until("response.done", timeout=60)
    assert done["response"]["status"] == "completed"
    heard = (await harness.until("conversation.item.input_audio_transcription.completed"))["transcript"]
    assert "small dog" in heard.lower() and "stripe" in heard.lower()  # one turn, both sentences
    assert len(llm.requests) == 2
    preempted, answered = llm.requests
    assert "stripe" not in preempted["user"].lower() and preempted["closed_early"]  # aborted in the engine
    assert answered == {"user": heard, "closed_early": False}
    assert _speculative(harness, "llm", "discarded") > 0 and _speculative(harness, "llm", "kept") == 0
    assert len(harness.of_type("input_audio_buffer.committed")) == 1


class CountingWhisper:
    """The real recogniser; counts its decodes and notes whether the VAD's stop had been sent
    when each one began."""

    def __init__(self, whisper: WhisperRecognizer) -> None:
        self.whisper = whisper
        self.harness = None
        self.began_before_the_stop: list[bool] = []

    def open_stream(self, *, language=None):
        stopped = bool(self.harness.of_type("input_audio_buffer.speech_stopped"))
        self.began_before_the_stop.append(not stopped)
        return self.whisper.open_stream(language=language)


async def test_a_turn_is_recognised_from_its_first_short_pause_on_and_only_once(make_session, silero, whisper):
    """``audio.early_asr_pause_ms`` (160 ms, before the 250 ms stop): the decode begins in the
    pause, and the stop and the turn's end keep its transcript."""
    llm, asr = RecordingChat(), CountingWhisper(whisper)
    harness = await _open(make_session, silero, asr, llm, probabilities=[0.9])
    asr.harness = harness
    await _play(harness, np.concatenate([silence(0.3), clip("en/en_harvard_spk1_snt3.wav"), silence(0.6)]))
    done = await harness.until("response.done", timeout=60)
    assert done["response"]["status"] == "completed"
    heard = (await harness.until("conversation.item.input_audio_transcription.completed"))["transcript"]
    assert "air is pure" in heard.lower()
    assert asr.began_before_the_stop == [True]  # one decode, started in the pause
    assert llm.requests == [{"user": heard, "closed_early": False}]
    assert _speculative(harness, "asr", "kept") > 0 and _speculative(harness, "asr", "discarded") == 0


async def test_a_decode_begun_in_a_short_pause_is_dropped_when_the_speaker_goes_on(make_session, silero, whisper):
    """zh_masr_test.wav pauses for 160-224 ms three times mid-sentence: each decode begun there
    is stale once the speech goes on, and the turn is recognised whole, once more, at its end."""
    llm, asr = RecordingChat(), CountingWhisper(whisper)
    harness = await _open(make_session, silero, asr, llm, probabilities=[0.9])
    asr.harness = harness
    await _play(harness, np.concatenate([silence(0.3), clip("zh/zh_masr_test.wav"), silence(0.6)]))
    done = await harness.until("response.done", timeout=60)
    assert done["response"]["status"] == "completed"
    heard = (await harness.until("conversation.item.input_audio_transcription.completed"))["transcript"]
    assert heard.startswith("近几年") and heard.rstrip("。").endswith("改送压碎书"), heard  # (压岁: Whisper's homophone)
    assert len(asr.began_before_the_stop) >= 2 and asr.began_before_the_stop[0]
    assert _speculative(harness, "asr", "discarded") > 0
    assert len(harness.of_type("input_audio_buffer.committed")) == 1
    assert llm.requests[-1] == {"user": heard, "closed_early": False}
