"""What the client hears: a model of its player, from the moments the answer's audio arrived.

A Realtime client plays each received frame as soon as it can: a frame that arrives while the
queue still holds audio is played after it; a frame that arrives when the queue has run dry
starts playing at once (an underrun: the listener heard a gap). So the client stops hearing
the answer when the queued audio runs out after the last frame it received, which can be well
after the server stopped sending: the server may send faster than real time, and the queue
holds what it sent ahead.

Two clients are modelled at a barge-in: one that keeps playing what it has queued (the
conservative one) and one that drops its queue when told the user started talking
(``input_audio_buffer.speech_started``, or the response cancelled, whichever comes first),
as the OpenAI samples and tingshuo's own page do. Pure arithmetic on (arrival time, ms)
pairs, on the probe's monotonic clock in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STALL_MIN_S = 0.02
"""A gap shorter than one frame is jitter, not a pause the listener notices."""


@dataclass
class PlaybackQueue:
    """Frames as they arrived: ``(arrival_s, duration_ms)``, in arrival order."""

    frames: list[tuple[float, float]] = field(default_factory=list)

    def push(self, arrival_s: float, duration_ms: float) -> None:
        self.frames.append((arrival_s, duration_ms))

    @property
    def started_at(self) -> float | None:
        return self.frames[0][0] if self.frames else None

    def ends_at(self, *, received_before: float | None = None) -> float | None:
        """When the queued audio runs out, counting the frames received before ``received_before``
        (all of them when None); None if no frame counts."""
        end: float | None = None
        for arrival, ms in self.frames:
            if received_before is not None and arrival >= received_before:
                break
            end = max(end if end is not None else arrival, arrival) + ms / 1000
        return end

    def stall_s(self, *, after: float) -> float:
        """Seconds of underruns (the queue ran dry, then audio came again) that began at or after
        ``after``: how much later the answer ends than if it had played without a pause."""
        total = 0.0
        end: float | None = None
        for arrival, ms in self.frames:
            if end is not None and arrival - end >= STALL_MIN_S and end >= after:
                total += arrival - end
            end = max(end if end is not None else arrival, arrival) + ms / 1000
        return total

    def stop_heard(self, *, flush_at: float | None = None) -> float | None:
        """When the listener stops hearing this audio: the queue's end, or ``flush_at`` if the
        client drops its queue then (frames arriving later are ignored, as a client does for
        an item it cut off)."""
        if flush_at is None:
            return self.ends_at()
        end = self.ends_at(received_before=flush_at)
        return None if end is None else min(end, flush_at)


def stop_ms_after(start_s: float, stopped_s: float | None) -> float | None:
    """Milliseconds from the interrupting speech to silence at the client; 0 when the client had
    already run out of audio before the user spoke (there was nothing to stop)."""
    return None if stopped_s is None else max(0.0, (stopped_s - start_s) * 1000)
