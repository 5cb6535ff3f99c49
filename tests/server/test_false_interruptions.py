"""Pause first, decide later: real recordings played over an answer through the real VAD (silero).

The session, its input pipeline, the interruption judge, the responder and the runner are the
product's; the recogniser says what a recogniser would of each clip, and the LLM and the TTS are
scripted so that the answer's words and audio are known exactly. Each test waits for events.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from models.interfaces import Transcript
from models.silero_vad import SileroVAD
from server import response_runner
from server.config import AudioSection, Config
from tests.server.session_harness import SessionHarness

AUDIO_DIR = Path(__file__).resolve().parents[3] / "shared" / "audio"
RATE = 24_000
TTS_RATE = 16_000
DONE = "response.done"
AUDIO_DELTA = "response.output_audio.delta"
pytestmark = pytest.mark.timeout(60)


def clip(relative: str, start_s: float = 0.0, end_s: float | None = None) -> np.ndarray:
    """A slice of a shared recording, int16 at the session's 24 kHz."""
    audio, sr = sf.read(AUDIO_DIR / relative, dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    audio = soxr.resample(audio, sr, RATE)[int(start_s * RATE): None if end_s is None else int(end_s * RATE)]
    return np.clip(audio * 32768, -32768, 32767).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.int16)


@pytest.fixture(scope="module")
def silero() -> SileroVAD:
    return SileroVAD()


class Sentences:
    """``count`` sentences, "Sentence i is here. " each."""

    def __init__(self, count: int) -> None:
        self.count = count

    def text(self) -> str:
        return "".join(f"Sentence {i} is here. " for i in range(self.count)).strip()

    async def stream_chat(self, messages, params):
        for i in range(self.count):
            for word in (f"Sentence {i} ", "is ", "here. "):
                yield word


class ClauseTTS:
    """``chunks`` pieces of ``chunk_s`` seconds per clause: the answer's audio length is known."""

    sample_rate = TTS_RATE

    def __init__(self, *, chunks: int = 2, chunk_s: float = 0.2) -> None:
        self.chunks, self.chunk_s = chunks, chunk_s
        self.begun = 0

    def synthesize(self, text, *, voice=None, speed=1.0):
        self.begun += 1
        for _ in range(self.chunks):
            yield np.full(int(TTS_RATE * self.chunk_s), 100, np.int16)


class BlockingASR:
    """A recogniser that never answers until released (a stuck Whisper); then it hears ``text``."""

    def __init__(self, text: str = "") -> None:
        self.release = threading.Event()
        self.text = text
        self.waiting = 0
        """Decodes blocked on the release so far."""

    def open_stream(self, *, language=None):
        asr = self

        class _Stream:
            def accept_audio(self, samples):
                return None

            def finish(self) -> Transcript:
                asr.waiting += 1
                asr.release.wait(10)
                return Transcript(asr.text, "en")

        return _Stream()


@dataclasses.dataclass
class PauseLog:
    """Records the answer's pauses and resumes, and what had been sent at each pause."""

    harness: SessionHarness
    pauses: list[int] = dataclasses.field(default_factory=list)
    """``len(harness.sent)`` at each pause."""
    leads_ms: list[float] = dataclasses.field(default_factory=list)
    """What the client still had to play at each pause: it falls silent after this."""
    resumes: int = 0
    resumed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    """Set at the first resume of a paused answer."""

    def install(self) -> PauseLog:
        responses = self.harness.session.responses
        pause, resume = responses.pause, responses.resume

        def paused() -> None:
            if not responses.paused:
                self.pauses.append(len(self.harness.sent))
                current = responses.current
                clock = current.outcome.clock if current is not None else None
                self.leads_ms.append(clock.remaining_ms() if clock is not None else 0.0)
            pause()

        def resumed() -> None:
            if responses.paused:
                self.resumes += 1
                self.resumed.set()
            resume()

        responses.pause, responses.resume = paused, resumed
        return self


async def answer(make_session, *, silero, llm, tts, asr=None, config=None) -> tuple[SessionHarness, str]:
    harness = await make_session(llm=llm, tts=tts, vad=silero, asr=asr, config=config)
    await harness.say("Tell me something.")
    await harness.send({"type": "response.create"})
    created = await harness.until("response.created")
    await harness.until(AUDIO_DELTA, timeout=5)
    return harness, created["response"]["id"]


async def play(harness: SessionHarness, audio: np.ndarray) -> None:
    """The microphone's audio in 100 ms appends (not paced: the VAD counts audio, not wall time)."""
    step = RATE // 10
    for i in range(0, len(audio), step):
        pcm = base64.b64encode(audio[i:i + step].astype("<i2").tobytes()).decode()
        await harness.send({"type": "input_audio_buffer.append", "audio": pcm})


