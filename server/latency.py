"""Per-turn latency timestamps, from the end of the user's speech to the first audio byte sent."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

STAGES = ("speech_end", "turn_end", "transcript_final", "prompt_ready", "llm_request", "first_llm_token", "first_tts_chunk",
          "first_tts_audio", "first_audio_sent")
"""``transcript_final`` to ``prompt_ready`` is the thinking stage (knowledge search, memory);
``llm_request`` to ``first_llm_token`` is the LLM's time to first token; ``first_tts_chunk`` (the
first speakable text handed to TTS) to ``first_tts_audio`` is the synthesis of its first audio."""


@dataclass
class TurnTimeline:
    """Monotonic timestamps (seconds); None until reached."""

    speech_end: float | None = None
    turn_end: float | None = None
    transcript_final: float | None = None
    prompt_ready: float | None = None
    llm_request: float | None = None
    first_llm_token: float | None = None
    first_tts_chunk: float | None = None
    first_tts_audio: float | None = None
    first_audio_sent: float | None = None

    def mark(self, stage: str, at: float | None = None) -> None:
        if getattr(self, stage) is None:
            setattr(self, stage, time.monotonic() if at is None else at)

    def origin(self) -> float | None:
        for f in fields(self):
            if (value := getattr(self, f.name)) is not None:
                return value
        return None

    def as_ms(self) -> dict[str, float | None]:
        """Milliseconds from the first stage reached (speech end for spoken turns)."""
        origin = self.origin()
        return {
            f.name: None if (v := getattr(self, f.name)) is None or origin is None else round((v - origin) * 1000, 1)
            for f in fields(self)
        }
