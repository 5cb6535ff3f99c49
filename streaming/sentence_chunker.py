"""Cuts an LLM token stream into speakable chunks as early as it is safe to.

The first chunk may end at a clause boundary so the first audio starts after a
few words; later chunks are whole sentences (short ones merged) for natural
prosody. A '.' is only a sentence end once the next character shows it is not
"3.14", "Mr. Smith", "U.S." or a URL, so an ASCII terminator waits for the next
token; Chinese terminators are unambiguous and cut at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CJK_TERMINATORS = "。！？；…"
ASCII_TERMINATORS = ".!?;"
CJK_CLAUSE_MARKS = "，、：,"  # the fullwidth ones cut at once; a plain ',' needs a following space
ASCII_CLAUSE_MARKS = ",:"
CLOSERS = "\"'”’)]」』）》"
ABBREVIATIONS = frozenset({
    "mr.", "mrs.", "ms.", "dr.", "st.", "prof.", "sr.", "jr.", "vs.", "etc.", "e.g.", "i.e.", "no.", "u.s.",
    "u.k.", "a.m.", "p.m.", "inc.", "ltd.", "co.", "mt.", "approx.", "fig.", "dept.", "jan.", "feb.", "aug.",
    "sept.", "oct.", "nov.", "dec.",
})
_INITIALS = re.compile(r"(?:[A-Za-z]\.)+$")


def _is_cjk(ch: str) -> bool:
    return "\u3000" <= ch <= "\u9fff" or "\uf900" <= ch <= "\uffef"


def _is_ideograph(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff"


@dataclass(frozen=True, slots=True)
class ChunkerParams:
    first_chunk_min_chars: int = 3
    """A first clause this long is cut at its comma: "Yes," and "是的，" are said at once. At 10,
    "Yes," waited for its sentence's end: 0.55 s more of the LLM and 0.2 s more of Piper before
    the first sound (the English bench's answers all opened with it)."""
    min_chars: int = 20
    max_chars: int = 200
    first_chunk_cjk_chars: int | None = None
    """A first chunk of Mandarin is cut where the LLM's text ends once it holds this many
    ideographs and no clause mark came: for a voice whose wait grows with the text (Kokoro takes
    2.2-3.2 s for a 14-20 character sentence on two cores, 1.6-1.7 s for 6). The cut falls between
    two pieces the LLM streamed, so mostly between words. None: wait for a clause mark."""


class SentenceChunker:
    def __init__(self, params: ChunkerParams = ChunkerParams()) -> None:
        self.params = params
        self._buf = ""
        self._emitted = 0

    def push(self, text: str) -> list[str]:
        self._buf += text
        chunks: list[str] = []
        while (cut := self._find_cut()) is not None:
            chunk, self._buf = self._buf[:cut].strip(), self._buf[cut:]
            if chunk:
                chunks.append(chunk)
                self._emitted += 1
        return chunks

    def flush(self) -> list[str]:
        rest, self._buf = self._buf.strip(), ""
        if rest:
            self._emitted += 1
            return [rest]
        return []

    def reset(self) -> None:
        self._buf, self._emitted = "", 0

    # -- the pure core ----------------------------------------------------------------
    def _find_cut(self) -> int | None:
        buf, first, p = self._buf, self._emitted == 0, self.params
        for i, ch in enumerate(buf):
            end, clause = None, False
            if ch in CJK_TERMINATORS:
                end = _extend(buf, i + 1, CJK_TERMINATORS + "!?")
            elif ch in ASCII_TERMINATORS:
                end = _confirmed_ascii_end(buf, i)
            elif first and ch in CJK_CLAUSE_MARKS and ch != ",":
                end, clause = _extend(buf, i + 1, ""), True
            elif first and ch in ASCII_CLAUSE_MARKS and _clause_mark_ends(buf, i):
                end, clause = i + 1, True
            if end is not None:
                length = _spoken_length(buf[:end])
                if clause and length >= p.first_chunk_min_chars:
                    return end
                if not clause and (first or length >= p.min_chars):
                    return end
            if i + 1 >= p.max_chars:
                return _forced_cut(buf, p.max_chars)
        if (first and p.first_chunk_cjk_chars and buf and _is_ideograph(buf[-1])
                and sum(1 for ch in buf if _is_ideograph(ch)) >= p.first_chunk_cjk_chars):
            return len(buf)
        return None


def _clause_mark_ends(buf: str, i: int) -> bool:
    """A ',' or ':' followed by a space ends a clause; so does a ',' the LLM's text ends with, right
    after a letter ("Absolutely,"): only digits go on after a comma without a space ("1,000"), so
    the first words need not wait a token (40-50 ms here) for the space. A ':' waits ("https:")."""
    if i + 1 < len(buf):
        return buf[i + 1].isspace()
    return buf[i] == "," and i > 0 and buf[i - 1].isalpha()


def _spoken_length(text: str) -> int:
    """Characters, with a CJK character counting double (it carries about a syllable)."""
    text = text.strip()
    return len(text) + sum(1 for ch in text if _is_cjk(ch))


def _extend(buf: str, j: int, also: str) -> int:
    while j < len(buf) and (buf[j] in also or buf[j] in CLOSERS):
        j += 1
    return j


def _confirmed_ascii_end(buf: str, i: int) -> int | None:
    j = _extend(buf, i + 1, ASCII_TERMINATORS)
    if j >= len(buf):
        return None  # ambiguous until the next character arrives
    if not (buf[j].isspace() or _is_cjk(buf[j])):
        return None  # "3.14", "example.com", "a.b@x.org"
    if buf[i] == "." and j == i + 1:
        start = max(buf.rfind(" ", 0, i), buf.rfind("\n", 0, i)) + 1
        token = buf[start : i + 1].lstrip("(\"'")
        if token.lower() in ABBREVIATIONS or (_INITIALS.match(token) and len(token) <= 6 and not token[:-1].isdigit()):
            return None
    return j


def _forced_cut(buf: str, max_chars: int) -> int:
    window = buf[:max_chars]
    for marks in ("，、；,;:", " "):
        pos = max(window.rfind(m) for m in marks)
        if pos > max_chars // 3:
            return pos + 1
    return max_chars
