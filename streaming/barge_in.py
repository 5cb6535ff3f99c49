"""Decides whether the user's words during an answer ask for a new one.

Coughs, door slams and "mm-hm" are short; a real interruption keeps going. The
length rule lives in the VAD gate (``audio.barge_in_min_speech_ms`` raises its
start time while the assistant talks); this policy is the word rule: a turn
whose whole transcript is a backchannel never starts a new answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_BACKCHANNELS: frozenset[str] = frozenset(
    {
        "mm", "mmm", "mm hm", "mm hmm", "mhm", "uh huh", "uh-huh", "hmm", "hm", "ok", "okay", "yeah",
        "yes", "yep", "right", "sure", "i see", "got it", "uh", "um", "ah", "oh",
        "嗯", "嗯嗯", "哦", "噢", "对", "对对", "好", "好的", "是", "是的", "啊", "嗯哼",
    }
)
_PUNCT = re.compile(r"[^\w\s'-]+", re.UNICODE)


def normalize_utterance(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).replace("-", " ").split())


@dataclass(frozen=True, slots=True)
class BargeInPolicy:
    backchannels: frozenset[str] = DEFAULT_BACKCHANNELS

    def is_backchannel(self, transcript: str) -> bool:
        norm = normalize_utterance(transcript)
        if not norm:
            return True
        return norm in self.backchannels or norm.replace(" ", "") in self.backchannels
