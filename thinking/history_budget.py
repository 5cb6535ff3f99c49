"""Keeps the LLM prompt's conversation history within a token budget.

A small model answers faster and better from a short prompt, and a long session
must not outgrow the context window. So the prompt is: the instructions, then a
running summary of whatever no longer fits, then the newest turns that do. Turns
are cut whole (a user message with the replies that follow it), so the model never
sees an answer without its question; the latest user turn is always kept, even
when it alone is over budget, because that is what the model must answer.

Pure: the caller owns the summary and hands the dropped messages to
``HistorySummariser``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from models.interfaces import ChatMessage

TokenCounter = Callable[[str], int]

LATIN_CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
"""Chat templates wrap each message in role markers (``<|im_start|>user\\n … <|im_end|>``): about four tokens."""
SUMMARY_PREFIX = "Summary of the earlier conversation: "


def estimate_tokens(text: str) -> int:
    """A cheap upper-leaning token estimate, good enough for budgeting without a tokenizer.

    BPE vocabularies such as Qwen's and Llama's spend about one token per four
    characters of English (spaces and punctuation included) and about one per CJK
    character (common words are sometimes a single token, so this over-counts
    Chinese a little: the safe side for a budget).
    """
    cjk = sum(1 for ch in text if _is_cjk(ch))
    return cjk + math.ceil((len(text) - cjk) / LATIN_CHARS_PER_TOKEN)


def _is_cjk(ch: str) -> bool:
    # CJK radicals to ideographs, Hangul, compatibility ideographs, full-width forms.
    return ("\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uf900" <= ch <= "\ufaff"
            or "\uff00" <= ch <= "\uffef")


@dataclass(frozen=True, slots=True)
class HistoryWindow:
    messages: tuple[ChatMessage, ...]
    """What to send: instructions, the summary (if any), then the newest turns that fit, oldest first."""
    dropped: tuple[ChatMessage, ...]
    """The older messages left out, oldest first: always a prefix of the history, for the summariser."""
    tokens: int
    """The estimated size of ``messages``."""


def summary_message(summary: str) -> ChatMessage:
    return ChatMessage(role="system", content=SUMMARY_PREFIX + summary.strip())


def fit_history(
    messages: Sequence[ChatMessage],
    *,
    budget_tokens: int,
    count_tokens: TokenCounter = estimate_tokens,
    summary: str = "",
) -> HistoryWindow:
    """Choose the messages to send. ``messages`` is the whole conversation, oldest first.

    Leading system messages are the instructions and are always sent; the rest
    is the history. The budget covers everything sent, overheads included.
    """
    split = next((i for i, m in enumerate(messages) if m.role != "system"), len(messages))
    head = list(messages[:split])
    if summary.strip():
        head.append(summary_message(summary))
    history = messages[split:]

    def cost(items: Sequence[ChatMessage]) -> int:
        return sum(count_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in items)

    used = cost(head)
    turns = _turns(history)
    start = len(history)
    for turn_start, turn_end in reversed(turns):
        size = cost(history[turn_start:turn_end])
        holds_latest_user_message = turn_end == len(history) and history[turn_start].role == "user"
        if used + size > budget_tokens and not holds_latest_user_message:
            break
        used += size
        start = turn_start
    return HistoryWindow(messages=(*head, *history[start:]), dropped=tuple(history[:start]), tokens=used)


def _turns(history: Sequence[ChatMessage]) -> list[tuple[int, int]]:
    """``[start, end)`` spans, each a user message and what follows it up to the next user message.

    Anything before the first user message (a greeting the assistant spoke first)
    is a turn of its own.
    """
    if not history:
        return []
    starts = [i for i, m in enumerate(history) if m.role == "user"]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return list(zip(starts, [*starts[1:], len(history)], strict=True))
