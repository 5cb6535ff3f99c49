"""False interruptions: noise and backchannels ("uh-huh", "嗯") said over an answer, and whether the
answer survives them.

On some turns the probe plays, while the answer is playing, either a 0.5-1.5 s slice of a noise
recording or a short spoken backchannel. Backchannels are synthesized once per run with the
embedded voices (Piper for English, Kokoro for Mandarin), each at normal speed and slowed down
(longer than 0.4 s, the case a length rule alone lets through), and cached as WAVs.

An answer is **lost** when, after the false interruption, the response ends ``cancelled``, its
audio transcript at ``response.done`` is shorter than the text it had streamed, or a new response
starts instead of the old one finishing. It is **resumed** when it was not lost but its audio
paused (the client's queue ran dry) after the interruption began; the pause is the delay added to
the answer's end.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from benchmarks.latency_stats import summarize

log = logging.getLogger(__name__)

BACKCHANNELS: dict[str, tuple[str, ...]] = {
    "en": ("uh-huh", "yeah", "right", "okay"),
    "zh": ("嗯", "对", "好的"),
}
BACKCHANNEL_SPEEDS = (1.0, 0.6)
"""Normal speed, and slowed so that even "嗯" lasts longer than 0.4 s."""
NOISE_SLICE_S = (0.5, 1.5)
NOISE_RMS_DBFS = -24.0
"""Noise is played at a level a microphone near a door or a keyboard would pick up."""
BACKCHANNEL_RMS_DBFS = -20.0


@dataclass(frozen=True)
class OverlayClip:
    """Audio said over an answer: a noise slice or a backchannel; mono float32 at ``rate``."""

    kind: str  # "noise" | "backchannel"
    name: str
    language: str
    audio: np.ndarray
    rate: int

    @property
    def seconds(self) -> float:
        return round(len(self.audio) / self.rate, 3)

    def pcm16(self, rate: int) -> np.ndarray:
        audio = self.audio if rate == self.rate else soxr.resample(self.audio, self.rate, rate)
        return np.clip(audio * 32768, -32768, 32767).astype(np.int16)


def _at_level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return audio if rms == 0 else (audio * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def noise_slice(files: list[Path], rng: random.Random) -> OverlayClip:
    """A random 0.5-1.5 s slice of one of ``files``, at a fixed loudness."""
    path = rng.choice(files)
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    length = min(len(audio), int(rng.uniform(*NOISE_SLICE_S) * rate))
    start = rng.randrange(0, max(1, len(audio) - length + 1))
    clip = _at_level(audio[start : start + length], NOISE_RMS_DBFS)
    return OverlayClip("noise", f"{path.stem}@{start / rate:.1f}s", "", clip, rate)


def _cache_name(language: str, text: str, speed: float) -> str:
    return f"{language}_{hashlib.sha1(text.encode()).hexdigest()[:8]}_{speed:g}.wav"


def _synthesize(language: str, model_dir: Path):
    """The embedded voice for ``language``: a function text, speed → (int16 audio, rate)."""
    if language == "zh":
        from models.kokoro_tts import load_embedded_kokoro

        voice = load_embedded_kokoro(model_dir)
    else:
        from models import embedded_store
        from models.piper_tts import PiperSynthesizer

        voice = PiperSynthesizer(model_path=embedded_store.ensure_model(embedded_store.PIPER_JOE, model_dir)
                                 / "en_US-joe-medium.onnx")

    def say(text: str, speed: float) -> tuple[np.ndarray, int]:
        return np.concatenate(list(voice.synthesize(text, speed=speed))), voice.sample_rate

    return say


def backchannel_clips(cache_dir: Path, *, languages: tuple[str, ...], model_dir: Path = Path("var/models")
                      ) -> tuple[list[OverlayClip], list[str]]:
    """Every backchannel of ``languages`` at every speed, synthesized into ``cache_dir`` the first
    time; returns the clips and a note for each language whose voice could not be loaded."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    clips, problems = [], []
    for language in languages:
        try:
            clips += _language_clips(cache_dir, language, model_dir)
        except Exception as exc:  # a missing model or package: report it, play noise only
            problems.append(f"{language}: {type(exc).__name__}: {exc}")
    return clips, problems


