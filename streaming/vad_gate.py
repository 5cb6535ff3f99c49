"""Turns per-frame speech probabilities into speech start/stop events with pre-roll.

Hysteresis (a start threshold and a lower release threshold) plus minimum
durations keep clicks from starting a turn and short dips from ending one; the
pre-roll ring keeps the first syllable, which the VAD only recognises after it
has begun.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

import numpy as np


class VADState(enum.Enum):
    QUIET = "quiet"
    STARTING = "starting"
    SPEAKING = "speaking"
    STOPPING = "stopping"


@dataclass(frozen=True, slots=True)
class VADParams:
    threshold: float = 0.5
    release_threshold: float = 0.35
    start_ms: int = 96
    stop_ms: int = 500
    prefix_padding_ms: int = 300
    pause_ms: int = 0
    """Silence that reports a :class:`SpeechPaused` before the stop (0, or not below ``stop_ms``: never)."""


@dataclass(frozen=True, slots=True)
class SpeechOnset:
    """The first voiced frame after quiet: speech may be starting, not yet confirmed (``start_ms``).

    A barge-in pauses the answer here, long before the start is confirmed."""

    audio_ms: int


@dataclass(frozen=True, slots=True)
class OnsetWithdrawn:
    """The voiced run ended before ``start_ms``: a click or a cough, not a turn."""

    audio_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """``pause_ms`` of silence, not yet the stop: work on the speech so far may start, at a risk."""

    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """Speech again after a :class:`SpeechPaused`, before the stop: that work is stale."""

    audio_ms: int


VADEvent = SpeechOnset | OnsetWithdrawn | SpeechStarted | SpeechStopped | SpeechPaused | SpeechResumed


@dataclass(slots=True)
class VADUpdate:
    """What one frame produced: events, and audio that belongs to the current utterance."""

    events: list[VADEvent] = field(default_factory=list)
    speech_audio: list[np.ndarray] = field(default_factory=list)


class VADGate:
    """Synchronous state machine; the caller runs the model and passes probabilities in."""

    def __init__(self, *, params: VADParams, frame_ms: int) -> None:
        self.params = params
        self.frame_ms = frame_ms
        self.state = VADState.QUIET
        self.start_ms = params.start_ms
        """Speech needed to start; the session raises it while the assistant talks (barge-in)."""
        self._position_ms = 0
        self._run_ms = 0  # length of the current STARTING or SPEAKING run
        self._stop_run_ms = 0  # length of the silence inside STOPPING
        self._paused = False  # a SpeechPaused went out for the silence in progress
        self._pending: list[np.ndarray] = []  # frames of a start not yet confirmed
        self._preroll: deque[np.ndarray] = deque(maxlen=max(1, params.prefix_padding_ms // frame_ms))

    @property
    def position_ms(self) -> int:
        return self._position_ms

    @property
    def in_speech(self) -> bool:
        return self.state in (VADState.SPEAKING, VADState.STOPPING)

    def speech_ms(self) -> int:
        """Duration of the current speech run, without the silence after it (0 when quiet)."""
        return self._run_ms if self.in_speech else 0

    def push(self, frame: np.ndarray, probability: float) -> VADUpdate:
        update = VADUpdate()
        self._position_ms += self.frame_ms
        voiced = probability >= self.params.threshold
        unvoiced = probability < self.params.release_threshold
        match self.state:
            case VADState.QUIET:
                if voiced:
                    self.state, self._run_ms, self._pending = VADState.STARTING, self.frame_ms, [frame]
                    update.events.append(SpeechOnset(audio_ms=self._position_ms - self.frame_ms))
                    self._confirm_start_if_long_enough(update)
                else:
                    self._preroll.append(frame)
            case VADState.STARTING:
                if unvoiced:
                    self._preroll.extend(self._pending)
                    self._pending, self.state = [], VADState.QUIET
                    self._preroll.append(frame)
                    update.events.append(OnsetWithdrawn(audio_ms=self._position_ms))
                else:
                    self._pending.append(frame)
                    self._run_ms += self.frame_ms
                    self._confirm_start_if_long_enough(update)
            case VADState.SPEAKING:
                update.speech_audio.append(frame)
                if unvoiced:
                    self.state, self._stop_run_ms = VADState.STOPPING, self.frame_ms
                    self._check_stop(update)
                else:
                    self._run_ms += self.frame_ms
            case VADState.STOPPING:
                update.speech_audio.append(frame)
                if voiced:
                    self.state = VADState.SPEAKING
                    self._run_ms += self._stop_run_ms + self.frame_ms
                    if self._paused:
                        self._paused = False
                        update.events.append(SpeechResumed(audio_ms=self._position_ms - self.frame_ms))
                else:
                    self._stop_run_ms += self.frame_ms
                    self._check_stop(update)
        return update

    def _confirm_start_if_long_enough(self, update: VADUpdate) -> None:
        if self._run_ms < self.start_ms:
            return
        start_ms = self._position_ms - self._run_ms - len(self._preroll) * self.frame_ms
        update.events.append(SpeechStarted(audio_start_ms=max(0, start_ms)))
        update.speech_audio.extend(self._preroll)
        update.speech_audio.extend(self._pending)
        self._preroll.clear()
        self._pending = []
        self.state = VADState.SPEAKING

    def _check_stop(self, update: VADUpdate) -> None:
        if self._stop_run_ms >= self.params.stop_ms:
            update.events.append(SpeechStopped(audio_end_ms=self._position_ms - self._stop_run_ms))
            self.state, self._run_ms, self._paused = VADState.QUIET, 0, False
        elif not self._paused and 0 < self.params.pause_ms <= self._stop_run_ms:
            self._paused = True
            update.events.append(SpeechPaused(audio_end_ms=self._position_ms - self._stop_run_ms))

    def reset(self) -> None:
        self.state = VADState.QUIET
        self._run_ms = 0
        self._paused = False
        self._pending = []
        self._preroll.clear()
