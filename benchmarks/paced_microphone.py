"""A microphone that never stops: speech when some is queued, else silence, on a real-time schedule.

Frames of 20-40 ms leave on a fixed schedule, as a browser's would, so the moment the last
frame of an utterance is sent is known before it is sent, and a server's VAD sees the same
continuous stream a person's page gives it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

PREFIX_LEAD_MS = 400.0
"""More than a server's prefix padding (300 ms for OpenAI's and tingshuo's VAD): utterances here
are seconds apart, so the slack never reaches back into the one before."""


@dataclass
class Utterance:
    """Speech queued on the microphone: when its first frame began, and when its last was sent."""

    pcm: np.ndarray
    started: asyncio.Future
    finished: asyncio.Future
    owner: object = None
    """Whose speech this is (a turn, a false interruption): what the server hears in it is theirs."""
    start_ms: float | None = None
    """Where its first frame sits in the session's input audio, in ms from the first frame sent:
    the timeline of the server's ``audio_start_ms`` and ``audio_end_ms``."""


class PacedMicrophone:
    """Sends a continuous real-time stream: queued speech, else silence."""

    def __init__(self, send_append, *, rate: int, frame_ms: int) -> None:
        self._send_append = send_append
        self._frame = rate * frame_ms // 1000
        self._frame_s = frame_ms / 1000
        self._frame_ms = frame_ms
        self._queue: deque[Utterance] = deque()
        self._silence = np.zeros(self._frame, np.int16)
        self._said: list[Utterance] = []

    def say(self, pcm: np.ndarray, owner: object = None) -> Utterance:
        loop = asyncio.get_running_loop()
        utterance = Utterance(pcm=pcm, started=loop.create_future(), finished=loop.create_future(), owner=owner)
        self._queue.append(utterance)
        return utterance

    def owner_at(self, audio_ms: float, *, lead_ms: float = PREFIX_LEAD_MS) -> object:
        """Whose speech the server heard start at ``audio_ms``: the last utterance begun by then.
        A server's speech start may lie up to its prefix padding before the first loud frame, so an
        utterance beginning up to ``lead_ms`` after ``audio_ms`` still counts. None: silence only."""
        owner = None
        for utterance in self._said:
            if utterance.start_ms is not None and utterance.start_ms <= audio_ms + lead_ms:
                owner = utterance.owner
        return owner

    async def run(self) -> None:
        t0 = time.monotonic()
        k = 0
        current: Utterance | None = None
        pos = 0
        while True:
            if current is None and self._queue:
                current, pos = self._queue.popleft(), 0
                current.start_ms = k * self._frame_ms
                self._said.append(current)
                current.started.set_result(t0 + k * self._frame_s)
            if current is not None:
                frame = current.pcm[pos : pos + self._frame]
                if len(frame) < self._frame:
                    frame = np.concatenate([frame, self._silence[: self._frame - len(frame)]])
                pos += self._frame
            else:
                frame = self._silence
            k += 1
            delay = t0 + k * self._frame_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._send_append(frame)
            if current is not None and pos >= len(current.pcm):
                current.finished.set_result(time.monotonic())
                current = None
