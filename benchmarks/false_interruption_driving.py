"""Saying noise or a backchannel over an answer, and judging afterwards whether the answer survived.

A base class of :class:`benchmarks.realtime_probe.SessionProbe`, which owns the state and the
turn-driving methods used here (``_follow_continuations``, ``_listen``); kept apart so the probe's
event tracking and the false-interruption protocol each read on their own. The verdict's
arithmetic is in :mod:`benchmarks.false_interruptions`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks.false_interruptions import FalseInterruptionRecord, OverlayClip, classify_answer
from benchmarks.paced_microphone import PacedMicrophone
from benchmarks.probe_records import ResponseTrack, TurnTrack

OVERLAY_UNHEARD_S = 3.0
"""A false interruption the server has not reacted to this long after it ended went unheard."""
OVERLAY_COMMIT_S = 4.0
"""After the server's ``speech_stopped`` on a false interruption: the longest turn-end wait (1.5 s
of silence when the turn model is unsure) and then some."""
OVERLAY_TRANSCRIPT_S = 20.0
"""The longest wait for the transcript of what the server committed of a false interruption."""
OVERLAY_RESPONSE_S = 0.5
"""After the clip's transcript: time for a response to it to start, if the server starts one."""


class FalseInterruptionDriving:
    """Plays a clip over an answer and records what became of the answer."""

    config: Any
    concurrency: int
    session_index: int
    false_interruptions: list[FalseInterruptionRecord]
    _responses: dict[str, ResponseTrack]
    _response_starts: list[float]
    _last_speech_stopped: float | None
    _false_offset_ms: float
    _overlay: FalseInterruptionRecord | None
    _overlay_items: set[str]
    _overlay_transcribed: set[str]
    _overlay_start: float
    _overlay_end: float
    _overlay_heard_at: float | None
    _overlay_responses_before: int

    async def _false_interrupt(self, mic: PacedMicrophone, index: int, turn: TurnTrack, clip: OverlayClip,
                               timeout: float) -> None:
        """Say ``clip`` over the answer, then wait for the answer to end; the verdict comes after the
        pause that follows it (:meth:`_judge_false_interruption`), so a new response has time to show."""
        response = turn.response
        assert response is not None and response.done is not None
        record = FalseInterruptionRecord(concurrency=self.concurrency, session=self.session_index, turn=index,
                                         recording=turn.record.recording, kind=clip.kind, clip=clip.name,
                                         clip_secs=clip.seconds, offset_ms=self._false_offset_ms)
        self.false_interruptions.append(record)
        while response.first_audio is None and not response.done.done():
            await asyncio.sleep(0.01)
            if time.monotonic() - response.created > timeout:
                raise asyncio.TimeoutError
        due = (response.first_audio or 0.0) + self._false_offset_ms / 1000
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        if response.done.done():
            record.status = "answer_finished_first" if response.status == "completed" else "answer_ended_first"
            await self._follow_continuations(turn, timeout)
            return
        record.status = "played"
        self._overlay, self._overlay_items, self._overlay_transcribed = record, set(), set()
        self._overlay_heard_at = None
        self._overlay_start = time.monotonic()
        self._overlay_responses_before = len(self._response_starts)
        self._overlay_end = await mic.say(clip.pcm16(self.config.rate), owner=record).finished
        await asyncio.wait_for(asyncio.shield(response.done), timeout)

    async def _settle_false_interruption(self, timeout: float) -> None:
        """Wait until the server has dealt with the clip: heard nothing for a while after it, or, if
        it heard it, ended that speech, and transcribed what it committed of it (a new response, if
        any, starts right after). Under load the server's VAD and recognition lag by seconds."""
        deadline = time.monotonic() + timeout

        async def until(done, limit: float) -> bool:
            while not done() and time.monotonic() < min(limit, deadline):
                await asyncio.sleep(0.02)
            return done()

        record = self._overlay
        assert record is not None
        await until(lambda: record.heard, self._overlay_end + OVERLAY_UNHEARD_S)
        if not record.heard:
            return
        heard_at = self._overlay_heard_at or 0.0
        await until(lambda: (self._last_speech_stopped or 0.0) > heard_at, deadline)
        stopped = time.monotonic()
        if await until(lambda: bool(self._overlay_items), stopped + OVERLAY_COMMIT_S):
            await until(lambda: self._overlay_items <= self._overlay_transcribed, stopped + OVERLAY_TRANSCRIPT_S)
            await asyncio.sleep(OVERLAY_RESPONSE_S)

    async def _judge_false_interruption(self, response: ResponseTrack | None, timeout: float) -> None:
        await self._settle_false_interruption(timeout)
        record, self._overlay = self._overlay, None
        assert record is not None
        started = [t for t in self._response_starts[self._overlay_responses_before:] if t >= self._overlay_start]
        ended = response.done_at if response is not None and response.done_at is not None else float("inf")
        new = [t for t in started if t < ended]  # instead of the answer finishing
        record.new_responses, record.answered_clip = len(new), len(started) > len(new)
        if response is not None:
            record.answer_status = response.status
            record.answer_chars = len(response.text.strip())
            done_text = response.done_transcript
            record.done_transcript_chars = None if done_text is None else len(done_text.strip())
            record.lost, record.reason = classify_answer(status=response.status, streamed_text=response.text,
                                                         done_transcript=response.done_transcript,
                                                         new_responses=len(new))
            stall = response.playback.stall_s(after=self._overlay_start)
            record.resumed = not record.lost and record.heard and stall > 0  # else a TTS underrun
            record.extra_delay_ms = round(stall * 1000, 1)
        # An answer to the clip itself must end before the next turn is said.
        for track in [r for r in self._responses.values() if r.created >= self._overlay_start and r is not response]:
            if track.done is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(track.done), timeout)
                except asyncio.TimeoutError:
                    pass
                await self._listen(track)
