"""A client may send audio no faster than a multiple of real time (a token bucket of audio time).

A microphone produces one second per second; a client pushing hours of audio per second is
either broken or abusing the server, and every second of audio costs VAD (and ASR) time.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AudioRateLimit:
    max_speed: float = 4.0
    """Audio seconds accepted per wall-clock second, on average."""
    burst_s: float = 30.0
    """Audio that may arrive at once (a client catching up after a network stall)."""
    _allowance_s: float = field(default=-1.0, init=False)
    _last: float | None = field(default=None, init=False)

    def take(self, audio_s: float, now: float) -> bool:
        """True if ``audio_s`` of audio may be accepted at ``now`` (monotonic seconds)."""
        if self._last is None:
            self._allowance_s, self._last = self.burst_s, now
        self._allowance_s = min(self.burst_s, self._allowance_s + (now - self._last) * self.max_speed)
        self._last = now
        if audio_s > self._allowance_s:
            return False
        self._allowance_s -= audio_s
        return True
