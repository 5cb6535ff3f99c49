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


@dataclass
@dataclass
class Utterance:
    """Speech queued on the microphone: when its first frame began, and when its last was sent."""

    pcm: np.ndarray
    started: asyncio.Future
    finished: asyncio.Future


class PacedMicrophone:
    """Sends a continuous real-time stream: queued speech, else silence."""

    def __init__(self, send_append, *, rate: int, frame_ms: int) -> None:
        self._send_append = send_append
        self._frame = rate * frame_ms // 1000
        self._frame_s = frame_ms / 1000
        self._queue: deque[Utterance] = deque()
        self._silence = np.zeros(self._frame, np.int16)

    def say(self, pcm: np.ndarray) -> Utterance:
        loop = asyncio.get_running_loop()
        utterance = Utterance(pcm=pcm, started=loop.create_future(), finished=loop.create_future())
        self._queue.append(utterance)
        return utterance

    async def run(self) -> None:
        t0 = time.monotonic()
        k = 0
        current: Utterance | None = None
        pos = 0
        while True:
            if current is None and self._queue:
                current, pos = self._queue.popleft(), 0
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
