"""Spots explicit memory requests in what the user said: "remember that …", "forget …", 记住…, 忘掉….

Only commands count, never mentions: "I can't remember where I parked", "do you
remember me?" and 我忘记带钥匙了 are conversation, not requests. So a request must
open its sentence (after fillers such as "okay," or 好的，), may be introduced only
by polite forms (please, can you, 请, 麻烦你, 帮我), and a question is a request only
when it asks politely ("Can you remember that …?", 你能记住…吗). What is remembered
is the user's own words after the verb; the LLM reads them as such.

Pure functions on the final transcript; no model, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RememberIntent:
    text: str
    """The fact in the user's words: "my name is Li Wei", 我的生日是五月三日."""


@dataclass(frozen=True, slots=True)
class ForgetIntent:
    text: str = ""
    """What to forget ("my wife's name"); empty when ``everything``."""
    everything: bool = False


MemoryIntent = RememberIntent | ForgetIntent

MIN_ENGLISH_WORDS = 2
MIN_CHINESE_CHARS = 2

_SENTENCES = re.compile(r"(?<=[。！？；])|(?<=[.!?;])\s+")
_FILLERS = re.compile(
    r"^(?:(?:ok(?:ay)?|hey|hi|so|and|also|well|now|alright|all right|tingshuo|by the way|oh)\b[\s,.!]*"
    r"|(?:好的?|嗯+|那个|哦|对了|听说|还有|另外)[\s,，、。！!]*)+",
    re.IGNORECASE,
)
_TRAILING_EN = re.compile(r"(?:[\s,]+(?:please|for me|thanks|thank you|ok(?:ay)?)\b|[\s.!?,;:])+$", re.IGNORECASE)
_TRAILING_ZH = re.compile(r"(?:[，,\s]*(?:谢谢你?|好吗|好不好|行吗|可以吗|吧|哦|啊|呀|啦)|[\s。！？!?，,；;：:、.])+$")

_EN_POLITE = r"(?P<polite>(?:can|could|would|will)\s+you\s+)?(?:please\s+)?"
_EN_REMEMBER = re.compile(
    r"^" + _EN_POLITE
    + r"(?:(?:remember|memori[sz]e|keep\s+in\s+mind)(?:\s+that\b)?|(?:don't|do\s+not)\s+forget\s+that\b)"
    r"[\s,:]+(?P<text>.+)$",
    re.IGNORECASE,
)
_EN_FORGET = re.compile(r"^" + _EN_POLITE + r"forget\b(?:\s+about\b)?(?:\s+that\b(?!\s*,))?[\s,:]*(?P<text>.*)$",
                        re.IGNORECASE)
_EN_VAGUE_START = re.compile(
    r"^(?:when|where|what|who|whom|whose|why|how|which|if|whether|to|it|that|this|me|us|him|her|them|you)\b",
    re.IGNORECASE,
)
_EN_EVERYTHING = re.compile(
    r"(?:about\s+)?(?:me|(?:all|everything)(?:\s+(?:of\s+)?(?:it|that|this))?"
    r"(?:\s+(?:that\s+)?(?:you\s+know|i\s+(?:have\s+|'ve\s+)?(?:told|said\s+to)\s+you|i\s+said|we\s+talked\s+about))?"
    r"(?:\s+about\s+me)?)",
    re.IGNORECASE,
)

_ZH_PREFIX = r"(?P<prefix>(?:[请請]你?|麻烦你?|你|能不能|可不可以|能|可以|[帮幫]我|一定|要|得)*)"
_ZH_REMEMBER = re.compile(
    r"^" + _ZH_PREFIX + r"(?:[记記](?:住|下来|下|一下|着)|(?<=[请請要])[记記]得)(?:一下)?[，,:：、…\s.]*(?P<text>.+)$"
)
_ZH_FORGET_VERB = r"(?:忘[记記掉了]|[删刪](?:掉|除|了))"
_ZH_FORGET = re.compile(r"^" + _ZH_PREFIX + r"(?P<verb>" + _ZH_FORGET_VERB + r")(?:关于|關於)?[，,:：、…\s.]*(?P<text>.*)$")
_ZH_FORGET_BA = re.compile(r"^" + _ZH_PREFIX + r"把(?P<text>.+?)(?:全部|全都|都|全)?" + _ZH_FORGET_VERB + r"掉?$")
_ZH_FORGET_ALL = re.compile(r"^" + _ZH_PREFIX + r"(?:全部|全都|都|统统)" + _ZH_FORGET_VERB + r"$")
_ZH_ABOUT_ME = r"(?:关于我的|關於我的|你知道的关于我的|我告诉你的|我告訴你的|我跟你说的|我说过的|我的)"
_ZH_EVERYTHING = re.compile(
    r"(?:所有|全部)?" + _ZH_ABOUT_ME + r"?(?:一切|所有|全部)?的?(?:事情?|东西|內容|内容|记忆|記憶|信息|资料)?"
)
_ZH_ALL_WORDS = re.compile("一切|所有|全部|关于我|關於我|告[诉訴]你|跟你说|说过")
"""Objects that mean "all of me" (一切, 所有关于我的事情, 我告诉你的) are shaped by the first pattern and
say "all" with the second; 我的信息 alone is a thing to forget, not everything."""
_ZH_ASKED = re.compile("[请請]|麻烦|[帮幫]我|能|可以|要|一定")
_ZH_QUESTION_END = re.compile(r"(?:吗|嗎|么|麼|呢)$")
_ZH_VAGUE = frozenset({"这个", "那个", "这件事", "那件事", "这些", "那些", "它", "这", "那", "了", "啦"})
_ZH_NOT_A_COMMAND_START = re.compile(r"^(?:了|吗|嗎|没|沒|不)")


