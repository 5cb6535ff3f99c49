"""An awaitable handle on one spoken response, with a cooperative interrupt.

Every audio frame a response produces is stamped with its generation; the
sender drops frames whose generation is no longer current, so nothing stale
reaches the client after a cancel even if a worker thread finishes late.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

_generations = itertools.count(1)


@dataclass(eq=False)
class SpeechHandle:
    response_id: str
    generation: int = field(default_factory=lambda: next(_generations))
    _interrupted: asyncio.Event = field(default_factory=asyncio.Event)
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def interrupt(self) -> None:
        self._interrupted.set()

    def mark_done(self) -> None:
        """Its ``response.done`` was sent: a response that replaces it may start."""
        self._done.set()

    async def wait_for_done(self) -> None:
        await self._done.wait()

    async def wait_if_not_interrupted(self, aw: asyncio.Future | asyncio.Task) -> bool:
        """Await ``aw`` unless interrupted first; True when ``aw`` finished."""
        interrupt_wait = asyncio.ensure_future(self._interrupted.wait())
        try:
            done, _ = await asyncio.wait({aw, interrupt_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            interrupt_wait.cancel()
        return aw in done


class GenerationGate:
    """The current generation; frames from any other are stale."""

    def __init__(self) -> None:
        self.current = 0

    def open(self, generation: int) -> None:
        self.current = generation

    def close(self, generation: int | None = None) -> None:
        """Closes the gate; with ``generation``, only if that one is still current (a finishing
        response must not close the gate its successor just opened)."""
        if generation is None or generation == self.current:
            self.current = 0

    def is_current(self, generation: int) -> bool:
        return generation == self.current and generation != 0
