"""Cheap lexical overlap between short texts, for English and Chinese alike.

Memory lookups run on every turn and must cost microseconds, not an embedding
model: English is compared by words (lower-cased, possessive and plural ``s``
dropped, function words ignored), Chinese by character bigrams plus single
characters. Chinese runs are first cut at common function characters (的, 是,
我 …) so that "我老婆的名字" gives 老婆 and 名字 rather than the junction
bigrams 婆的 and 的名, which would make unrelated facts look alike.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping

Terms = Mapping[str, float]

BIGRAM_WEIGHT = 1.0
UNIGRAM_WEIGHT = 0.5
"""A shared character says less than a shared bigram, but it still matters: 猫 alone is a word."""

ENGLISH_STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as into about is are was were be been being am
    i me my mine myself you your yours we our us he him his she her it its they them their this that these those
    there here what which who whom whose do does did have has had will would shall should can could may might
    must just so very too also please remember forget don't dont not no yes ok okay i'm im i've ive i'd id i'll
    you're it's that's what's everything all thing things""".split()
)
# "not" and "no" are dropped on purpose: "I don't eat pork" and "I eat pork" are about the same
# thing, which is what matching cares about (forgetting one should find the other).

CHINESE_STOP_CHARS = frozenset("的了是我你他她它们在吗呢吧啊呀哦嘛和与也都就还把被给对这那个么什请记忘掉")

_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def normalise(text: str) -> str:
    """NFKC (full-width to half-width) and case-folded: the form every comparison uses."""
    return unicodedata.normalize("NFKC", text).casefold()


def _english_term(word: str) -> str | None:
    word = word.replace("’", "'")
    if word in ENGLISH_STOPWORDS:
        return None
    if word.endswith("'s"):
        word = word[:-2]
    elif "'" in word:
        return None  # contractions (can't, won't) carry no topic
    return _stem(word) if word and word not in ENGLISH_STOPWORDS else None


_PLURAL = re.compile(r"(?<=\w{3})(?:(?P<ies>ies)|(?<!s)s)$")
_ENDING = re.compile(r"(?<=\w{3})(?:ing|ed|ic|y|e)$")


def _stem(word: str) -> str:
    """A rough stem, so that allergic / allergies / allergy, and work / working / worked, meet.

    Two steps, each dropping at most one suffix: the plural, then a common ending.
    Irregular forms (wife / wives) stay apart; precision is not the point.
    """
    word = _PLURAL.sub(lambda m: "y" if m["ies"] else "", word)
    return _ENDING.sub("", word)


def _chinese_terms(run: str, out: dict[str, float]) -> None:
    pieces = re.split("[" + "".join(CHINESE_STOP_CHARS) + "]+", run)
    for piece in pieces:
        for ch in piece:
            out.setdefault(ch, UNIGRAM_WEIGHT)
        for i in range(len(piece) - 1):
            out[piece[i : i + 2]] = BIGRAM_WEIGHT


def terms(text: str) -> dict[str, float]:
    """The weighted terms of ``text``: English words and Chinese characters and bigrams."""
    text = normalise(text)
    out: dict[str, float] = {}
    latin: list[str] = []
    run: list[str] = []
    for ch in text + " ":
        if _is_cjk(ch):
            run.append(ch)
            latin.append(" ")
            continue
        if run:
            _chinese_terms("".join(run), out)
            run = []
        latin.append(ch)
    for word in _WORD.findall("".join(latin)):
        term = _english_term(word)
        if term:
            out[term] = BIGRAM_WEIGHT
    return out


def _shared_weight(a: Terms, b: Terms) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w for t, w in a.items() if t in b)


def similarity(a: Terms, b: Terms) -> float:
    """Symmetric cosine of the weighted term sets, 0..1: how alike two texts are (ranking)."""
    if not a or not b:
        return 0.0
    return _shared_weight(a, b) / math.sqrt(sum(a.values()) * sum(b.values()))


def coverage(target: Terms, candidate: Terms) -> float:
    """How much of ``target`` appears in ``candidate``, 0..1: does this text talk about that?"""
    if not target:
        return 0.0
    return _shared_weight(target, candidate) / sum(target.values())
