"""Mandarin previews from Whisper decoding the growing turn: when it decodes, and what it hears."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import embedded_store
from models.whisper_asr import WhisperRecognizer
from models.whisper_partials import WhisperWindowPartials, WindowParams
from streaming.stable_partials import StablePartials
from tests.e2e.realtime_client import load_speech
from tests.e2e.scoring import error_rate

pytestmark = pytest.mark.timeout(180)
MODELS_DIR = Path(__file__).resolve().parents[2] / "var" / "models"
RATE = 16_000
BLOCK = RATE // 10


class CountingWhisper:
    """Says how much audio it was given; each decode 'takes' ``took`` seconds of the test's clock."""

    def __init__(self, clock: list[float], took: float) -> None:
        self.clock, self.took, self.calls = clock, took, []

    def preview(self, audio: np.ndarray, *, language: str) -> str | None:
        self.calls.append(len(audio))
        self.clock[0] += self.took
        return "你" * (len(audio) // BLOCK)


def _feed(stream, seconds: float) -> list[str | None]:
    return [stream.accept_audio(np.zeros(BLOCK, np.float32)) for _ in range(int(seconds * 10))]


def test_decodes_from_the_first_step_on_and_backs_off_when_decodes_are_slow(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("models.whisper_partials.time.monotonic", lambda: clock[0])
    fast = CountingWhisper(clock, took=0.1)
    _feed(WhisperWindowPartials(fast, params=WindowParams(first_decode_secs=0.4, min_step_secs=0.4,
                                                          duty=2.0)).open_stream(), 2.0)
    assert [n // BLOCK for n in fast.calls] == [4, 8, 12, 16, 20]  # every 0.4 s: 0.2 s of decoding per 0.4 s
    slow = CountingWhisper(clock, took=0.5)
    _feed(WhisperWindowPartials(slow, params=WindowParams(first_decode_secs=0.4, min_step_secs=0.4,
                                                          duty=2.0)).open_stream(), 3.0)
    assert [n // BLOCK for n in slow.calls] == [4, 14, 24]  # 0.5 s decodes: the next waits 1 s of audio


def test_a_turn_past_the_window_gets_no_more_previews_and_reset_starts_over():
    clock = [0.0]
    whisper = CountingWhisper(clock, took=0.0)
    stream = WhisperWindowPartials(whisper, params=WindowParams(max_window_secs=1.0)).open_stream()
    _feed(stream, 2.0)
    assert max(whisper.calls) <= RATE
    stream.reset()
    calls = len(whisper.calls)
    assert "你" * 4 in _feed(stream, 0.5) and len(whisper.calls) == calls + 1  # decoded from its own start


@pytest.fixture(scope="module")
def whisper() -> WhisperRecognizer:
    return WhisperRecognizer(model_dir=embedded_store.ensure_model(embedded_store.WHISPER_BASE, MODELS_DIR))


def test_real_mandarin_previews_grow_into_the_sentence(whisper):
    speech = load_speech("zh/zh_masr_test.wav", rate=RATE).astype(np.float32) / 32768
    reference = "近几年不但我用书给女儿压岁也劝说亲朋不要给女儿压岁钱而改送压岁书"
    # duty 0: a decode every 0.4 s of audio however long decodes take on a loaded machine (this test
    # feeds audio faster than real time); the server's default backs off (the test above).
    partials = WhisperWindowPartials(whisper, params=WindowParams(duty=0.0))
    stream = partials.open_stream()
    stable = StablePartials(agreement=partials.preview_agreement, hold_back_words=partials.preview_hold_back)
    deltas, first_at = [], None
    for start in range(0, len(speech), BLOCK):
        hypothesis = stream.accept_audio(speech[start:start + BLOCK])
        if hypothesis is None:  # no decode this time (as server/partial_transcripts.py skips it)
            continue
        delta = stable.update(hypothesis)
        if delta:
            deltas.append(delta)
            first_at = start + BLOCK if first_at is None else first_at
    preview = "".join(deltas)
    print(f"{len(deltas)} deltas, first after {(first_at or 0) / RATE:.1f} s of audio: {preview}")
    assert first_at is not None and first_at <= 2.4 * RATE, "the first preview came late in the audio"
    assert error_rate([reference[:len(preview)]], [preview], "zh") <= 0.35, preview
    assert len(preview) >= 0.6 * len(reference), preview


def test_a_preview_never_waits_for_a_transcript_being_made(whisper):
    speech = load_speech("zh/zh_masr_test.wav", rate=RATE).astype(np.float32) / 32768
    assert whisper.preview(speech[:2 * RATE], language="zh")
    with whisper._lock:  # a final transcript is being decoded
        assert whisper.preview(speech[:2 * RATE], language="zh") is None


def test_a_preview_decode_stops_after_as_many_tokens_as_the_audio_can_hold(whisper, monkeypatch):
    """A preview that loops must not decode for seconds (the turn's previews fell behind and stopped)."""
    from models import whisper_asr

    speech = load_speech("zh/zh_masr_test.wav", rate=RATE).astype(np.float32) / 32768
    limits: list[int] = []

    class RecordingModel:  # CTranslate2's Whisper cannot be patched: this stands in front of it
        def __init__(self, model) -> None:
            self._model = model

        def __getattr__(self, name):
            return getattr(self._model, name)

        def generate(self, *args, **kwargs):
            limits.append(kwargs["max_length"])
            return self._model.generate(*args, **kwargs)

    monkeypatch.setattr(whisper._model, "model", RecordingModel(whisper._model.model))
    whisper.preview(speech[:RATE], language="zh")
    whisper.transcribe(speech[:RATE], language="zh")
    budget = whisper_asr.PREVIEW_TOKENS + whisper_asr.PREVIEW_TOKENS_PER_S * 1.0
    assert limits[0] <= 4 + budget < whisper_asr.MAX_DECODE_TOKENS  # 4: Whisper's own prompt tokens
    assert limits[1:] and all(limit == whisper_asr.MAX_DECODE_TOKENS for limit in limits[1:])  # transcripts: all
