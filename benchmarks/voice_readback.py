"""The Mandarin voice read back by the project's Whisper: how intelligible, how fast.

    python -m benchmarks.voice_readback                      # the embedded default voice
    python -m benchmarks.voice_readback --voices zf_xiaobei,jf_alpha

Each sentence of :data:`~benchmarks.mandarin_sentences.MANDARIN_SENTENCES` is synthesised
alone, and Whisper base (language pinned to zh, as a Mandarin session pins it) transcribes the
audio. The score is a character error rate over all sentences together, on text read the way
it is spoken: digits in both texts are written out (:func:`streaming.mandarin_reading.mandarin_reading`),
punctuation goes, an English word counts as one unit ("Wi-Fi" = "wifi"). Also reported: the
time to the voice's first audio (p50/p95) and its real-time factor, on this machine, alone.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.mandarin_sentences import MANDARIN_SENTENCES
from benchmarks.transcript_scoring import edit_distance
from streaming.mandarin_reading import mandarin_reading

_UNIT = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]|[a-z]+")
_SAME_SOUND = str.maketrans({"两": "二", "幺": "一", "〇": "零"})
"""Readings Whisper may write either way: counted as the same character."""


def spoken_units(text: str) -> list[str]:
    """Characters and English words of ``text`` as it is read aloud."""
    text = mandarin_reading(text).lower().replace("-", "").replace("'", "")
    return _UNIT.findall(text.translate(_SAME_SOUND))


def readback_cer(references: list[str], heard: list[str]) -> float:
    errors = sum(edit_distance(spoken_units(r), spoken_units(h)) for r, h in zip(references, heard))
    return errors / max(1, sum(len(spoken_units(r)) for r in references))


@dataclass
class Readback:
    voice: str
    heard: list[str]
    cer: float
    first_audio_s: list[float]
    rtf: float


def read_back(tts, whisper, voice: str, sentences: tuple[str, ...] = MANDARIN_SENTENCES) -> Readback:
    import soxr

    heard, firsts, compute, audio_s = [], [], 0.0, 0.0
    for sentence in sentences:
        started = time.perf_counter()
        chunks = []
        for chunk in tts.synthesize(sentence, voice=voice):
            if not chunks:
                firsts.append(time.perf_counter() - started)
            chunks.append(chunk)
        compute += time.perf_counter() - started
        pcm = np.concatenate(chunks).astype(np.float32) / 32768
        audio_s += len(pcm) / tts.sample_rate
        heard.append(whisper.transcribe(soxr.resample(pcm, tts.sample_rate, 16_000), language="zh").text)
    return Readback(voice, heard, readback_cer(list(sentences), heard), firsts, compute / max(audio_s, 1e-9))


def main(argv: list[str] | None = None) -> int:
    from models import embedded_store
    from models.kokoro_tts import DEFAULT_VOICE, load_embedded_kokoro
    from models.whisper_asr import WhisperRecognizer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--voices", default=DEFAULT_VOICE, help="comma-separated Kokoro voices")
    p.add_argument("--model-dir", type=Path, default=Path("var/models"))
    p.add_argument("--verbose", action="store_true", help="every sentence and what Whisper heard")
    args = p.parse_args(argv)
    tts = load_embedded_kokoro(args.model_dir)
    whisper = WhisperRecognizer(model_dir=embedded_store.ensure_model(embedded_store.WHISPER_BASE, args.model_dir))
    print(f"{len(MANDARIN_SENTENCES)} sentences, {sum(len(spoken_units(s)) for s in MANDARIN_SENTENCES)} units")
    print(f"{'voice':14s} {'CER':>6s} {'first audio p50/p95 (s)':>24s} {'RTF':>5s}")
    for voice in args.voices.split(","):
        result = read_back(tts, whisper, voice.strip())
        firsts = sorted(result.first_audio_s)
        p95 = firsts[min(len(firsts) - 1, round(0.95 * (len(firsts) - 1)))]
        print(f"{result.voice:14s} {100 * result.cer:5.1f}% {statistics.median(firsts):11.2f} / {p95:.2f}"
              f"{result.rtf:12.2f}")
        if args.verbose:
            for sentence, heard in zip(MANDARIN_SENTENCES, result.heard):
                errors = edit_distance(spoken_units(sentence), spoken_units(heard))
                print(f"  {errors:2d} {sentence} -> {heard}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
