"""Chat logs cleaned into conversations that keep their context.

Sessions are split where the talk paused longer than ``gap`` (not at midnight: a calendar day
made a few huge samples, and a chat over midnight was cut in two); consecutive messages of one
speaker are merged (chat apps send a thought in pieces); empty messages, app noise ("[图片]",
"撤回了一条消息") and exact repeats are dropped; personal data is redacted. What was done is
counted in :class:`CleaningReport`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from thinking.conversation_logs.records import LoggedConversation, LoggedMessage
from thinking.conversation_logs.redaction import RedactionReport, redact

NOISE = re.compile(
    r"^\s*(?:\[(?:图片|表情|语音|视频|文件|动画表情|位置|链接|Photo|Sticker|Image|Video|Voice)\]"
    r"|.*撤回了一条消息|.*拍了拍.*|<Media omitted>|This message was deleted|You deleted this message)\s*$",
    re.IGNORECASE)
NO_EXCHANGE = "conversation without a user message answered"
_GAP = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_gap(text: str) -> timedelta:
    """``30m``, ``2h``, ``90s``, ``1d``."""
    match = _GAP.match(text)
    if not match:
        raise ValueError(f"gap {text!r}: a number and s, m, h or d (e.g. 30m)")
    value, unit = float(match.group(1)), match.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: value})


@dataclass(frozen=True, slots=True)
class CleaningParams:
    gap: timedelta = timedelta(minutes=30)
    redact: bool = True


@dataclass
class CleaningReport:
    conversations_in: int = 0
    conversations_out: int = 0
    messages_in: int = 0
    messages_out: int = 0
    split_at_gaps: int = 0
    """Conversations made by splitting at a gap (beyond the ones that came in)."""
    merged: int = 0
    """Messages joined onto the one before (same speaker)."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Messages or conversations left out, by reason."""
    redaction: RedactionReport = field(default_factory=RedactionReport)


def clean(conversations: list[LoggedConversation], params: CleaningParams = CleaningParams()) -> tuple[
        list[LoggedConversation], CleaningReport]:
    report = CleaningReport(conversations_in=len(conversations))
    out: list[LoggedConversation] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for conversation in conversations:
        report.messages_in += len(conversation.messages)
        pieces = _split_at_gaps(conversation.messages, params.gap)
        report.split_at_gaps += max(0, len(pieces) - 1)
        if not pieces:
            report.dropped[NO_EXCHANGE] += 1
        for n, piece in enumerate(pieces):
            messages = _merge(_drop_noise(piece, report), report)
            if params.redact:
                messages = [LoggedMessage(m.role, redact(m.content, report.redaction), m.time) for m in messages]
            if not any(a.role == "user" and b.role == "assistant" for a, b in zip(messages, messages[1:])):
                report.dropped[NO_EXCHANGE] += 1
                continue
            key = tuple((m.role, m.content) for m in messages)
            if key in seen:
                report.dropped["duplicate conversation"] += 1
                continue
            seen.add(key)
            suffix = f"#{n + 1}" if len(pieces) > 1 else ""
            out.append(LoggedConversation(id=conversation.id + suffix, messages=messages, title=conversation.title))
            report.messages_out += len(messages)
    report.conversations_out = len(out)
    return out, report


def _split_at_gaps(messages: list[LoggedMessage], gap: timedelta) -> list[list[LoggedMessage]]:
    pieces: list[list[LoggedMessage]] = [[]]
    previous = None
    for message in messages:
        if previous is not None and message.time is not None and previous.time is not None \
                and message.time - previous.time > gap and pieces[-1]:
            pieces.append([])
        pieces[-1].append(message)
        previous = message
    return [piece for piece in pieces if piece]


def _drop_noise(messages: list[LoggedMessage], report: CleaningReport) -> list[LoggedMessage]:
    kept: list[LoggedMessage] = []
    for message in messages:
        text = message.content.strip()
        if not text:
            report.dropped["empty message"] += 1
        elif NOISE.match(text):
            report.dropped["app noise"] += 1
        elif kept and kept[-1].role == message.role and kept[-1].content.strip() == text:
            report.dropped["repeated message"] += 1
        else:
            kept.append(LoggedMessage(message.role, text, message.time))
    return kept


def _merge(messages: list[LoggedMessage], report: CleaningReport) -> list[LoggedMessage]:
    merged: list[LoggedMessage] = []
    for message in messages:
        if merged and merged[-1].role == message.role:
            last = merged[-1]
            merged[-1] = LoggedMessage(last.role, last.content + "\n" + message.content, last.time)
            report.merged += 1
        else:
            merged.append(message)
    return merged
