"""When does the user's turn end? A short silence plus a semantic check, bounded by a long silence.

``server_vad`` ends the turn at the VAD stop (its silence is the whole rule).
``semantic_vad`` stops the VAD early, asks the end-of-turn model, and ends the
turn at once when it is confident; otherwise it waits up to the eagerness's
longest silence for the user to go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Eagerness = Literal["low", "medium", "high", "auto"]

SEMANTIC_VAD_STOP_MS = 250
"""Silence before the semantic check runs: short, since the model makes the call."""

MAX_SILENCE_MS_BY_EAGERNESS: dict[str, int] = {"low": 2500, "medium": 1500, "auto": 1500, "high": 800}
FINISHED_TEXT_SILENCE_MS_BY_EAGERNESS: dict[str, int | None] = {"low": None, "medium": 600, "auto": 600, "high": 400}
"""Silence that ends a turn the audio model was unsure of once its transcript reads finished
(:mod:`streaming.text_turn_end`); ``low`` eagerness asked for patience and keeps its longest wait."""
END_OF_TURN_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class TurnDecision:
    """``wait_ms`` more silence ends the turn; 0 means the turn ends now."""

    wait_ms: int
    reason: Literal["silence", "semantic", "max_silence", "finished_text"]

    @property
    def ends_now(self) -> bool:
        return self.wait_ms == 0


@dataclass(frozen=True, slots=True)
class TurnPolicy:
    mode: Literal["server_vad", "semantic_vad"]
    eagerness: Eagerness = "auto"
    threshold: float = END_OF_TURN_THRESHOLD

    @property
    def needs_model(self) -> bool:
        return self.mode == "semantic_vad"

    def vad_stop_ms(self, silence_duration_ms: int) -> int:
        return SEMANTIC_VAD_STOP_MS if self.mode == "semantic_vad" else silence_duration_ms

    def decide(self, end_of_turn_probability: float | None) -> TurnDecision:
        """Decision at the VAD stop; ``None`` means no model score is available."""
        if self.mode == "server_vad":
            return TurnDecision(wait_ms=0, reason="silence")
        remaining = MAX_SILENCE_MS_BY_EAGERNESS[self.eagerness] - SEMANTIC_VAD_STOP_MS
        if end_of_turn_probability is not None and end_of_turn_probability >= self.threshold:
            return TurnDecision(wait_ms=0, reason="semantic")
        return TurnDecision(wait_ms=max(0, remaining), reason="max_silence")

    def wait_after_finished_text_ms(self) -> int | None:
        """Of an unsure decision's wait, what is left once the transcript reads finished (from the
        VAD stop); ``None``: the text does not shorten it."""
        silence = FINISHED_TEXT_SILENCE_MS_BY_EAGERNESS[self.eagerness] if self.mode == "semantic_vad" else None
        return None if silence is None else max(0, silence - SEMANTIC_VAD_STOP_MS)
