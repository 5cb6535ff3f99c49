"""Speculative recognition of the user's turn so far, started at a pause or at the VAD's stop."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from models.interfaces import Transcript


@dataclass(eq=False)
class EarlyDecode:
    samples: int
    """The turn's length when it started: the turn must end on exactly this audio for it to count."""
    task: asyncio.Task[Transcript]
    at_pause: bool = False
    """Started at a pause shorter than the stop's: speech again makes it stale."""
    started_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None

    def finished(self, _: asyncio.Task[Transcript]) -> None:
        self.finished_at = time.monotonic()

    def seconds(self) -> float:
        """Worker time it took (so far, when cut short): what a discarded one wasted."""
        return (self.finished_at or time.monotonic()) - self.started_at
