"""Drops a speaker label the LLM writes in front of its answer ("Tingshuo: ...", "助手：...").

Small chat models sometimes answer as if writing a script: the assistant's own name
and a colon, at times a stage direction after it ("Tingshuo: (smiling) Sure."). Spoken,
that is the assistant saying its own name before every answer; kept in the history,
the model copies it into every later answer; and a label too short to be a clause
holds the first chunk back until the sentence ends. So the label goes before the
text reaches the transcript, the voice or the history.

Only the very start of an answer is held, and only while it can still become a
label: "I'm" is let through at once, "Ting" waits for the next piece.
"""

from __future__ import annotations

import re

GENERIC_LABELS = ("Assistant", "AI", "助手", "听说", "Tingshuo")
"""Labels dropped whatever the persona is called."""
MAX_HELD_CHARS = 48
"""A label and a stage direction longer than this are not a label: the text goes out as written."""
_COLONS = ":："
_OPENERS = {"(": ")", "（": "）", "*": "*", "[": "]"}


class SpeakerLabelFilter:
    def __init__(self, names: tuple[str, ...] = ()) -> None:
        self._labels = tuple(dict.fromkeys(n.strip().casefold() for n in (*names, *GENERIC_LABELS) if n.strip()))
        self._held = ""
        self._decided = False
        self._trim = False
        """After a dropped label: the space before the answer's first word goes too."""

    def push(self, text: str) -> str:
        """What may go out now: nothing while the start could still be a label."""
        if self._decided:
            if self._trim:
                text = text.lstrip()
                self._trim = not text
            return text
        self._held += text
        return self._decide(final=False)

    def finish(self) -> str:
        """The stream ended: whatever is still held, without a label."""
        return "" if self._decided else self._decide(final=True)

    def _decide(self, *, final: bool) -> str:
        start = self._held.lstrip()
        folded = start.casefold()
        if not folded and not final:
            return ""
        for label in self._labels:
            found = re.match(re.escape(label) + "\\s*[" + _COLONS + "]", start, flags=re.IGNORECASE)
            if found is not None:
                rest = _without_stage_direction(start[found.end():].lstrip(), final=final)
                if rest is None:
                    return self._hold()
                self._trim = not rest.strip()
                return self._release(rest.lstrip())
            if not final and _could_still_be(folded, label):
                return self._hold()
        return self._release(self._held)

    def _hold(self) -> str:
        return self._release(self._held) if len(self._held) > MAX_HELD_CHARS else ""

    def _release(self, text: str) -> str:
        self._decided, self._held = True, ""
        return text


def _could_still_be(folded: str, label: str) -> bool:
    """True while the text so far is the beginning of ``label``, perhaps with spaces after it."""
    text = folded.rstrip()
    if len(text) <= len(label):
        return label.startswith(text)
    return False


def _without_stage_direction(text: str, *, final: bool) -> str | None:
    """``text`` without a leading "(smiling)"; None while nothing or an open one follows the label."""
    if not text:
        return "" if final else None
    closer = _OPENERS.get(text[0])
    if closer is None:
        return text
    end = text.find(closer, 1)
    if end == -1:
        return text if final else None
    return text[end + 1:]
