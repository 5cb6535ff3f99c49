"""Talking over an answer and timing how soon it stops, at the server and at the client.

A base class of :class:`benchmarks.realtime_probe.SessionProbe`, which owns the state and the
turn-driving methods used here (``_new_turn``, ``_say``, ``_follow_continuations``,
``_listen``); kept apart so the probe's event tracking and the barge-in protocol each read on
their own. The interruption is a turn of its own (a new user item), answered after the
interrupted answer is cancelled; the client-side stop times come from
:mod:`benchmarks.client_playback`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks.client_playback import stop_ms_after
from benchmarks.corpus import Recording, speech_start_secs
from benchmarks.paced_microphone import PacedMicrophone
from benchmarks.probe_records import BargeInRecord, TurnTrack, finish_turn


class BargeInDriving:
    """Says an interruption over an answer and records when the answer stopped."""

    config: Any
    concurrency: int
    session_index: int
    barge_ins: list[BargeInRecord]
    _speech_started: list[float]

    async def _barge_in(self, mic: PacedMicrophone, index: int, turn: TurnTrack, interruption: Recording,
                        offset_ms: float) -> None:
        response = turn.response
        assert response is not None and response.done is not None
        record = BargeInRecord(concurrency=self.concurrency, session=self.session_index,
                               recording=turn.record.recording, interruption=interruption.name, offset_ms=offset_ms)
        self.barge_ins.append(record)
        timeout = self.config.turn_timeout_s
        while True:
            while response.first_audio is None and not response.done.done():
                await asyncio.sleep(0.01)
                if time.monotonic() - response.created > timeout:
                    raise asyncio.TimeoutError
            if not response.done.done():
                await asyncio.sleep(max(0.0, response.first_audio + offset_ms / 1000 - time.monotonic()))
            if not response.done.done():
                break
            # Ended before the interruption: finished, or cancelled because the user's own utterance
            # went on (the server cut it at a pause). Then the answer to all of it is talked over.
            if response.status == "cancelled":
                await self._follow_continuations(turn, timeout)
            if turn.response is response or turn.response is None or turn.response.done is None:
                record.status = "answer_finished_first" if response.status == "completed" else "answer_ended_first"
                await self._listen(turn.response)  # heard out, as an answer not talked over is
                return
            response = turn.response
        pcm = interruption.pcm16(self.config.rate)
        second = self._new_turn(index, interruption, pcm, barge_in=False)
        said = asyncio.ensure_future(self._say(mic, second, pcm))
        started_before = len(self._speech_started)
        await asyncio.wait_for(asyncio.shield(response.done), timeout)
        while not second.speech_start:
            await asyncio.sleep(0.005)
        start = second.speech_start + speech_start_secs(pcm, self.config.rate)  # the speech, not the file
        if response.status == "cancelled":
            record.status = "cancelled"
            record.cancel_ms = (response.done_at - start) * 1000  # type: ignore[operator]
            if len(self._speech_started) > started_before:
                record.speech_started_ms = (self._speech_started[started_before] - start) * 1000
            await asyncio.sleep(0.5)  # frames still in flight arrive now or never
            if response.last_audio is not None:
                record.last_audio_ms = (response.last_audio - start) * 1000
            record.audio_after_cancel_ms = response.audio_after_done_ms
            heard = self._speech_started[started_before] if len(self._speech_started) > started_before else None
            flush_at = min(t for t in (heard, response.done_at) if t is not None)
            record.client_stop_ms = stop_ms_after(start, response.playback.stop_heard())
            record.client_flush_stop_ms = stop_ms_after(start, response.playback.stop_heard(flush_at=flush_at))
        elif response.status == "completed":
            record.status = "answer_finished_first"
        finish_turn(turn)
        await said
        try:
            await asyncio.wait_for(second.response_ready.wait(), timeout)
            assert second.response is not None and second.response.done is not None
            await asyncio.wait_for(asyncio.shield(second.response.done), timeout)
        except asyncio.TimeoutError:
            second.record.status = "timeout"
        finish_turn(second)
        await self._listen(second.response)
