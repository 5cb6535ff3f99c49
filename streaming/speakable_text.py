"""What is spoken is not what is shown: markdown, emoji, code and URLs are dropped from speech.

The transcript keeps the LLM's text as written; only the TTS input is filtered.
A fenced code block can span several chunks, so :class:`SpeakableFilter` keeps
whether it is inside one.
"""

from __future__ import annotations

import re

_FENCE = "```"
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),                       # images
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),                   # links -> label
    (re.compile(r"`[^`]*`"), ""),                                     # inline code
    (re.compile(r"(?:https?://|www\.)\S+"), ""),                     # bare URLs
    (re.compile(r"^\s{0,3}#{1,6}\s*", re.M), ""),                    # headings
    (re.compile(r"^\s*>\s?", re.M), ""),                             # blockquotes
    (re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.M), ""),             # list markers
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),                        # bold
    (re.compile(r"(?<![\w*])([*_])(?!\s)(.+?)(?<!\s)\1(?![\w*])"), r"\2"),  # italics
    (re.compile(r"[*#|~]+"), " "),                                    # stray markup, table pipes
    (re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F\u200D\u20E3\U000E0020-\U000E007F]"), ""),
    (re.compile(r"\s+"), " "),
]


def speakable_text(text: str) -> str:
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text.strip()


class SpeakableFilter:
    def __init__(self) -> None:
        self._in_code = False

    def push(self, chunk: str) -> str:
        spoken: list[str] = []
        parts = chunk.split(_FENCE)
        for index, part in enumerate(parts):
            if index > 0:
                self._in_code = not self._in_code
            if not self._in_code:
                spoken.append(part)
        return speakable_text(" ".join(spoken))
