"""Paces outgoing audio near real time and estimates how much the client has played.

Sending a whole answer at once would make barge-in useless: the client would
keep playing seconds of buffered audio after the server cancelled. We keep at
most ``max_lead_ms`` of audio in flight, and model the client's playback as
starting when the first frame is sent and stalling whenever the server runs dry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import time


@dataclass
class PlayoutClock:
    max_lead_ms: int
    clock: Callable[[], float] = time.monotonic
    sent_ms: float = 0.0
    _origin: float | None = field(default=None, repr=False)  # wall time at which played_ms == 0

    def played_ms(self) -> float:
        if self._origin is None:
            return 0.0
        return min(self.sent_ms, (self.clock() - self._origin) * 1000.0)

    def delay_before_send_s(self) -> float:
        """How long to wait before the next frame keeps the lead within ``max_lead_ms``."""
        if self._origin is None:
            return 0.0
        lead_ms = self.sent_ms - self.played_ms()
        return max(0.0, (lead_ms - self.max_lead_ms) / 1000.0)

    def mark_sent(self, duration_ms: float) -> None:
        now = self.clock()
        if self._origin is None:
            self._origin = now
        elif (now - self._origin) * 1000.0 > self.sent_ms:
            # The client ran dry (underrun) and resumes playing from this frame.
            self._origin = now - self.sent_ms / 1000.0
        self.sent_ms += duration_ms

    def remaining_ms(self) -> float:
        return self.sent_ms - self.played_ms()
