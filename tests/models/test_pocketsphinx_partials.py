"""PocketSphinx previews on the project's real English recordings: they appear early, grow, and match the words."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from models.interfaces import MODEL_SAMPLE_RATE_HZ
from streaming.stable_partials import StablePartials

AUDIO_DIR = Path(__file__).resolve().parents[3] / "shared" / "audio"
BLOCK = MODEL_SAMPLE_RATE_HZ // 10  # 100 ms, as the server feeds it
FILES = ["en/en_harvard_spk1_snt5.wav", "en/en_harvard_spk1_snt1.wav", "en/en_cheetah_platforms.wav",
         "en/en_vosk_digits.wav"]
MIN_SHARED_WORDS = 0.5
"""Share of the reference's words in the last hypothesis: measured 0.67 (vosk_digits) to 1.0 (snt5, cheetah)."""


@pytest.fixture(scope="module")
def recognizer():
    pytest.importorskip("pocketsphinx")
    from models.pocketsphinx_partials import PocketSphinxPartials

    return PocketSphinxPartials()


def _reference(relative: str) -> list[str]:
    with (AUDIO_DIR / "MANIFEST.tsv").open(encoding="utf-8") as fh:
        row = next(r for r in csv.DictReader(fh, delimiter="\t") if r["file"] == relative)
    return [w.strip(".,").lower() for w in row["reference"].split()]


def _read(relative: str) -> np.ndarray:
    audio, rate = sf.read(AUDIO_DIR / relative, dtype="float32")
    assert rate == MODEL_SAMPLE_RATE_HZ and audio.ndim == 1
    return audio


def _hypotheses(stream, audio: np.ndarray) -> list[str | None]:
    return [stream.accept_audio(audio[i : i + BLOCK]) for i in range(0, len(audio), BLOCK)]


@pytest.mark.parametrize("relative", FILES, ids=lambda f: Path(f).stem)
def test_partials_grow_and_share_words_with_the_reference(recognizer, relative):
    stream = recognizer.open_stream()
    try:
        hyps = _hypotheses(stream, _read(relative))
    finally:
        stream.close()
    words = [len((h or "").split()) for h in hyps]
    first = next(i for i, n in enumerate(words) if n)
    assert first < len(hyps) // 2, "no hypothesis in the first half of the recording"
    half = len(hyps) // 2
    assert max(words[:half]) < max(words[half:]) == words[-1], f"hypotheses did not grow: {hyps}"
    reference = _reference(relative)
    last = hyps[-1].split()
    shared = sum(min(last.count(w), reference.count(w)) for w in set(reference))
    assert shared / len(reference) >= MIN_SHARED_WORDS, f"{hyps[-1]!r} vs {reference}"
    stable = StablePartials()
    deltas = [d for d in (stable.update(h) for h in hyps) if d]
    assert deltas, f"no word became stable in {hyps}"
    assert set(stable.text.split()) & set(reference)


def test_reset_starts_a_new_utterance(recognizer):
    stream = recognizer.open_stream()
    _hypotheses(stream, _read("en/en_harvard_spk1_snt5.wav"))
    stream.reset()
    assert stream.accept_audio(np.zeros(BLOCK, dtype=np.float32)) is None
    last = _hypotheses(stream, _read("en/en_harvard_spk1_snt1.wav"))[-1]
    assert "sunday" not in last and "small" in last
    stream.close()
    with pytest.raises(RuntimeError):
        stream.accept_audio(np.zeros(BLOCK, dtype=np.float32))


def test_streams_are_independent(recognizer):
    a_audio, b_audio = _read("en/en_harvard_spk1_snt5.wav"), _read("en/en_harvard_spk1_snt1.wav")
    alone_a = _hypotheses(recognizer.open_stream(), a_audio)
    alone_b = _hypotheses(recognizer.open_stream(), b_audio)
    a, b = recognizer.open_stream(), recognizer.open_stream()
    inter_a, inter_b = [], []
    for i in range(0, max(len(a_audio), len(b_audio)), BLOCK):
        if i < len(a_audio):
            inter_a.append(a.accept_audio(a_audio[i : i + BLOCK]))
        if i < len(b_audio):
            inter_b.append(b.accept_audio(b_audio[i : i + BLOCK]))
    assert (inter_a, inter_b) == (alone_a, alone_b)
