"""What the assistant says on its own: an apology when an engine fails, a filler while a tool runs.

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


_FILLERS = {"en": "One moment, let me check.", "zh": "稍等，我查一下。"}


_MEMORY_REPLIES: dict[str, dict[str, str]] = {
    "en": {
        "remembered": "Okay, I'll remember that.",
        "forgot": "Okay, I've forgotten that.",
        "nothing_to_forget": "I had nothing like that to forget.",
        "no_memory": "Sorry, I can't remember things between conversations here.",
        "failed": "Sorry, my memory isn't working right now.",
    },
    "zh": {
        "remembered": "好的，我记住了。",
        "forgot": "好的，我已经忘掉了。",
        "nothing_to_forget": "我没有记着这样的事。",
        "no_memory": "抱歉，这里我没法在对话之间记住事情。",
        "failed": "抱歉，我的记忆现在出了问题。",
    },
}


def memory_reply(outcome: str, language: str | None) -> str:
    """The fixed answer to "remember …" / "forget …"."""
    return _MEMORY_REPLIES.get((language or "en")[:2], _MEMORY_REPLIES["en"])[outcome]


def filler(language: str | None) -> str:
    """Said while a slow tool runs, so the user is not left in silence."""
    return _FILLERS.get((language or "en")[:2], _FILLERS["en"])


def apology(failure: Failure, language: str | None) -> str:
    """In the user's language where known (Whisper's code, 'zh' or 'en'), else English."""
    return _APOLOGIES.get((language or "en")[:2], _APOLOGIES["en"])[failure]