def detect_memory_intent(transcript: str) -> MemoryIntent | None:
    """The first memory request among the transcript's sentences, or None."""
    for sentence in _SENTENCES.split(transcript):
        sentence = _FILLERS.sub("", sentence.strip())
        if not sentence:
            continue
        intent = _english(sentence) or _chinese(sentence)
        if intent is not None:
            return intent
    return None


def _english(sentence: str) -> MemoryIntent | None:
    is_question = sentence.rstrip().endswith("?")
    if match := _EN_REMEMBER.match(sentence):
        if is_question and not match["polite"]:
            return None
        text = _TRAILING_EN.sub("", match["text"]).strip()
        if _EN_VAGUE_START.match(text) or len(text.split()) < MIN_ENGLISH_WORDS:
            return None
        return RememberIntent(text)
    if match := _EN_FORGET.match(sentence):
        if is_question and not match["polite"]:
            return None
        text = _TRAILING_EN.sub("", match["text"]).strip()
        if not text:
            return None  # a bare "forget" (or "forget about that,") names nothing
        if _EN_EVERYTHING.fullmatch(text):
            return ForgetIntent(everything=True)
        if _EN_VAGUE_START.match(text):
            return None  # "forget it", "forget that, …", "forget where …": idioms, not requests
        return ForgetIntent(text)
    return None


def _zh_body(text: str, prefix: str) -> str | None:
    """The request's object with trailing particles cut; None when it reads as a question or names nothing."""
    text = _TRAILING_ZH.sub("", text.strip())
    if _ZH_QUESTION_END.search(text):
        if not re.search("能|可以", prefix):
            return None  # 你记得我吗: a question
        text = _TRAILING_ZH.sub("", _ZH_QUESTION_END.sub("", text))
    if _ZH_NOT_A_COMMAND_START.match(text) or text in _ZH_VAGUE:
        return None
    return text


def _chinese(sentence: str) -> MemoryIntent | None:
    if _ZH_FORGET_ALL.match(_TRAILING_ZH.sub("", sentence)):
        return ForgetIntent(everything=True)
    if match := _ZH_FORGET_BA.match(_TRAILING_ZH.sub("", sentence)):
        return _zh_forget(match["text"], match["prefix"])
    if match := _ZH_FORGET.match(sentence):
        raw = match["text"].strip()
        stripped = _TRAILING_ZH.sub("", raw)
        said_ba = raw != stripped and re.search("吧$", raw.rstrip("。！!，, "))
        # 忘记带钥匙了 / 忘了带伞 / 你忘了我的生日: unless asked (请, 帮我, 能…) or urged (…吧), a sentence
        # about forgetting, not a request.
        asked = said_ba or _ZH_ASKED.search(match["prefix"])
        if not asked and (match["prefix"] or match["verb"] == "忘了" or stripped.endswith("了")):
            return None
        return _zh_forget(raw, match["prefix"])
    if match := _ZH_REMEMBER.match(sentence):
        text = _zh_body(match["text"], match["prefix"])
        if text is None or len(text) < MIN_CHINESE_CHARS:
            return None
        return RememberIntent(text)
    return None


def _zh_forget(text: str, prefix: str) -> ForgetIntent | None:
    body = _zh_body(text, prefix)
    if not body:
        return None
    if body == "我" or (_ZH_EVERYTHING.fullmatch(body) and _ZH_ALL_WORDS.search(body)):
        return ForgetIntent(everything=True)
    return ForgetIntent(body) if len(body) >= MIN_CHINESE_CHARS else None
