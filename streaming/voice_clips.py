"""Where to cut a long recording into 2-10 s clips for a voice: at its pauses, never inside a word if avoidable.

VITS-family fine-tuning (LJSpeech layout) wants short clips that each hold whole phrases, and a
CosyVoice speaker prompt wants one clean 3-10 s stretch. The plan here works on the VAD's view of
the recording alone (speech runs and the pauses between them), so it is engine-free and testable
on scripted probabilities:

1. Speech runs: hysteresis on the per-frame probabilities (as :mod:`streaming.vad_gate`), gaps
   shorter than ``min_pause_s`` bridged (a stop consonant, not a pause), blips shorter than
   ``min_speech_s`` dropped (a click).
2. A pause of ``split_pause_s`` or more (between sentences) always ends a clip.
3. A piece longer than ``max_s`` is cut at its longest pause that leaves both sides at least
   ``min_s``, again and again; with no such pause (one long breathless run) at its quietest frame.
4. A piece shorter than ``min_s`` joins the neighbour across the shorter pause, when that pause is
   at most ``merge_pause_s`` and the two fit in ``max_s``; otherwise it is dropped, with the reason.

Lengths count the padding: each clip keeps up to ``pad_s`` of silence at both ends (half a pause at
most, so neighbouring clips never share audio), and a cut inside speech gets none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class ClipParams:
    min_s: float = 2.0
    max_s: float = 10.0
    pad_s: float = 0.2
    """Silence kept at each end: the VAD marks onsets a frame or two late, and a trainer wants the
    first consonant whole."""
    threshold: float = 0.5
    release_threshold: float = 0.35
    min_pause_s: float = 0.15
    """A shorter gap is a closure inside a word or phrase: no place to cut, so it is bridged."""
    min_speech_s: float = 0.1
    """A shorter voiced blip is a click or a breath, not speech."""
    split_pause_s: float = 0.5
    """A pause this long ends a sentence: clips end there even when they would fit more."""
    merge_pause_s: float = 1.2
    """A short piece joins a neighbour only across a pause up to this long; a longer silence inside a
    training clip teaches the voice to stop mid-sentence."""


@dataclass(frozen=True, slots=True)
class Span:
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class Clip:
    start_s: float
    """Padded start: where the clip's audio begins."""
    end_s: float
    speech: tuple[Span, ...]
    """The speech runs inside, in order."""
    cut_in_speech: bool = False
    """An end of the clip is inside a run (a run longer than ``max_s`` cut at its quietest frame)."""

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def speech_s(self) -> float:
        return sum(run.duration_s for run in self.speech)


@dataclass(frozen=True, slots=True)
class DroppedPiece:
    start_s: float
    end_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class ClipPlan:
    clips: list[Clip] = field(default_factory=list)
    dropped: list[DroppedPiece] = field(default_factory=list)


def speech_runs(probabilities: Sequence[float] | np.ndarray, frame_s: float,
                params: ClipParams = ClipParams()) -> list[Span]:
    """The recording's speech as runs of frames, in seconds."""
    probs = np.asarray(probabilities, dtype=np.float64)
    voiced = np.zeros(len(probs), dtype=bool)
    speaking = False
    for i, p in enumerate(probs):
        speaking = p >= (params.release_threshold if speaking else params.threshold)
        voiced[i] = speaking
    runs: list[list[int]] = []  # [first frame, end frame)
    for i in np.flatnonzero(voiced):
        if runs and i == runs[-1][1]:
            runs[-1][1] = i + 1
        else:
            runs.append([int(i), int(i) + 1])
    bridged: list[list[int]] = []
    for run in runs:
        if bridged and (run[0] - bridged[-1][1]) * frame_s < params.min_pause_s:
            bridged[-1][1] = run[1]
        else:
            bridged.append(run)
    return [Span(a * frame_s, b * frame_s) for a, b in bridged if (b - a) * frame_s >= params.min_speech_s]


