"""How good a voice clip is: loudness, noise floor, SNR, clipping, and a score to pick a speaker prompt.

A zero-shot voice copies everything in its prompt, the room and the hiss as much as the speaker, so
the prompt should be the cleanest clip of the recording. The figures are plain frame statistics on
the clip's own samples (no model): levels are RMS in dBFS (full scale 1.0; a full-scale sine is
-3 dBFS), per frame of ``frame_s``, and the VAD's per-frame speech decision says which frames are
speech and which are the noise between words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SILENCE_DBFS = -100.0
"""The level given to digital silence (and the floor of every level): below 16-bit's own noise."""
CLIP_LEVEL = 0.999
"""A sample at or above this share of full scale counts as clipped (int16's 32767 is 0.99997)."""
MIN_NOISE_FRAMES = 3
"""Fewer non-speech frames than this (a clip with almost no pause) and the noise floor is the
quietest tenth of all its frames instead."""


@dataclass(frozen=True, slots=True)
class ClipQuality:
    speech_dbfs: float
    """RMS of the speech frames."""
    peak_dbfs: float
    noise_dbfs: float
    """Median level of the non-speech frames (or of the quietest tenth of frames, see MIN_NOISE_FRAMES)."""
    clipped_share: float
    """Share of samples at full scale (CLIP_LEVEL)."""

    @property
    def snr_db(self) -> float:
        return self.speech_dbfs - self.noise_dbfs


def _db(power: float | np.ndarray) -> float | np.ndarray:
    return np.maximum(10 * np.log10(np.maximum(power, 1e-30)), SILENCE_DBFS)


def frame_powers(samples: np.ndarray, rate: int, frame_s: float) -> np.ndarray:
    """Mean square per frame of ``frame_s``; edges are rounded per frame, so a frame grid made at
    another rate (the VAD's 512 samples at 16 kHz) stays aligned over minutes."""
    x = np.asarray(samples, dtype=np.float64)
    count = int(len(x) / (frame_s * rate))
    if count == 0:
        return np.array([float(np.mean(x ** 2))]) if len(x) else np.zeros(0)
    edges = np.round(np.arange(count + 1) * frame_s * rate).astype(np.int64)
    squares = np.concatenate([[0.0], np.cumsum(x ** 2)])
    return (squares[edges[1:]] - squares[edges[:-1]]) / np.maximum(np.diff(edges), 1)


def frame_levels_db(samples: np.ndarray, rate: int, frame_s: float) -> np.ndarray:
    return _db(frame_powers(samples, rate, frame_s))


def measure_clip(samples: np.ndarray, rate: int, speech: np.ndarray | None = None,
                 frame_s: float = 0.032) -> ClipQuality:
    """``speech``: one bool per frame of ``frame_s`` (the VAD's decision). Without it, frames more
    than 10 dB above the quietest tenth count as speech."""
    x = np.asarray(samples, dtype=np.float64)
    powers = frame_powers(x, rate, frame_s)
    if len(powers) == 0:
        return ClipQuality(SILENCE_DBFS, SILENCE_DBFS, SILENCE_DBFS, 0.0)
    quietest = float(np.mean(np.sort(powers)[: max(1, len(powers) // 10)]))
    if speech is None:
        mask = powers > quietest * 10
    else:
        mask = np.zeros(len(powers), dtype=bool)
        given = np.asarray(speech, dtype=bool)[: len(powers)]
        mask[: len(given)] = given
    quiet = powers[~mask]
    noise = float(np.median(quiet)) if len(quiet) >= MIN_NOISE_FRAMES else quietest
    loud = powers[mask] if mask.any() else powers
    return ClipQuality(
        speech_dbfs=float(_db(float(np.mean(loud)))),
        peak_dbfs=float(_db(float(np.max(np.abs(x))) ** 2)),
        noise_dbfs=float(_db(noise)),
        clipped_share=float(np.mean(np.abs(x) >= CLIP_LEVEL)),
    )


@dataclass(frozen=True, slots=True)
class PromptParams:
    min_s: float = 3.0
    max_s: float = 10.0
    """CosyVoice's prompts: too short and the voice is not caught; longer ones slow every reply."""
    best_min_s: float = 5.0
    best_max_s: float = 8.0
    """Within 3-10 s, the length scored best: enough of the voice, little extra prompt to encode."""
    min_snr_db: float = 15.0
    snr_cap_db: float = 45.0
    """SNR above this scores no better: the noise is already far below anything the voice copies."""
    min_speech_dbfs: float = -40.0
    max_speech_dbfs: float = -12.0
    """Sane loudness: below, 16-bit noise and the room come up with the gain; above, speech's peaks
    (15-20 dB over its RMS) must have been clipped or limited."""
    target_speech_dbfs: float = -22.0


@dataclass(frozen=True, slots=True)
class PromptScore:
    score: float
    """Higher is better: dB of SNR (capped), less half a point per dB away from the target
    loudness, less two points per second outside the best length, less 10 for a cut in speech."""
    problems: tuple[str, ...] = ()
    """Why the clip cannot be a prompt; empty when it can."""

    @property
    def eligible(self) -> bool:
        return not self.problems


def prompt_score(quality: ClipQuality, duration_s: float, transcript: str, *, cut_in_speech: bool = False,
                 params: PromptParams = PromptParams()) -> PromptScore:
    problems = []
    if not params.min_s <= duration_s <= params.max_s:
        problems.append(f"{duration_s:.1f} s is outside {params.min_s:g}-{params.max_s:g} s")
    if quality.clipped_share > 0:
        problems.append(f"clipped ({100 * quality.clipped_share:.2f} % of samples at full scale)")
    if quality.snr_db < params.min_snr_db:
        problems.append(f"SNR {quality.snr_db:.1f} dB is under {params.min_snr_db:g} dB")
    if not params.min_speech_dbfs <= quality.speech_dbfs <= params.max_speech_dbfs:
        problems.append(f"speech at {quality.speech_dbfs:.1f} dBFS is outside "
                        f"{params.min_speech_dbfs:g} to {params.max_speech_dbfs:g} dBFS")
    if not transcript.strip():
        problems.append("empty transcript")
    outside = max(params.best_min_s - duration_s, duration_s - params.best_max_s, 0.0)
    score = (min(quality.snr_db, params.snr_cap_db)
             - 0.5 * abs(quality.speech_dbfs - params.target_speech_dbfs)
             - 2.0 * outside
             - (10.0 if cut_in_speech else 0.0))
    return PromptScore(score=float(score), problems=tuple(problems))
