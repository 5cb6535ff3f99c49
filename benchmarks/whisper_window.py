"""Whisper base on the shared recordings: the full 30 s encoder window against audio + padding.

    python -m benchmarks.whisper_window 0 3     # padding seconds to compare; 0 is the full window

Prints WER/CER and the per-clip decode time for each padding, on the same clips in one run.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import DEFAULT_AUDIO
from benchmarks.transcript_scoring import error_rate
from models.whisper_asr import WhisperParams, WhisperRecognizer


def _clips(audio_dir: Path) -> list[tuple[str, str, np.ndarray]]:
    from faster_whisper.audio import decode_audio

    with open(audio_dir / "MANIFEST.tsv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t")
                if r["language"] in ("en", "zh") and not r["file"].startswith("long")]
    return [(r["language"], r["reference"], decode_audio(str(audio_dir / r["file"]), sampling_rate=16_000))
            for r in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paddings", nargs="+", type=float)
    p.add_argument("--model", type=Path, default=Path("var/models/whisper-base-ct2"))
    p.add_argument("--audio", type=Path, default=DEFAULT_AUDIO)
    args = p.parse_args(argv)
    clips = _clips(args.audio)
    for padding in args.paddings:
        recognizer = WhisperRecognizer(model_dir=args.model, params=WhisperParams(window_padding_s=padding))
        recognizer.transcribe(clips[0][2])  # warm-up
        scored: dict[str, tuple[list[str], list[str]]] = {}
        times: list[float] = []
        for language, reference, audio in clips:
            start = time.perf_counter()
            text = recognizer.transcribe(audio).text
            times.append(time.perf_counter() - start)
            refs, hyps = scored.setdefault(language, ([], []))
            refs.append(reference)
            hyps.append(text)
        times.sort()
        rates = ", ".join(f"{lang} {100 * error_rate(r, h, lang):.1f} %" for lang, (r, h) in scored.items())
        print(f"padding {padding:g} s: {rates}; per clip p50 {1000 * times[len(times) // 2]:.0f} ms, "
              f"max {1000 * times[-1]:.0f} ms, n={len(times)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
