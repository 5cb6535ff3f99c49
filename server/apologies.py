"""What the assistant says when an engine fails, so a voice user is not left in silence.

Said through the normal response path (its own ``response.created`` … ``response.done``)
after the failed response's ``error`` and ``response.done``; never from the LLM, which
may be the part that failed.
"""

from __future__ import annotations

from typing import Literal

Failure = Literal["answer", "hearing"]

_APOLOGIES: dict[str, dict[Failure, str]] = {
    "en": {
        "answer": "Sorry, I can't answer right now. Please try again in a moment.",
        "hearing": "Sorry, I didn't catch that. Could you say it again?",
    },
    "zh": {
        "answer": "抱歉，我现在无法回答，请稍后再试。",
        "hearing": "抱歉，我没听清，请再说一遍。",
    },
}


def apology(failure: Failure, language: str | None) -> str:
    """In the user's language where known (Whisper's code, 'zh' or 'en'), else English."""
    return _APOLOGIES.get((language or "en")[:2], _APOLOGIES["en"])[failure]
