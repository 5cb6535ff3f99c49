"""Recordings with reference transcripts: ``../shared/audio`` or any folder with a manifest.

A manifest is ``MANIFEST.tsv`` (tab-separated, a header with at least ``file``, ``language``
and ``reference``; paths relative to the folder). A folder without one may hold ``NAME.wav``
files next to ``NAME.txt`` references, with the language given on the command line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


@dataclass(frozen=True)
class Recording:
    path: Path
    language: str
    reference: str

    @property
    def name(self) -> str:
        return self.path.name

    def pcm16(self, rate: int) -> np.ndarray:
        """Mono int16 at ``rate``."""
        audio, source_rate = sf.read(self.path, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        if source_rate != rate:
            audio = soxr.resample(audio, source_rate, rate)
        return np.clip(audio * 32768, -32768, 32767).astype(np.int16)


def _loud_frames(pcm: np.ndarray, rate: int, frame_ms: int, floor_db: float) -> tuple[np.ndarray, int]:
    """Indexes of the 20 ms frames within ``floor_db`` of the loudest frame, and the frame length."""
    frame = rate * frame_ms // 1000
    usable = len(pcm) // frame * frame
    if usable == 0:
        return np.zeros(0, np.int64), frame
    rms = np.sqrt(np.mean(pcm[:usable].astype(np.float64).reshape(-1, frame) ** 2, axis=1))
    return np.nonzero(rms >= rms.max() * 10 ** (floor_db / 20))[0], frame


def speech_end_secs(pcm: np.ndarray, rate: int, *, frame_ms: int = 20, floor_db: float = -30.0) -> float:
    """Where the speech in a recording ends: the end of its last 20 ms frame within ``floor_db``
    of the loudest frame. Recordings carry trailing silence; "end of user audio" means this."""
    loud, frame = _loud_frames(pcm, rate, frame_ms, floor_db)
    return (loud[-1] + 1) * frame / rate if loud.size else len(pcm) / rate


def speech_start_secs(pcm: np.ndarray, rate: int, *, frame_ms: int = 20, floor_db: float = -30.0) -> float:
    """Where the speech in a recording starts (its first frame within ``floor_db`` of the loudest).
    A barge-in is timed from here: zh_cosyvoice_prompt.wav opens with 0.34 s of silence, which
    the stop latency counted until 2026-12."""
    loud, frame = _loud_frames(pcm, rate, frame_ms, floor_db)
    return loud[0] * frame / rate if loud.size else 0.0


def read_manifest(folder: Path) -> list[dict[str, str]]:
    with (Path(folder) / "MANIFEST.tsv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def load_corpus(folder: Path, *, languages: tuple[str, ...] = ("en", "zh"), default_language: str = "en",
                include: str = "", max_seconds: float = 15.0) -> list[Recording]:
    """The speech recordings of ``folder`` (noise and over-long files left out), sorted by path."""
    folder = Path(folder)
    if (folder / "MANIFEST.tsv").exists():
        rows = read_manifest(folder)
        recordings = [
            Recording(folder / row["file"], row["language"], row["reference"])
            for row in rows
            if row["language"] in languages and (not row.get("seconds") or float(row["seconds"]) <= max_seconds)
        ]
    else:
        recordings = [
            Recording(wav, default_language, wav.with_suffix(".txt").read_text(encoding="utf-8").strip())
            for wav in sorted(folder.glob("*.wav")) if wav.with_suffix(".txt").exists()
        ]
    recordings = [r for r in recordings if include in str(r.path)]
    if not recordings:
        raise ValueError(f"no recordings with references in {folder} (languages {languages}, filter {include!r})")
    return sorted(recordings, key=lambda r: str(r.path))
