"""Decides whether speech over an answer interrupts it: "pause first, decide later".

At the first voiced frame the answer pauses (its sender holds its frames); this
module judges what follows. Coughs, door slams and "mm-hm" are short or have no
words; a real interruption keeps going or says something. The verdict is
:attr:`Verdict.CONFIRM` (cancel the answer and cut it at what was heard),
:attr:`Verdict.RESUME` (a false interruption: the answer goes on where it paused)
or :attr:`Verdict.WAIT` (not known yet). A pause never outlives
``max_pause_ms``: then the answer resumes if the speech was shorter than a sure
interruption (its words, late on a busy CPU, still judge it once they come) and is
cancelled otherwise, so an answer cannot hang paused.

The word rule also stands alone: a turn whose whole transcript is a backchannel
never starts a new answer.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

DEFAULT_BACKCHANNELS: frozenset[str] = frozenset(
    {
        "mm", "mmm", "mm hm", "mm hmm", "mhm", "mhmm", "uh huh", "uh-huh", "uh hum", "hmm", "hm", "ok", "okay",
        "yeah", "yes", "yep", "yup", "ya", "right", "sure", "i see", "got it", "uh", "um", "ah", "oh", "aha", "ha",
        "alright", "all right", "cool", "nice", "i know", "exactly", "true", "wow", "really", "go on",
        "嗯", "嗯嗯", "哦", "噢", "喔", "对", "对对", "对的", "好", "好的", "好吧", "是", "是的", "啊", "嗯哼",
        "哦哦", "行", "没错", "明白", "知道了", "懂了", "然后呢", "真的吗", "哇",
    }
)
DEFAULT_STOP_PHRASES: frozenset[str] = frozenset(
    {
        "stop", "wait", "hold on", "hang on", "no", "excuse me", "sorry", "shut up", "be quiet", "enough",
        "停", "等等", "等一下", "等一等", "别说了", "不要说了", "不对", "不是", "好了", "够了", "打住",
    }
)
"""Short words that do interrupt: said over an answer they cancel it however short they are."""
_PUNCT = re.compile(r"[^\w\s'-]+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u9fff]")
SHORT_UTTERANCE_WORDS = 2
"""Words in a short sound that Whisper may have made up ("2", "我呢"); "What about tomorrow?" is more."""


def normalize_utterance(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).replace("-", " ").split())


def _covered(seq: list[str], units: frozenset[tuple[str, ...]]) -> bool:
    """Whether ``seq`` is a concatenation of ``units`` (a small DP): "yeah yeah", "嗯嗯对对", and
    Whisper's loops on a short sound ("Right. Right. Right. ...")."""
    longest = max((len(u) for u in units), default=0)
    covered = [True] + [False] * len(seq)  # covered[i]: seq[:i] is made of units
    for i in range(1, len(seq) + 1):
        covered[i] = any(covered[i - n] and tuple(seq[i - n:i]) in units for n in range(1, min(longest, i) + 1))
    return covered[-1]


def _contains(seq: list[str], phrase: tuple[str, ...]) -> bool:
    return any(tuple(seq[i:i + len(phrase)]) == phrase for i in range(len(seq) - len(phrase) + 1))


def word_count(text: str) -> int:
    """Latin words, plus a word per two Mandarin characters (most Mandarin words have two)."""
    norm = normalize_utterance(text)
    return -(-len(_CJK.findall(norm)) // 2) + len(_CJK.sub(" ", norm).split())


class Verdict(enum.Enum):
    WAIT = "wait"
    CONFIRM = "confirm"
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class InterruptionParams:
    confirm_speech_ms: int = 1200
    """Speech this long over an answer interrupts it whatever its words: longer than any
    backchannel, even a slow "嗯——" (about 0.6-1 s)."""
    max_pause_ms: int = 3000
    """A paused answer is not held longer than this (a slow recogniser): it resumes after a
    short sound (most are backchannels; the words still judge it), or is cancelled."""
    short_speech_ms: int = 1000
    """Speech shorter than this with a few words that are neither a backchannel nor a stop word
    is taken for a sound the recogniser made words of (Whisper hears "2" or "我呢" in a "嗯")."""


@dataclass(frozen=True, slots=True)
class OnsetWithdrawn:
    """The voiced run ended before it became a turn."""


@dataclass(frozen=True, slots=True)
class SpeechLasted:
    speech_ms: int


@dataclass(frozen=True, slots=True)
class WordsHeard:
    """A transcript of the speech so far (the turn's own when it has ended)."""

    text: str
    speech_ms: int | None = None
    """How long the VAD heard speech (the longest run); None: unknown."""


@dataclass(frozen=True, slots=True)
class PauseExpired:
    """``max_pause_ms`` since the answer paused."""

    speech_ms: int = 0
    """The longest speech run heard during the pause."""


Evidence = OnsetWithdrawn | SpeechLasted | WordsHeard | PauseExpired


@dataclass(frozen=True, slots=True)
class BargeInPolicy:
    backchannels: frozenset[str] = DEFAULT_BACKCHANNELS
    stop_phrases: frozenset[str] = DEFAULT_STOP_PHRASES
    params: InterruptionParams = InterruptionParams()

    def is_backchannel(self, transcript: str) -> bool:
        norm = normalize_utterance(transcript)
        if not norm:
            return True
        compact = norm.replace(" ", "")
        if norm in self.backchannels or compact in self.backchannels:
            return True
        if _CJK.search(compact):  # Mandarin has no spaces: "嗯嗯对对" is made of characters
            return _covered(list(compact), frozenset(tuple(b) for b in self.backchannels if _CJK.search(b)))
        return _covered(norm.split(), frozenset(tuple(b.split()) for b in self.backchannels))

    def asks_to_stop(self, transcript: str) -> bool:
        norm = normalize_utterance(transcript)
        compact = norm.replace(" ", "")
        tokens = norm.split()
        return any(p in compact if _CJK.search(p) else _contains(tokens, tuple(p.split())) for p in self.stop_phrases)

    def is_false_interruption(self, transcript: str, speech_ms: int | None = None) -> bool:
        """Words said over an answer that do not interrupt it: a backchannel, nothing, or a short
        sound with a few words that are no stop word."""
        if self.asks_to_stop(transcript):
            return False
        if self.is_backchannel(transcript):
            return True
        return (speech_ms is not None and speech_ms < self.params.short_speech_ms
                and word_count(transcript) <= SHORT_UTTERANCE_WORDS)

    def judge(self, evidence: Evidence, *, words_pending: bool) -> Verdict:
        """The verdict on a paused answer, given one new piece of evidence (pure, synchronous)."""
        match evidence:
            case OnsetWithdrawn():
                # A click: nothing was said. A turn that ended and awaits its words is judged on them.
                return Verdict.WAIT if words_pending else Verdict.RESUME
            case SpeechLasted(speech_ms=ms):
                return Verdict.CONFIRM if ms >= self.params.confirm_speech_ms else Verdict.WAIT
            case WordsHeard(text=text, speech_ms=speech_ms):
                return Verdict.RESUME if self.is_false_interruption(text, speech_ms) else Verdict.CONFIRM
            case PauseExpired(speech_ms=ms):
                # A short sound whose words are still being decoded: losing the answer to a late
                # "uh-huh" is worse than resuming it and cancelling when the words say "stop".
                return Verdict.CONFIRM if ms >= self.params.confirm_speech_ms else Verdict.RESUME
        raise TypeError(f"not evidence: {evidence!r}")
