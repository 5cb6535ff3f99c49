"""Holds a response's outgoing audio while a possible interruption is judged.

"Pause first, decide later": the paced sender waits on the valve before each
frame, so holding it stops the audio at once while the LLM and the TTS keep
filling their bounded queues (and block when they are full). Releasing it
resumes the answer exactly where it stopped. The :class:`PlayoutClock` needs no
telling: a pause longer than the client's buffer is an underrun to it, so the
time paused is never counted as played.
"""

from __future__ import annotations

import asyncio


class OutputValve:
    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()

    @property
    def held(self) -> bool:
        return not self._open.is_set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def wait_open(self) -> None:
        """Returns at once when open; cancellable (a cancelled answer stops waiting)."""
        if not self._open.is_set():
            await self._open.wait()
