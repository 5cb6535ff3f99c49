"""Real Mandarin utterances with a hesitation in the middle, to measure turns cut at a pause.

    python -m benchmarks.paused_corpus --out var/bench/paused-zh
    tingshuo bench --audio var/bench/paused-zh --barge-in-every 0 --false-interrupt-every 0

A speaker who stops to think mid-sentence ("我想问……我在滨海新区有房") must not be answered
after the first half. The shared recordings are read speech without such pauses, so this
makes them: each Mandarin sentence of ``../shared/audio`` (the short clips, and the long
recording cut at its sentence pauses) gets a pause of 0.6-1.0 s inserted at its quietest
20 ms between 40 % and 65 % of the way through, which falls between syllables. The
result is a corpus folder the bench reads (``MANIFEST.tsv``), where the bench's
"utterances cut at a pause" counts the turns the server split.
"""

from __future__ import annotations

import argparse
import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.corpus import read_manifest

RATE = 16_000
PAUSES_S = (0.6, 0.8, 1.0)
LEAD_S, TAIL_S = 0.3, 1.0
MIN_GAP_S = 0.4
"""Silence that separates two sentences of the long recording."""
LONG_ZH = "long/long_zh_customspeech_train1.wav"


@dataclass(frozen=True)
class PausedUtterance:
    name: str
    audio: np.ndarray
    """float32 at 16 kHz: leading silence, the first part, the pause, the rest, trailing silence."""
    reference: str
    pause_at_s: float
    pause_s: float


def _read(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != RATE:
        raise ValueError(f"{path}: {rate} Hz, expected {RATE}")
    return audio.mean(axis=1)


def _loud(audio: np.ndarray, frame: int = 320, floor_db: float = -35.0) -> np.ndarray:
    usable = len(audio) // frame * frame
    rms = np.sqrt(np.mean(audio[:usable].reshape(-1, frame) ** 2, axis=1))
    return rms >= rms.max() * 10 ** (floor_db / 20)


def speech_spans(audio: np.ndarray, *, min_gap_s: float = MIN_GAP_S, frame: int = 320) -> list[tuple[int, int]]:
    """Sample spans of speech separated by at least ``min_gap_s`` of quiet (by frame energy)."""
    loud = _loud(audio, frame)
    spans: list[tuple[int, int]] = []
    start = end = None
    for i, is_loud in enumerate(loud):
        if is_loud:
            if start is not None and end is not None and (i - end) * frame / RATE >= min_gap_s:
                spans.append((start * frame, (end + 1) * frame))
                start = None
            start = i if start is None else start
            end = i
    if start is not None and end is not None:
        spans.append((start * frame, (end + 1) * frame))
    return spans


def quietest_point(speech: np.ndarray, *, lo: float = 0.40, hi: float = 0.65, frame: int = 320) -> int:
    """The middle of the quietest 20 ms window (10 ms hops) between ``lo`` and ``hi`` of the speech."""
    a, b = int(lo * len(speech)), int(hi * len(speech))
    energies = [float(np.mean(speech[i:i + frame] ** 2)) for i in range(a, b - frame, frame // 2)]
    return a + int(np.argmin(energies)) * (frame // 2) + frame // 2


def sentences(audio_dir: Path) -> list[tuple[str, np.ndarray, str]]:
    """(name, speech, reference) of every Mandarin sentence in the shared recordings."""
    rows = read_manifest(audio_dir)
    out = []
    for row in rows:
        if row["language"] != "zh" or not row["file"].startswith("zh/"):
            continue
        audio = _read(audio_dir / row["file"])
        spans = speech_spans(audio, min_gap_s=10.0)
        out.append((Path(row["file"]).stem, audio[spans[0][0]:spans[-1][1]], row["reference"]))
    long_row = next(r for r in rows if r["file"] == LONG_ZH)
    audio = _read(audio_dir / LONG_ZH)
    spans = speech_spans(audio)
    references = [s.strip() for s in re.split(r"(?<=。)", long_row["reference"]) if s.strip()]
    if len(spans) != len(references):
        raise ValueError(f"{LONG_ZH}: {len(spans)} spoken sentences but {len(references)} in its reference")
    for i, ((a, b), reference) in enumerate(zip(spans, references)):
        out.append((f"long_zh_{i + 1}", audio[a:b], reference))
    return out


def paused_utterances(audio_dir: Path) -> list[PausedUtterance]:
    out = []
    for i, (name, speech, reference) in enumerate(sentences(audio_dir)):
        cut = quietest_point(speech)
        pause_s = PAUSES_S[i % len(PAUSES_S)]
        audio = np.concatenate([np.zeros(int(LEAD_S * RATE), np.float32), speech[:cut],
                                np.zeros(int(pause_s * RATE), np.float32), speech[cut:],
                                np.zeros(int(TAIL_S * RATE), np.float32)])
        out.append(PausedUtterance(f"{name}_paused", audio, reference, LEAD_S + cut / RATE, pause_s))
    return out


def write_corpus(audio_dir: Path, out: Path) -> list[PausedUtterance]:
    utterances = paused_utterances(audio_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "MANIFEST.tsv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["file", "seconds", "language", "reference", "pause_at_s", "pause_s"])
        for u in utterances:
            sf.write(out / f"{u.name}.wav", u.audio, RATE, subtype="PCM_16")
            writer.writerow([f"{u.name}.wav", f"{len(u.audio) / RATE:.2f}", "zh", u.reference,
                             f"{u.pause_at_s:.2f}", f"{u.pause_s:.1f}"])
    return utterances


def main(argv: list[str] | None = None) -> int:
    from benchmarks.harness import DEFAULT_AUDIO

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--audio", type=Path, default=DEFAULT_AUDIO, help="the shared recordings (with MANIFEST.tsv)")
    p.add_argument("--out", type=Path, default=Path("var/bench/paused-zh"))
    args = p.parse_args(argv)
    for u in write_corpus(args.audio, args.out):
        print(f"{u.name}: {len(u.audio) / RATE:.2f} s, {u.pause_s:.1f} s pause at {u.pause_at_s:.2f} s")
    print(f"written to {args.out}/MANIFEST.tsv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