@dataclass(frozen=True, slots=True)
class _Piece:
    """Consecutive runs that may become one clip, with the silence it may take as padding on each
    side (up to the recording's edge, or half the pause to the next run; 0 at a cut in speech)."""

    runs: tuple[Span, ...]
    room_before: float
    room_after: float
    cut_start: bool = False
    cut_end: bool = False

    def length(self, pad_s: float) -> float:
        return (self.runs[-1].end_s - self.runs[0].start_s
                + min(pad_s, self.room_before) + min(pad_s, self.room_after))

    def join(self, other: _Piece) -> _Piece:
        return _Piece(self.runs + other.runs, self.room_before, other.room_after, self.cut_start, other.cut_end)


def plan_clips(runs: Sequence[Span], duration_s: float, params: ClipParams = ClipParams(), *,
               quietness: Sequence[float] | np.ndarray | None = None, frame_s: float = 0.032) -> ClipPlan:
    """Clips of ``min_s``-``max_s`` (padding included) over the speech ``runs`` of a recording of
    ``duration_s``. ``quietness`` (per frame of ``frame_s``, lower is quieter: a level in dB) says
    where to cut a run longer than ``max_s``; without it such a run is cut in its middle."""
    runs = sorted(runs, key=lambda r: r.start_s)
    if not runs:
        return ClipPlan()
    level = None if quietness is None else _smoothed(np.asarray(quietness, dtype=np.float64))
    pieces: list[_Piece] = []
    for group in _sentences(runs, duration_s, params):
        pieces += _split_long(group, params, level, frame_s)
    return _merge_short(pieces, params)


def plan_from_probabilities(probabilities: Sequence[float] | np.ndarray, frame_s: float,
                            params: ClipParams = ClipParams(), *,
                            levels_db: Sequence[float] | np.ndarray | None = None) -> ClipPlan:
    """:func:`speech_runs` then :func:`plan_clips`, cutting long runs at the quietest frame by
    ``levels_db`` (the frames' loudness), or by the speech probability when no levels are given."""
    runs = speech_runs(probabilities, frame_s, params)
    quiet = levels_db if levels_db is not None else probabilities
    return plan_clips(runs, len(probabilities) * frame_s, params, quietness=quiet, frame_s=frame_s)


def _smoothed(level: np.ndarray) -> np.ndarray:
    """Three-frame mean: the quietest single frame may be a plosive's closure mid-word; the quietest
    ~100 ms is more likely a gap between words."""
    if len(level) < 3:
        return level
    padded = np.concatenate([level[:1], level, level[-1:]])
    return (padded[:-2] + padded[1:-1] + padded[2:]) / 3


def _sentences(runs: list[Span], duration_s: float, params: ClipParams) -> list[_Piece]:
    groups: list[list[Span]] = [[runs[0]]]
    for prev, run in zip(runs, runs[1:]):
        if run.start_s - prev.end_s >= params.split_pause_s:
            groups.append([run])
        else:
            groups[-1].append(run)
    pieces = []
    for i, group in enumerate(groups):
        before = group[0].start_s if i == 0 else (group[0].start_s - groups[i - 1][-1].end_s) / 2
        after = (duration_s - group[-1].end_s if i == len(groups) - 1
                 else (groups[i + 1][0].start_s - group[-1].end_s) / 2)
        pieces.append(_Piece(tuple(group), max(0.0, before), max(0.0, after)))
    return pieces


def _split_long(piece: _Piece, params: ClipParams, level: np.ndarray | None, frame_s: float) -> list[_Piece]:
    if piece.length(params.pad_s) <= params.max_s:
        return [piece]
    halves = _cut_at_pause(piece, params) or _cut_in_speech(piece, params, level, frame_s)
    if halves is None:  # only when max_s < 2 * min_s: keep it whole rather than loop
        return [piece]
    return [*_split_long(halves[0], params, level, frame_s), *_split_long(halves[1], params, level, frame_s)]


