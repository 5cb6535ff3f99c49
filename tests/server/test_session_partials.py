"""When a session previews a turn: language gating, item ids, and no duplicated final delta (scripted engines)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import numpy as np

from models.interfaces import Transcript
from server.audio_input import Utterance
from server.config import Config
from server.engines import Engines, Executors
from server.metrics import ServerMetrics
from server.session import RealtimeSession
from tests.server.test_partial_transcripts import BLOCK, ScriptedRecognizer

DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"


class _QuietVAD:
    frame_samples = 512

    def open_stream(self):
        return self

    def speech_probability(self, frame) -> float:
        return 0.0

    def reset(self) -> None: ...


class _ScriptedASR:
    """Returns the queued transcripts in order, as Whisper would after each turn."""

    def __init__(self) -> None:
        self.transcripts: list[Transcript] = []

    def open_stream(self, *, language=None):
        asr = self

        class _Stream:
            def accept_audio(self, samples):
                return None

            def finish(self) -> Transcript:
                return asr.transcripts.pop(0)

        return _Stream()


async def _session(**settings) -> tuple[RealtimeSession, _ScriptedASR, list[dict]]:
    sent: list[dict] = []

    async def send_text(text: str) -> None:
        sent.append(json.loads(text))

    async def send_bytes(data: bytes) -> None: ...

    asr = _ScriptedASR()
    engines = Engines(vad=_QuietVAD(), turn=None, asr=asr, llm=None, tts=None, executors=Executors(),
                      partials=ScriptedRecognizer())
    session = RealtimeSession(config=Config(), engines=engines, metrics=ServerMetrics(), send_text=send_text,
                              send_bytes=send_bytes)
    session.settings = dataclasses.replace(session.settings, **settings)
    return session, asr, sent


async def _turn(session: RealtimeSession, asr: _ScriptedASR, transcript: Transcript) -> str:
    """One spoken turn of 0.8 s: speech start, audio in 100 ms pieces, commit, Whisper's transcript."""
    await session.on_speech_started(0)
    item_id = session._speech_item_id
    for _ in range(8):
        session.on_turn_audio(BLOCK)
        await asyncio.sleep(0.03)
    asr.transcripts.append(transcript)
    await session._commit_utterance(Utterance(audio=np.zeros(8 * 1600, np.float32), speech_end_at=None,
                                              turn_end_at=time.monotonic(), end_reason="test"), respond=False)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if not session._tasks:
            break
    return item_id


def _deltas(sent: list[dict], item_id: str) -> list[str]:
    return [e["delta"] for e in sent if e["type"] == DELTA and e["item_id"] == item_id]


async def test_auto_language_previews_only_after_a_turn_heard_in_the_previews_language():
    session, asr, sent = await _session()
    try:
        zero = await _turn(session, asr, Transcript("Zero.", "en"))
        assert _deltas(sent, zero) == ["Zero."]  # the first turn's language is unknown: no preview, Whisper's text once
        first = await _turn(session, asr, Transcript("One two three.", "en"))
        assert _deltas(sent, first) and "".join(_deltas(sent, first)).startswith("one")
        completed = [e for e in sent if e["type"] == COMPLETED]
        assert [e["item_id"] for e in completed] == [zero, first] and completed[1]["transcript"] == "One two three."
        assert "One two three." not in _deltas(sent, first)  # no second, full-text delta after the preview

        second = await _turn(session, asr, Transcript("你好", "zh"))
        assert _deltas(sent, second)  # still previewed: the language was learnt from this very turn
        third = await _turn(session, asr, Transcript("hello there", "en"))
        assert _deltas(sent, third) == ["hello there"]  # no preview: only Whisper's text, once
        fourth = await _turn(session, asr, Transcript("and again", "en"))
        assert _deltas(sent, fourth) and "and again" not in _deltas(sent, fourth)
    finally:
        await session.aclose()


async def test_pinned_other_language_or_transcription_off_gets_no_preview():
    for settings in ({"transcription_language": "zh"}, {"transcription": False}):
        session, asr, sent = await _session(**settings)
        try:
            item_id = await _turn(session, asr, Transcript("你好", "zh"))
            expected = ["你好"] if settings.get("transcription", True) else []
            assert _deltas(sent, item_id) == expected
            assert session._engines.partials.opened == 0  # no decoder loaded for a session that never previews
        finally:
            await session.aclose()


async def test_aclose_closes_the_preview_stream():
    session, asr, sent = await _session()
    await _turn(session, asr, Transcript("one", "en"))  # teaches the session the user speaks English
    await _turn(session, asr, Transcript("two", "en"))  # previewed: opens the decoder
    await session.on_speech_started(0)
    session.on_turn_audio(BLOCK)
    await session.aclose()
    assert session._engines.partials.closed == 1
    assert not session._tasks
