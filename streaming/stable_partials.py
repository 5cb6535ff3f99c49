"""Turns revisable partial hypotheses into append-only text.

A streaming recogniser's hypothesis of the utterance so far changes as audio
arrives ("so" → "sunday is that" → "sunday is the best"), but Realtime clients
append every ``input_audio_transcription.delta`` they receive and cannot take
text back. So a word is emitted only once it is *stable*: it lies in the word
prefix shared by the last ``agreement`` hypotheses, it is not among the newest
hypothesis' last ``hold_back_words`` words (those are still being heard: "sun"
→ "sunday", "what's" → "what zero"), and everything emitted before it is still
part of that prefix. Words the recogniser later revises are never emitted; the
final transcript replaces the preview anyway.

The defaults were chosen on PocketSphinx's hypotheses every 100 ms over the
shared English recordings: 73 % of the emitted words are right and they cover
62 % of the reference (its last hypotheses reach 76 %), against 67 % and 33 %
with one held-back word, where an early wrong word stalls the rest of the turn.

Chinese is written without spaces, so every ideograph is a word of its own here
("广州市" is three); spaces are kept where the recogniser wrote them.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"\s*(?:[{_CJK}]|[^\s{_CJK}]+)")


def split_words(text: str) -> list[str]:
    """Latin words split at spaces, each ideograph a word of its own; a word keeps one leading
    space where the text had one, so joining the words gives the text back."""
    return [(" " + t.lstrip()) if t[0].isspace() else t for t in _TOKEN.findall(text.strip())]


def join_words(words: list[str], *, first: bool) -> str:
    """The words as text; ``first``: they start the text (no leading space)."""
    text = "".join(words)
    return text.lstrip() if first else text


def _common_prefix(a: list[str], b: list[str]) -> list[str]:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]


@dataclass
class StablePartials:
    agreement: int = 3
    """Consecutive hypotheses that must agree on a word before it is emitted."""
    hold_back_words: int = 2
    """Trailing words of the newest hypothesis never emitted yet."""
    emitted: list[str] = field(default_factory=list)
    _recent: deque[list[str]] = field(init=False)

    def __post_init__(self) -> None:
        if self.agreement < 1 or self.hold_back_words < 0:
            raise ValueError("agreement must be >= 1 and hold_back_words >= 0")
        self._recent = deque(maxlen=self.agreement)

    @property
    def text(self) -> str:
        """Everything emitted so far: the concatenation of the deltas."""
        return join_words(self.emitted, first=True)

    def update(self, hypothesis: str | None) -> str:
        """Take the newest hypothesis of the whole utterance; return the text to append ('' for none).

        The delta carries its own leading space where the recogniser wrote one, so plain
        concatenation of the deltas gives ``text``.
        """
        words = split_words(hypothesis or "")
        self._recent.append(words)
        if len(self._recent) < self.agreement:
            return ""
        stable = words[: max(0, len(words) - self.hold_back_words)]
        for previous in list(self._recent)[:-1]:
            stable = _common_prefix(stable, previous)
        if len(stable) <= len(self.emitted) or stable[: len(self.emitted)] != self.emitted:
            return ""
        new = stable[len(self.emitted) :]
        delta = join_words(new, first=not self.emitted)
        self.emitted.extend(new)
        return delta