def audio_ms(harness: SessionHarness, response_id: str) -> float:
    return sum(len(base64.b64decode(e["delta"])) / 2 for e in harness.of_type(AUDIO_DELTA)
               if e["response_id"] == response_id) * 1000 / RATE


def streamed_text(harness: SessionHarness, response_id: str) -> str:
    return "".join(e["delta"] for e in harness.of_type("response.output_audio_transcript.delta")
                   if e["response_id"] == response_id)


async def assert_answer_survived(harness: SessionHarness, response_id: str, llm: Sentences, tts: ClauseTTS) -> None:
    """The answer completed whole: every word in its transcript, every frame of its audio sent,
    no user turn and no other response from the sound said over it."""
    done = await harness.until(DONE, where=lambda e: e["response"]["id"] == response_id, timeout=20)
    assert done["response"]["status"] == "completed"
    transcript = done["response"]["output"][0]["content"][0]["transcript"]
    assert transcript == llm.text() == streamed_text(harness, response_id).strip()
    assert audio_ms(harness, response_id) == pytest.approx(tts.begun * tts.chunks * tts.chunk_s * 1000, abs=1)
    await harness.settled(timeout=5)
    for kind in ("input_audio_buffer.speech_started", "input_audio_buffer.committed", "conversation.item.truncated"):
        assert harness.of_type(kind) == [], kind
    assert len(harness.of_type("response.created")) == 1
    history = harness.session.conversation.chat_history()
    assert [m.role for m in history] == ["user", "assistant"] and history[-1].content == llm.text()
    assert barge_ins(harness, "confirmed") == 0


def barge_ins(harness: SessionHarness, verdict: str) -> float:
    return harness.session.metrics.registry.get_sample_value("tingshuo_barge_ins_total", {"verdict": verdict}) or 0


async def test_noise_over_an_answer_loses_nothing(make_session, silero):
    llm, tts = Sentences(8), ClauseTTS()
    harness, first = await answer(make_session, silero=silero, llm=llm, tts=tts)
    log = PauseLog(harness).install()
    await play(harness, np.concatenate([clip("noise/noise_koala_noise.wav", 0, 1.5),
                                        clip("noise/noise_office_ambience_30s.wav", 0, 1.5), silence(0.5)]))
    await assert_answer_survived(harness, first, llm, tts)
    assert log.resumes == len(log.pauses)  # every pause (if the VAD stirred at all) was resumed


async def test_a_short_sound_pauses_the_answer_and_it_resumes(make_session, silero):
    """250 ms of real speech (a cough-length syllable): the answer pauses at its onset, the onset is
    withdrawn before it becomes a turn, and the answer resumes where it paused."""
    llm, tts = Sentences(8), ClauseTTS()
    harness, first = await answer(make_session, silero=silero, llm=llm, tts=tts)
    log = PauseLog(harness).install()
    await play(harness, np.concatenate([silence(0.2), clip("en/en_harvard_spk1_snt5.wav", 0.35, 0.60),
                                        silence(1.0)]))
    await assert_answer_survived(harness, first, llm, tts)
    assert len(log.pauses) >= 1 and log.resumes == len(log.pauses)


@pytest.mark.parametrize("recording,start_s,end_s,heard", [
    ("en/en_harvard_spk1_snt5.wav", 0.15, 0.85, "Uh-huh."),  # 0.7 s: longer than the 0.4 s guard
    ("zh/zh_cosyvoice_prompt.wav", 0.25, 1.05, "嗯。"),
])
async def test_a_backchannel_over_an_answer_is_no_interruption(make_session, silero, recording, start_s, end_s,
                                                              heard):
    """A backchannel long enough to become a turn: held, judged on its words, dropped; the answer
    goes on and the client never hears of the turn (no speech_started, no user item)."""
    llm, tts = Sentences(10), ClauseTTS()
    harness, first = await answer(make_session, silero=silero, llm=llm, tts=tts)
    harness.engines.asr.transcripts.append(Transcript(heard, "en"))
    log = PauseLog(harness).install()
    await play(harness, np.concatenate([clip(recording, start_s, end_s), silence(1.2)]))
    await assert_answer_survived(harness, first, llm, tts)
    assert harness.engines.asr.calls >= 1  # its words were heard and judged
    assert barge_ins(harness, "resumed") == 1
    assert log.pauses and log.resumes == len(log.pauses)
    assert max(log.leads_ms) <= 160 + 1  # the client fell silent within the play-out lead


