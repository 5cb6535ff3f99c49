"""CPU cost of the live preview recogniser: decode milliseconds per 100 ms of real speech.

    python -m benchmarks.partials_cost ../shared/audio/en ../shared/audio/long/long_en_customspeech_train1.wav

Each recording is one utterance of a fresh stream, fed in 100 ms blocks as the
server does while the user speaks; each block's ``accept_audio`` (decode plus
hypothesis) is timed on one thread. Below 100 ms per 100 ms keeps up with real
time for one session; the executor is shared, so the sum over talking sessions
must stay below it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from models.interfaces import MODEL_SAMPLE_RATE_HZ

BLOCK_MS = 100


def _read16k(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    return soxr.resample(audio, rate, MODEL_SAMPLE_RATE_HZ) if rate != MODEL_SAMPLE_RATE_HZ else audio


def block_costs_ms(recognizer, audio: np.ndarray) -> list[float]:
    """Milliseconds spent on each 100 ms block of one utterance."""
    step = MODEL_SAMPLE_RATE_HZ * BLOCK_MS // 1000
    stream = recognizer.open_stream()
    costs = []
    try:
        for start in range(0, len(audio), step):
            t0 = time.perf_counter()
            stream.accept_audio(audio[start : start + step])
            costs.append((time.perf_counter() - t0) * 1000)
    finally:
        stream.close()
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="WAV files or folders of them")
    args = parser.parse_args()
    from models.pocketsphinx_partials import PocketSphinxPartials

    files = sorted(f for p in args.paths for f in (p.glob("*.wav") if p.is_dir() else [p]))
    recognizer = PocketSphinxPartials()
    t0 = time.perf_counter()
    recognizer.open_stream().close()
    print(f"open_stream (decoder load): {(time.perf_counter() - t0) * 1000:.0f} ms")
    every: list[float] = []
    for path in files:
        costs = block_costs_ms(recognizer, _read16k(path))
        every.extend(costs)
        print(f"{path.name:40s} {len(costs) / 10:6.1f} s  mean {statistics.fmean(costs):5.1f}  "
              f"p95 {np.percentile(costs, 95):5.1f}  max {max(costs):5.1f} ms per {BLOCK_MS} ms")
    print(f"{'all':40s} {len(every) / 10:6.1f} s  mean {statistics.fmean(every):5.1f}  "
          f"p95 {np.percentile(every, 95):5.1f}  max {max(every):5.1f} ms per {BLOCK_MS} ms")


if __name__ == "__main__":
    main()