def _cut_at_pause(piece: _Piece, params: ClipParams) -> tuple[_Piece, _Piece] | None:
    best, best_key = None, None
    for k in range(len(piece.runs) - 1):
        gap = piece.runs[k + 1].start_s - piece.runs[k].end_s
        left = _Piece(piece.runs[: k + 1], piece.room_before, gap / 2, piece.cut_start, False)
        right = _Piece(piece.runs[k + 1:], gap / 2, piece.room_after, False, piece.cut_end)
        a, b = left.length(params.pad_s), right.length(params.pad_s)
        if a < params.min_s or b < params.min_s:
            continue
        key = (gap, -abs(a - b))  # the longest pause; of equals, the most even halves
        if best_key is None or key > best_key:
            best, best_key = (left, right), key
    return best


def _cut_in_speech(piece: _Piece, params: ClipParams, level: np.ndarray | None,
                   frame_s: float) -> tuple[_Piece, _Piece] | None:
    best, best_key = None, None
    for k, run in enumerate(piece.runs):
        first, last = int(np.ceil(run.start_s / frame_s)) + 1, int(run.end_s / frame_s) - 1
        for f in range(first, last):
            t = (f + 0.5) * frame_s
            left = _Piece((*piece.runs[:k], Span(run.start_s, t)), piece.room_before, 0.0, piece.cut_start, True)
            right = _Piece((Span(t, run.end_s), *piece.runs[k + 1:]), 0.0, piece.room_after, True, piece.cut_end)
            a, b = left.length(params.pad_s), right.length(params.pad_s)
            if a < params.min_s or b < params.min_s:
                continue
            quiet = level[f] if level is not None and f < len(level) else 0.0
            key = (-quiet, -abs(a - b))  # the quietest frame; of equals, the most even halves
            if best_key is None or key > best_key:
                best, best_key = (left, right), key
    return best


def _merge_short(pieces: list[_Piece], params: ClipParams) -> ClipPlan:
    """Shortest first, each short piece joins the neighbour across the shorter pause, or is dropped.
    A dropped piece stays in the list as a barrier: a join never spans its speech."""
    alive: list[_Piece | None] = list(pieces)
    dropped: list[tuple[_Piece, str]] = []
    while True:
        short = [(p.length(params.pad_s), i) for i, p in enumerate(alive)
                 if p is not None and p.length(params.pad_s) < params.min_s]
        if not short:
            break
        length, i = min(short)
        piece = alive[i]
        options = []
        for j in (i - 1, i + 1):
            other = alive[j] if 0 <= j < len(alive) else None
            if other is None:
                continue
            first, second = (other, piece) if j < i else (piece, other)
            gap = second.runs[0].start_s - first.runs[-1].end_s
            joined = first.join(second)
            if gap <= params.merge_pause_s and joined.length(params.pad_s) <= params.max_s:
                options.append((gap, joined.length(params.pad_s), j, joined))
        if options:
            _, _, j, joined = min(options, key=lambda o: o[:2])
            alive[min(i, j)] = joined
            del alive[max(i, j)]
        else:
            dropped.append((piece, f"{length:.1f} s, shorter than {params.min_s:g} s, and no neighbour across a "
                                   f"pause of at most {params.merge_pause_s:g} s with room to join it "
                                   f"within {params.max_s:g} s"))
            alive[i] = None
    clips = [_clip(p, params) for p in alive if p is not None]
    gone = [DroppedPiece(*_bounds(p, params), reason) for p, reason in dropped]
    return ClipPlan(clips=clips, dropped=sorted(gone, key=lambda d: d.start_s))


def _bounds(piece: _Piece, params: ClipParams) -> tuple[float, float]:
    return (piece.runs[0].start_s - min(params.pad_s, piece.room_before),
            piece.runs[-1].end_s + min(params.pad_s, piece.room_after))


def _clip(piece: _Piece, params: ClipParams) -> Clip:
    start, end = _bounds(piece, params)
    return Clip(start, end, piece.runs, cut_in_speech=piece.cut_start or piece.cut_end)
