"""Talking over an answer at its worst moments: queues full, TTS mid-sentence, LLM mid-generation.

Each barge-in goes through the real input pipeline (``input_audio_buffer.append`` → VAD gate →
turn end), the real session, responder and runner; only the engines are scripted. Each must end
the answer with ``response.done`` (``cancelled``) within a bounded time, send no audio of it
afterwards, leave the input pipeline working, and answer the next turn.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time

import numpy as np

from models.interfaces import Transcript
from tests.server.session_harness import SessionHarness

RATE = 24_000
DONE = "response.done"
SPEECH_LEVEL = 0.5


class LoudnessVAD:
    """Speech is any frame louder than a quiet floor: the test's audio decides, as a microphone's would."""

    frame_samples = 512

    def open_stream(self):
        return self

    def speech_probability(self, frame) -> float:
        return 1.0 if float(np.abs(frame).mean()) > 0.05 else 0.0

    def reset(self) -> None: ...


class LongChat:
    """A long answer (``sentences`` sentences) the first time, a short one afterwards; ``delay_s``
    between tokens. Counts what it yielded and whether each stream was closed."""

    def __init__(self, sentences: int = 60, delay_s: float = 0.0) -> None:
        self.sentences, self.delay_s = sentences, delay_s
        self.calls = self.yielded = self.closed = 0

    async def stream_chat(self, messages, params):
        self.calls += 1
        count = self.sentences if self.calls == 1 else 1
        try:
            for i in range(count):
                for word in (f"Sentence {i} ", "is ", "here. "):
                    if self.delay_s:
                        await asyncio.sleep(self.delay_s)
                    self.yielded += 1
                    yield word
        finally:
            self.closed += 1


class ChunkedTTS:
    """``chunks`` pieces of ``chunk_s`` seconds per clause, each taking ``work_s`` of (thread) time.
    Counts clauses begun and synthesis streams closed."""

    sample_rate = 16_000

    def __init__(self, *, chunks: int = 4, chunk_s: float = 0.5, work_s: float = 0.0) -> None:
        self.chunks, self.chunk_s, self.work_s = chunks, chunk_s, work_s
        self.begun = self.closed = 0
        self.in_clause = threading.Event()

    def synthesize(self, text, *, voice=None, speed=1.0):
        self.begun += 1
        try:
            for _ in range(self.chunks):
                self.in_clause.set()
                if self.work_s:
                    time.sleep(self.work_s)
                yield np.full(int(self.sample_rate * self.chunk_s), 100, np.int16)
        finally:
            self.closed += 1


def _pcm(seconds: float, level: float) -> str:
    samples = np.full(int(RATE * seconds), int(level * 32767), "<i2")
    return base64.b64encode(samples.tobytes()).decode()


async def _talk(harness: SessionHarness, speech_s: float = 1.0, silence_s: float = 1.0) -> None:
    """The user speaks over the answer, in 100 ms appends as a microphone sends them (not paced:
    the VAD counts audio, not wall time)."""
    for _ in range(int(speech_s * 10)):
        await harness.send({"type": "input_audio_buffer.append", "audio": _pcm(0.1, SPEECH_LEVEL)})
    for _ in range(int(silence_s * 10)):
        await harness.send({"type": "input_audio_buffer.append", "audio": _pcm(0.1, 0.0)})


async def _wait_for(predicate, timeout: float = 5.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.005)


async def _barge_in_and_next_turn(harness: SessionHarness) -> dict:
    """Talks over the first answer; checks it ends cancelled and the next turn is answered."""
    first = harness.of_type("response.created")[0]["response"]["id"]
    harness.engines.asr.transcripts.append(Transcript("What about tomorrow?", "en"))
    await _talk(harness)
    started = await harness.until("input_audio_buffer.speech_started", timeout=2)
    cancelled = await harness.until(DONE, where=lambda e: e["response"]["id"] == first, timeout=2)
    assert cancelled["response"]["status"] == "cancelled"
    assert cancelled["response"]["status_details"]["reason"] == "turn_detected"
    assert harness.sent.index(started) < harness.sent.index(cancelled)
    # The input pipeline went on: the user's turn ended and was transcribed.
    await harness.until("input_audio_buffer.speech_stopped", timeout=5)
    await harness.until("conversation.item.input_audio_transcription.completed", timeout=5)
    second = await harness.until(DONE, count=2, timeout=10)
    assert second["response"]["status"] == "completed"
    assert second["response"]["output"][0]["content"][0]["transcript"] == "Sentence 0 is here."
    stale = [e for e in harness.sent[harness.sent.index(cancelled):]
             if e["type"] == "response.output_audio.delta" and e["response_id"] == first]
    assert stale == [], "audio of the cancelled answer was sent after its response.done"
    heard = cancelled["response"]["output"][0]["content"][0]["transcript"]
    sent_text = "".join(e["delta"] for e in harness.of_type("response.output_audio_transcript.delta")
                        if e["response_id"] == first)
    assert sent_text.startswith(heard.rstrip())  # the history keeps at most what was heard
    return cancelled


async def _long_answer(make_session, llm: LongChat, tts: ChunkedTTS) -> SessionHarness:
    harness = await make_session(llm=llm, tts=tts, vad=LoudnessVAD())
    await harness.say("Tell me a long story.")
    await harness.send({"type": "response.create", "response": {"max_output_tokens": 400}})
    await harness.until("response.output_audio.delta", timeout=5)
    return harness


async def test_barge_in_while_both_queues_are_full(make_session):
    llm, tts = LongChat(sentences=80), ChunkedTTS(chunks=4, chunk_s=0.5)
    harness = await _long_answer(make_session, llm, tts)
    # 200 frames of 40 ms hold 8 s: with 2 s of audio per clause the audio queue is full once a
    # fifth clause is being synthesised, and the text queue (8 clauses) once the LLM is that far ahead.
    await _wait_for(lambda: tts.begun >= 6 and llm.yielded >= 3 * (tts.begun + 8), what="both queues full")
    assert llm.closed == 0  # the LLM is held by the full text queue, not finished
    await _barge_in_and_next_turn(harness)
    await _wait_for(lambda: llm.closed >= 1 and tts.closed >= tts.begun - 1, what="streams closed")


async def test_barge_in_while_the_tts_is_mid_sentence(make_session):
    llm, tts = LongChat(sentences=5), ChunkedTTS(chunks=20, chunk_s=0.1, work_s=0.05)
    harness = await _long_answer(make_session, llm, tts)
    assert tts.in_clause.is_set() and tts.closed == 0  # the first clause is still being synthesised
    await _barge_in_and_next_turn(harness)
    # The clause's synthesis stream was closed (on the TTS worker), not left for the garbage collector.
    await _wait_for(lambda: tts.closed >= 1, what="the first clause's stream closed")


async def test_barge_in_while_the_llm_is_still_generating(make_session):
    llm, tts = LongChat(sentences=200, delay_s=0.02), ChunkedTTS(chunks=1, chunk_s=0.3)
    harness = await _long_answer(make_session, llm, tts)
    assert llm.closed == 0 and llm.yielded < 3 * 200  # mid-generation
    await _barge_in_and_next_turn(harness)
    assert llm.closed >= 1  # the first generation's stream was closed, not left running
    assert llm.yielded < 3 * 200 + 3  # and it stopped early


async def test_response_cancel_returns_at_once_and_a_new_response_may_follow(make_session):
    """``response.cancel`` does not wait in the read loop; a ``response.create`` right after it waits
    (bounded) for the cancelled response's end instead of being refused."""
    llm, tts = LongChat(sentences=80), ChunkedTTS(chunks=4, chunk_s=0.5)
    harness = await _long_answer(make_session, llm, tts)
    await _wait_for(lambda: tts.begun >= 6, what="a full audio queue")
    await harness.send({"type": "response.cancel"})
    await harness.send({"type": "response.create"})
    cancelled = await harness.until(DONE, timeout=2)
    assert cancelled["response"]["status"] == "cancelled"
    assert cancelled["response"]["status_details"]["reason"] == "client_cancelled"
    second = await harness.until(DONE, count=2, timeout=10)
    assert second["response"]["status"] == "completed"
    assert not harness.of_type("error")
