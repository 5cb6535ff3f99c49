"""Whisper's shortened encoder window keeps the words of real recordings (models/whisper_asr.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.transcript_scoring import error_rate
from models.whisper_asr import WhisperParams, WhisperRecognizer

AUDIO_DIR = Path(__file__).resolve().parents[3] / "shared" / "audio"
MODEL_DIR = Path(__file__).resolve().parents[2] / "var" / "models" / "whisper-base-ct2"

CLIPS = [
    ("en/en_harvard_spk1_snt1.wav", "en", "The child almost hurt the small dog."),
    ("en/en_jfk.wav", "en",
     "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."),
    ("zh/zh_aishell_BAC009S0764W0121.wav", "zh", "甚至出现交易几乎停滞的情况"),
]


@pytest.fixture(scope="module")
def clips():
    pytest.importorskip("faster_whisper")
    from faster_whisper.audio import decode_audio

    if not MODEL_DIR.is_dir():
        pytest.skip("Whisper base is not installed (scripts/setup.sh)")
    return [(decode_audio(str(AUDIO_DIR / name), sampling_rate=16_000), lang, ref) for name, lang, ref in CLIPS]


def _error(recognizer: WhisperRecognizer, audio, language: str, reference: str) -> float:
    transcript = recognizer.transcribe(audio)
    assert transcript.language == language  # language detection works on the short window too
    return error_rate([reference], [transcript.text], language)


@pytest.mark.timeout(240)
def test_short_window_is_as_accurate_as_the_full_window(clips):
    short = WhisperRecognizer(model_dir=MODEL_DIR, params=WhisperParams(window_padding_s=3.0))
    full = WhisperRecognizer(model_dir=MODEL_DIR, params=WhisperParams(window_padding_s=0))
    for audio, language, reference in clips:
        assert _error(short, audio, language, reference) <= _error(full, audio, language, reference) + 1e-9


@pytest.mark.timeout(120)
def test_the_encoder_sees_the_audio_plus_padding(clips, monkeypatch):
    recognizer = WhisperRecognizer(model_dir=MODEL_DIR, params=WhisperParams(window_padding_s=3.0))
    seen: list[int] = []
    encode = recognizer._model.encode
    monkeypatch.setattr(recognizer._model, "encode", lambda features: seen.append(features.shape[-1]) or encode(features))
    audio = clips[0][0]
    recognizer.transcribe(audio)
    audio_frames = len(audio) // 160
    assert seen and audio_frames + 300 <= seen[0] <= audio_frames + 302 < 3000


def _redecoded(recognizer, short_text: str, audio) -> tuple[list[int], str]:
    """Windows decoded, and the text, when the short window's decode says ``short_text``."""
    decode = recognizer._decode
    windows: list[int] = []

    def scripted_when_short(features, language, window):
        windows.append(window)
        return (short_text, "en", 1.0) if window < 3000 else decode(features, language, window)

    recognizer._decode = scripted_when_short
    return windows, recognizer.transcribe(audio).text


@pytest.mark.timeout(120)
def test_a_looping_short_window_decode_is_done_again_on_the_full_window(clips):
    recognizer = WhisperRecognizer(model_dir=MODEL_DIR, params=WhisperParams(window_padding_s=3.0))
    audio, language, reference = clips[0]
    windows, text = _redecoded(recognizer, "A thin stripe runs down the middle. A thin stripe runs down the middle.",
                               audio)
    assert windows[0] < 3000 and windows[1] == 3000
    assert error_rate([reference], [text], language) == 0.0


@pytest.mark.timeout(120)
def test_a_short_window_decode_that_stopped_early_is_done_again_on_the_full_window(clips):
    recognizer = WhisperRecognizer(model_dir=MODEL_DIR, params=WhisperParams(window_padding_s=3.0))
    audio, language, reference = clips[1]  # JFK, 11 s
    windows, text = _redecoded(recognizer, "1,0001", audio)
    assert windows[0] < 3000 and windows[1] == 3000
    assert error_rate([reference], [text], language) < 0.1


@pytest.mark.timeout(240)
def test_spoken_digits_whisper_is_unsure_of_are_decoded_again_on_the_full_window(clips):
    """The shared digits, cut as the VAD might (0.1-0.2 s of silence before them): the short window
    alone read "1-0-0-0-1 Nano-2-1-0 0-1-8-0-3" and "1-001 90210 018-03", at a language certainty
    of 0.38-0.58. Plain speech (certainty 0.97-1.0) is decoded once."""
    import numpy as np
    from faster_whisper.audio import decode_audio

    recognizer = WhisperRecognizer(model_dir=MODEL_DIR, params=WhisperParams(window_padding_s=3.0))
    windows: list[int] = []
    decode = recognizer._decode
    recognizer._decode = lambda features, language, window: windows.append(window) or decode(features, language, window)
    digits = decode_audio(str(AUDIO_DIR / "en" / "en_vosk_digits.wav"), sampling_rate=16_000)
    reference = "one zero zero zero one nine oh two one oh zero one eight zero three"
    for lead_s, cut_s in ((0.1, 0.0), (0.2, 0.0), (0.2, 0.2)):
        windows.clear()
        audio = np.concatenate([np.zeros(int(lead_s * 16_000), np.float32), digits[:len(digits) - int(cut_s * 16_000)]])
        text = recognizer.transcribe(audio).text
        assert error_rate([reference], [text], "en") == 0.0, text
        assert windows[0] < 3000 and windows[-1] == 3000
    for audio, language, reference in clips:
        windows.clear()
        assert error_rate([reference], [recognizer.transcribe(audio).text], language) <= 0.1
        assert len(windows) == 1 and windows[0] < 3000
