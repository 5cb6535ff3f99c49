"""The input side of a session: audio in, VAD gate, end of turn, committed utterances out.

Audio of one ``append`` is resampled and framed, its VAD probabilities computed
in one executor call, and fed through the synchronous :class:`VADGate`. The turn
end (silence plus the semantic model) runs as an owned task, cancelled when the
user speaks again. Upward calls go through :class:`InputHooks`, so this module
never touches the WebSocket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from models.interfaces import MODEL_SAMPLE_RATE_HZ
from server.engines import Engines
from server.session_settings import TurnDetectionSettings
from server.stage_executor import StageTimeout, run_with_deadline
from streaming.audio_frames import FrameSplitter, StreamResampler
from streaming.turn_policy import TurnDecision, TurnPolicy
from streaming.vad_gate import (OnsetWithdrawn, SpeechOnset, SpeechPaused, SpeechResumed, SpeechStarted, SpeechStopped,
                                VADGate, VADParams)

log = logging.getLogger(__name__)

SMART_TURN_MIN_AUDIO_SECS = 0.3


@dataclass
class Utterance:
    """A finished user turn: its audio (16 kHz float32) and when its end was detected."""

    audio: np.ndarray
    speech_end_at: float | None
    turn_end_at: float
    end_reason: str


@dataclass(eq=False)
class _Pause:
    samples: int
    stopped_at: float
    finished_text: asyncio.Event = field(default_factory=asyncio.Event)
    unfinished_text: asyncio.Future[bool] | None = None
    """Set when the words of the turn so far will be judged (:meth:`AudioInput.expect_text_verdict`):
    True when they read unfinished."""


class InputHooks(Protocol):
    def on_speech_onset(self) -> None:
        """The first voiced frame after quiet: speech may be starting (not yet ``on_speech_started``).

        Synchronous: it must only flag (pause an answer), never wait."""
        ...

    def on_onset_withdrawn(self) -> None:
        """The voiced run ended before it became speech (a click, a cough). Synchronous."""
        ...

    async def on_speech_started(self, audio_start_ms: int) -> None: ...

    def on_speech_resumed(self) -> None:
        """Speech again in the silence after ``on_speech_stopped``, before the turn ended: the same
        turn goes on. Synchronous."""
        ...

    async def on_speech_stopped(self, audio_end_ms: int, audio: np.ndarray) -> None:
        """``audio`` is the turn so far: a recogniser may start on it before the turn end is decided."""
        ...

    def on_speech_paused(self, audio: np.ndarray) -> None:
        """A shorter silence than the stop's (``early_asr_pause_ms``): the turn so far, for a
        recogniser with nothing else to do. Synchronous."""
        ...

    def on_pause_resumed(self) -> None:
        """Speech again after ``on_speech_paused``, before the stop. Synchronous."""
        ...

    async def on_utterance(self, utterance: Utterance) -> None: ...

    def on_turn_audio(self, audio: np.ndarray) -> None:
        """16 kHz audio just added to the turn (after ``on_speech_started``), for live previews.

        Synchronous: it must only hand the audio on, never wait.
        """
        ...


@dataclass
class _TurnBuffer:
    chunks: list[np.ndarray] = field(default_factory=list)
    samples: int = 0

    def add(self, audio: np.ndarray) -> None:
        self.chunks.append(audio)
        self.samples += len(audio)

    def audio(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)

    def clear(self) -> None:
        self.chunks, self.samples = [], 0


class AudioInput:
    def __init__(self, *, engines: Engines, hooks: InputHooks, input_rate_hz: int,
                 turn_detection: TurnDetectionSettings | None, vad_start_ms: int, max_turn_secs: int,
                 vad_timeout_s: float = 5.0, turn_model_timeout_s: float = 2.0, pause_ms: int = 0) -> None:
        """``pause_ms``: silence that calls ``on_speech_paused`` (0: never; see ``VADParams.pause_ms``)."""
        self._engines = engines
        self._hooks = hooks
        self._vad_stream = engines.vad.open_stream()
        self._frames = FrameSplitter(frame_samples=self._vad_stream.frame_samples)
        self._frame_ms = self._vad_stream.frame_samples * 1000 // MODEL_SAMPLE_RATE_HZ
        self._resampler = StreamResampler(in_rate=input_rate_hz, out_rate=MODEL_SAMPLE_RATE_HZ)
        self._vad_start_ms = vad_start_ms
        self._pause_ms = pause_ms
        self._vad_timeout_s = vad_timeout_s
        self._turn_model_timeout_s = turn_model_timeout_s
        self._max_turn_samples = max_turn_secs * MODEL_SAMPLE_RATE_HZ
        self._turn = _TurnBuffer()
        self._turn_end_task: asyncio.Task[None] | None = None
        self._speech_end_at: float | None = None
        self._pause: _Pause | None = None
        """The silence after the last VAD stop: its audio length and whether its transcript reads finished."""
        self.received_ms = 0.0
        self.configure(input_rate_hz=input_rate_hz, turn_detection=turn_detection)

    # -- configuration ----------------------------------------------------------------
    def configure(self, *, input_rate_hz: int, turn_detection: TurnDetectionSettings | None) -> None:
        if input_rate_hz != self._resampler.in_rate:
            self._resampler = StreamResampler(in_rate=input_rate_hz, out_rate=MODEL_SAMPLE_RATE_HZ)
        self.turn_detection = turn_detection
        self._policy: TurnPolicy | None = turn_detection.policy() if turn_detection else None
        if turn_detection is not None:
            params = VADParams(
                threshold=turn_detection.threshold,
                release_threshold=max(0.05, turn_detection.threshold - 0.15),
                start_ms=self._vad_start_ms,
                stop_ms=self._policy.vad_stop_ms(turn_detection.silence_duration_ms),
                prefix_padding_ms=turn_detection.prefix_padding_ms,
                pause_ms=self._pause_ms,
            )
            gate = VADGate(params=params, frame_ms=self._frame_ms)
            if getattr(self, "_gate", None) is not None:
                gate.start_ms = self._gate.start_ms
            self._gate = gate
        else:
            self._gate = None

    def set_interrupt_guard(self, min_speech_ms: int | None) -> None:
        """While the assistant talks, speech must last longer before it counts (barge-in)."""
        if self._gate is not None:
            self._gate.start_ms = max(self._vad_start_ms, min_speech_ms or 0)

    @property
    def in_speech(self) -> bool:
        return self._gate is not None and self._gate.in_speech

    @property
    def speech_ms(self) -> int:
        """Length of the speech run in progress (0 when quiet or in the silence after it)."""
        return self._gate.speech_ms() if self._gate is not None else 0

    @property
    def buffered_ms(self) -> float:
        return self._turn.samples * 1000 / MODEL_SAMPLE_RATE_HZ

    # -- audio ------------------------------------------------------------------------
    async def push(self, samples: np.ndarray, *, input_rate_hz: int) -> None:
        """Float32 samples at the session's input rate, as the client sent them."""
        self.received_ms += len(samples) * 1000 / input_rate_hz
        audio16 = self._resampler.push(samples)
        if self._gate is None:  # push-to-talk: everything goes into the buffer
            self._turn.add(audio16)
            return
        frames = self._frames.push(audio16)
        if not frames:
            return
        probs = await run_with_deadline(  # StageTimeout reaches the session: an error event, audio dropped
            self._engines.executors.vad, lambda: [self._vad_stream.speech_probability(f) for f in frames],
            timeout_s=self._vad_timeout_s)
        turn_audio: list[np.ndarray] = []
        for frame, prob in zip(frames, probs):
            update = self._gate.push(frame, prob)
            for audio in update.speech_audio:
                self._turn.add(audio)
            turn_audio.extend(update.speech_audio)
            for event in update.events:
                if isinstance(event, SpeechOnset):
                    self._hooks.on_speech_onset()
                elif isinstance(event, OnsetWithdrawn):
                    self._hooks.on_onset_withdrawn()
                elif isinstance(event, SpeechStarted):
                    await self._speech_started(event)
                elif isinstance(event, SpeechStopped):
                    await self._speech_stopped(event)
                elif isinstance(event, SpeechPaused):
                    self._hooks.on_speech_paused(self._turn.audio())
                elif isinstance(event, SpeechResumed):
                    self._hooks.on_pause_resumed()
        if turn_audio:
            self._hooks.on_turn_audio(np.concatenate(turn_audio))
        if self._gate.in_speech and self._turn.samples >= self._max_turn_samples:
            log.info("turn reached %d s; ending it", self._max_turn_samples // MODEL_SAMPLE_RATE_HZ)
            self._gate.reset()
            await self._finish_turn(reason="max_length")

    async def _speech_started(self, event: SpeechStarted) -> None:
        resumed = self._cancel_turn_end()
        self._speech_end_at = None
        if resumed:
            self._hooks.on_speech_resumed()
        else:
            await self._hooks.on_speech_started(event.audio_start_ms)

    async def _speech_stopped(self, event: SpeechStopped) -> None:
        stop_ms = self._gate.params.stop_ms if self._gate else 0
        self._speech_end_at = time.monotonic() - stop_ms / 1000
        self._pause = _Pause(samples=self._turn.samples, stopped_at=time.monotonic())
        await self._hooks.on_speech_stopped(event.audio_end_ms, self._turn.audio())
        self._turn_end_task = asyncio.create_task(self._decide_turn_end(), name="turn-end")

    def _cancel_turn_end(self) -> bool:
        task, self._turn_end_task = self._turn_end_task, None
        if task is not None and not task.done():
            task.cancel()
            return True
        return False

    async def _decide_turn_end(self) -> None:
        assert self._policy is not None
        probability = None
        if self._policy.needs_model and self._engines.turn is not None:
            audio = self._turn.audio()
            if len(audio) >= SMART_TURN_MIN_AUDIO_SECS * MODEL_SAMPLE_RATE_HZ:
                try:
                    probability = await run_with_deadline(
                        self._engines.executors.turn, self._engines.turn.end_of_turn_probability, audio,
                        timeout_s=self._turn_model_timeout_s)
                except StageTimeout:
                    log.warning("the turn model did not answer in %g s; the silence rule decides",
                                self._turn_model_timeout_s)
                except Exception:  # noqa: BLE001 (a broken turn model must not lose the user's turn)
                    log.exception("the turn model failed; the silence rule decides")
        decision = self._policy.decide(probability)
        log.debug("turn decision p=%s wait=%d", probability, decision.wait_ms)
        if decision.ends_now and decision.reason == "semantic":
            decision = await self._words_agree(decision)
        reason = await self._wait_out(decision) if decision.wait_ms else decision.reason
        self._turn_end_task = None
        await self._finish_turn(reason=reason)

    def expect_text_verdict(self) -> None:
        """The words of the turn so far will be judged (:meth:`note_text_verdict`): a turn end the
        audio model is sure of waits for them, and they can keep the turn open."""
        if self._pause is not None and self._pause.unfinished_text is None:
            self._pause.unfinished_text = asyncio.get_running_loop().create_future()

    def awaits_text_verdict(self, samples: int) -> bool:
        pause = self._pause
        return (pause is not None and pause.samples == samples and pause.unfinished_text is not None
                and not pause.unfinished_text.done())

    def note_text_verdict(self, samples: int, *, unfinished: bool) -> None:
        pause = self._pause
        if (pause is not None and pause.samples == samples and pause.unfinished_text is not None
                and not pause.unfinished_text.done()):
            pause.unfinished_text.set_result(unfinished)

    async def _words_agree(self, decision: TurnDecision) -> TurnDecision:
        """The audio model says the turn is over; when the words will be judged, they must not read
        unfinished ("我想问", "甚至出现交"): then the turn waits out the longest silence instead. The
        wait for the verdict counts against that silence, so a verdict that never comes costs no more."""
        assert self._policy is not None
        pause = self._pause
        if pause is None or pause.unfinished_text is None:
            return decision
        longest_ms = self._policy.decide(None).wait_ms  # from the VAD stop

        def left_ms() -> float:
            return longest_ms - (time.monotonic() - pause.stopped_at) * 1000

        try:
            unfinished = await asyncio.wait_for(asyncio.shield(pause.unfinished_text), max(0.0, left_ms()) / 1000)
        except asyncio.TimeoutError:
            return TurnDecision(wait_ms=0, reason="max_silence")
        if not unfinished:
            return decision
        log.info("the audio model heard a finished turn, the words read unfinished: waiting")
        return TurnDecision(wait_ms=max(1, int(left_ms())), reason="max_silence")

    def note_transcript(self, samples: int, *, finished: bool) -> None:
        """The early transcript of the turn so far (``samples`` long) reads finished, or not: an
        unsure turn end waits less once its words say the user is done (:mod:`streaming.text_turn_end`)."""
        pause = self._pause
        if finished and pause is not None and pause.samples == samples:
            pause.finished_text.set()

    async def _wait_out(self, decision: TurnDecision) -> str:
        """The silence of an unsure decision, cut short when this pause's transcript reads finished."""
        assert self._policy is not None
        shorter_ms, pause = self._policy.wait_after_finished_text_ms(), self._pause
        if shorter_ms is None or pause is None:
            await asyncio.sleep(decision.wait_ms / 1000)
            return decision.reason
        try:
            await asyncio.wait_for(pause.finished_text.wait(), decision.wait_ms / 1000)
        except asyncio.TimeoutError:
            return decision.reason
        if (left := pause.stopped_at + shorter_ms / 1000 - time.monotonic()) > 0:
            await asyncio.sleep(left)
        return "finished_text"

    async def _finish_turn(self, *, reason: str) -> None:
        self._pause = None
        audio = self._turn.audio()
        self._turn.clear()
        utterance = Utterance(audio=audio, speech_end_at=self._speech_end_at, turn_end_at=time.monotonic(),
                              end_reason=reason)
        self._speech_end_at = None
        await self._hooks.on_utterance(utterance)

    # -- push-to-talk -----------------------------------------------------------------
    async def commit(self) -> Utterance:
        """Client commit: the buffer (and any speech in progress) becomes an utterance now."""
        self._cancel_turn_end()
        if self._gate is not None:
            self._gate.reset()
        audio = self._turn.audio()
        self._turn.clear()
        return Utterance(audio=audio, speech_end_at=None, turn_end_at=time.monotonic(), end_reason="commit")

    def clear(self) -> None:
        self._cancel_turn_end()
        self._turn.clear()
        self._frames.reset()
        if self._gate is not None:
            self._gate.reset()

    async def aclose(self) -> None:
        task, self._turn_end_task = self._turn_end_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