def _language_clips(cache_dir: Path, language: str, model_dir: Path) -> list[OverlayClip]:
    say = None
    clips = []
    for text in BACKCHANNELS.get(language, ()):
        for speed in BACKCHANNEL_SPEEDS:
            path = cache_dir / _cache_name(language, text, speed)
            if not path.exists():
                say = say or _synthesize(language, model_dir)
                pcm, rate = say(text, speed)
                sf.write(path, pcm, rate, subtype="PCM_16")
            audio, rate = sf.read(path, dtype="float32")
            clips.append(OverlayClip("backchannel", f"{text}@{speed:g}x", language,
                                     _at_level(audio, BACKCHANNEL_RMS_DBFS), rate))
    return clips


def false_interrupt_turns(count: int, *, every: int, barge_in_every: int) -> list[int]:
    """Turn indexes that get a false interruption: every ``every``-th turn, half a period away from
    the real barge-ins (with both at 4: barge-ins on turns 4, 8, ..., false ones on 2, 6, ...)."""
    if every <= 0:
        return []
    barge = {i for i in range(count) if barge_in_every and (i + 1) % barge_in_every == 0}
    return [i for i in range(count) if (i + 1 + every // 2) % every == 0 and i not in barge]


def pick_clip(k: int, *, language: str, session: int, turn: int, backchannels: list[OverlayClip],
              noise_files: list[Path]) -> OverlayClip | None:
    """The ``k``-th false interruption of a session: backchannels and noise alternate (a backchannel
    first, in the turn's language when there is one); None when there is nothing to play."""
    rng = random.Random(1_000 * session + turn)
    own = [c for c in backchannels if c.language == language] or backchannels
    if own and (k % 2 == 0 or not noise_files):
        return own[(session + k // 2) % len(own)]
    return noise_slice(noise_files, rng) if noise_files else None


@dataclass
class FalseInterruptionRecord:
    """One clip said over an answer, and what became of the answer."""

    concurrency: int
    session: int
    turn: int
    recording: str
    kind: str
    clip: str
    clip_secs: float
    offset_ms: float
    status: str = "not_played"
    """played | answer_finished_first (the answer ended before the clip was due) | no_answer"""
    answer_status: str | None = None
    answer_chars: int = 0
    done_transcript_chars: int | None = None
    new_responses: int = 0
    """Responses that started after the clip began and before the answer ended."""
    answered_clip: bool = False
    """A response started after the answer had finished: the server answered the clip itself."""
    heard: bool = False
    """The server sent ``speech_started`` while the clip played."""
    heard_as: str = ""
    """The transcript of anything the server committed from the clip."""
    lost: bool | None = None
    reason: str = ""
    resumed: bool | None = None
    extra_delay_ms: float | None = None


def classify_answer(*, status: str | None, streamed_text: str, done_transcript: str | None,
                    new_responses: int) -> tuple[bool, str]:
    """Whether the answer was lost to the false interruption, and why ('' when it was not)."""
    if status == "cancelled":
        return True, "cancelled"
    if new_responses:
        return True, "new_response"
    if status not in ("completed", None):
        return True, f"status_{status}"
    if done_transcript is not None and len(done_transcript.strip()) < len(streamed_text.strip()):
        return True, "truncated"
    return False, ""


def summarize_false_interruptions(records: list[dict[str, Any]]) -> dict[str, Any]:
    played = [r for r in records if r["status"] == "played"]
    by_kind = {kind: sum(1 for r in played if r["kind"] == kind) for kind in ("noise", "backchannel")}
    long_backchannels = [r for r in played if r["kind"] == "backchannel" and r["clip_secs"] > 0.4]
    delays = summarize(r["extra_delay_ms"] for r in played if r.get("resumed"))
    return {
        "scheduled": len(records),
        "played": len(played),
        "by_kind": by_kind,
        "backchannels_over_0_4_s": len(long_backchannels),
        "heard": sum(1 for r in played if r["heard"]),
        "lost": sum(1 for r in played if r["lost"]),
        "lost_by_kind": {kind: sum(1 for r in played if r["lost"] and r["kind"] == kind) for kind in by_kind},
        "lost_over_0_4_s": sum(1 for r in long_backchannels if r["lost"]),
        "lost_reasons": {why: sum(1 for r in played if r["reason"] == why)
                         for why in {r["reason"] for r in played if r["lost"]}},
        "resumed": sum(1 for r in played if r.get("resumed")),
        "answered_clip": sum(1 for r in played if r.get("answered_clip")),
        "not_played": {s: sum(1 for r in records if r["status"] == s)
                       for s in {r["status"] for r in records} - {"played"}},
        "extra_delay_ms": delays.as_dict() if delays else None,
    }