async def test_a_real_interruption_still_cancels_and_truncates(make_session, silero):
    llm, tts = Sentences(20), ClauseTTS()
    harness, first = await answer(make_session, silero=silero, llm=llm, tts=tts)
    await harness.until(AUDIO_DELTA, count=20, timeout=5)  # 0.8 s of the answer went out: some was heard
    harness.engines.asr.transcripts.append(Transcript("Sunday is the best part of the week.", "en"))
    log = PauseLog(harness).install()
    await play(harness, np.concatenate([clip("en/en_harvard_spk1_snt5.wav"), silence(1.0)]))
    cancelled = await harness.until(DONE, where=lambda e: e["response"]["id"] == first, timeout=10)
    assert cancelled["response"]["status"] == "cancelled"
    assert cancelled["response"]["status_details"]["reason"] == "turn_detected"
    started = harness.of_type("input_audio_buffer.speech_started")
    assert len(started) == 1 and harness.sent.index(started[0]) < harness.sent.index(cancelled)
    # After the onset at most the one frame already on its way to the socket (waiting for the send
    # lock) went out: the client stopped within the lead it had, plus that frame.
    assert log.pauses and max(log.leads_ms) <= 160 + 1
    late = [e for e in harness.sent[log.pauses[0]:] if e["type"] == AUDIO_DELTA and e["response_id"] == first]
    assert len(late) <= 1
    heard = cancelled["response"]["output"][0]["content"][0]["transcript"]
    assert heard and streamed_text(harness, first).startswith(heard.rstrip())
    assert heard.strip() != llm.text()  # cut at what was heard
    assert barge_ins(harness, "confirmed") == 1
    # The turn goes on as any other and is answered.
    await harness.until("conversation.item.input_audio_transcription.completed", timeout=10)
    second = await harness.until(DONE, count=2, timeout=10)
    assert second["response"]["status"] == "completed"


async def test_pause_and_resume_with_full_queues_mid_clause(make_session, silero, monkeypatch):
    """The worst moment: the audio queue full (the TTS blocked on it, the LLM on the text queue)
    and a clause half sent. The pause holds every stage; the resume loses no frame and no word."""
    monkeypatch.setattr(response_runner, "AUDIO_QUEUE_FRAMES", 12)  # 0.48 s: full within a clause
    llm, tts = Sentences(6), ClauseTTS(chunks=4, chunk_s=0.2)
    harness, first = await answer(make_session, silero=silero, llm=llm, tts=tts)
    await harness.until(AUDIO_DELTA, count=3, timeout=5)  # mid first clause (0.8 s), queue full behind it
    harness.engines.asr.transcripts.append(Transcript("Yeah.", "en"))
    log = PauseLog(harness).install()
    await play(harness, np.concatenate([clip("en/en_harvard_spk1_snt5.wav", 0.15, 0.85), silence(1.2)]))
    await assert_answer_survived(harness, first, llm, tts)
    assert log.pauses and log.resumes == len(log.pauses)


async def paused_past_its_limit(make_session, silero, *, words: str, sentences: int):
    """A 0.7 s sound over an answer while the recogniser is stuck: returns once the pause limit
    (800 ms) let the answer play on, the words still unknown; then the recogniser says ``words``."""
    config = dataclasses.replace(Config(), audio=AudioSection(barge_in_max_pause_ms=800))
    asr = BlockingASR(words)
    llm, tts = Sentences(sentences), ClauseTTS()
    harness, first = await answer(make_session, silero=silero, llm=llm, tts=tts, asr=asr, config=config)
    try:
        log = PauseLog(harness).install()
        await play(harness, np.concatenate([clip("en/en_harvard_spk1_snt5.wav", 0.15, 0.85), silence(0.6)]))
        assert log.pauses
        await asyncio.wait_for(log.resumed.wait(), timeout=5)  # at the limit, words still unknown
        assert asr.waiting and not asr.release.is_set()
        assert harness.of_type("input_audio_buffer.speech_started") == []
    finally:
        asr.release.set()
    return harness, first, llm, tts


async def test_a_pause_never_outlives_its_limit_and_late_words_still_judge(make_session, silero):
    """The recogniser is slow (a busy CPU): a short sound's pause ends at ``barge_in_max_pause_ms``
    with the answer playing again, not cancelled (this cut "uh-huh" answers off in CI). The words,
    once they come, still judge it: a backchannel leaves the answer whole."""
    harness, first, llm, tts = await paused_past_its_limit(make_session, silero, words="Uh-huh.", sentences=20)
    await assert_answer_survived(harness, first, llm, tts)


async def test_a_stop_word_late_after_the_pause_limit_still_cancels(make_session, silero):
    """The same slow recogniser, but the words are "Stop.": the resumed answer is cancelled when they
    come, and the held turn's events go out in order before the cancel."""
    harness, first, _, _ = await paused_past_its_limit(make_session, silero, words="Stop.", sentences=40)
    cancelled = await harness.until(DONE, where=lambda e: e["response"]["id"] == first, timeout=10)
    assert cancelled["response"]["status"] == "cancelled"
    started = harness.of_type("input_audio_buffer.speech_started")
    assert len(started) == 1 and harness.sent.index(started[0]) < harness.sent.index(cancelled)
    assert barge_ins(harness, "confirmed") == 1
