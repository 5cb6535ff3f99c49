"""Folds the turns that fell out of the prompt's window into a short running summary.

``summarise`` is one LLM call: the previous summary plus the dropped messages in,
an updated summary (about 80 words, in the conversation's language) out, within a
timeout. ``HistorySummariser`` runs it in the background for a session: one
summarisation at a time, a newer request replacing a queued older one, failures
logged with the old summary kept. Its caller owns it and calls ``aclose()``.

The summary lags the window by one summarisation: a turn that has just fallen
out is missing from the prompt until its summary lands, a few seconds later.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass

from models.interfaces import ChatMessage, ChatModel, GenerationParams
from thinking.history_budget import estimate_tokens

logger = logging.getLogger(__name__)

CJK_CHARS_PER_WORD = 1.5
"""For the length cap: 80 English words say about as much as 120 Chinese characters."""


class SummaryError(RuntimeError):
    """The LLM gave no usable summary."""


@dataclass(frozen=True, slots=True)
class SummaryParams:
    max_words: int = 80
    timeout_s: float = 20.0
    """For the whole call, first token to last; a slow or stuck LLM fails it and the old summary stays."""
    max_output_tokens: int = 200
    temperature: float = 0.2
    max_input_tokens: int = 1500
    """Dropped messages are summarised in batches of at most this many tokens, so one call never
    outgrows the model's context however long the backlog."""
    max_message_chars: int = 1200
    """A single huge message (a pasted document) is cut to this in the summariser's prompt."""


# Worded by trial on the embedded Qwen2.5-0.5B: in English it summarises best when the task comes
# last, after the transcript; in Chinese it parrots the transcript unless the task is in the system
# message. Both ask for the third person so the summary reads as notes, not as the user speaking.
_EN_SYSTEM = "You are a helpful assistant."
_EN_TASK = (
    "In at most {max_words} words, write a summary of the whole conversation: who the user is, what they "
    "talked about, and what they like or need. Answer in the third person as one short paragraph."
)
_ZH_SYSTEM = (
    "你负责为用户和语音助手之间的对话维护一份简短的摘要。把新的对话内容合并进之前的摘要。"
    "保留人名、关于用户的事实、偏好、决定和未解决的问题；省略问候和闲聊。"
    "用中文写，不超过{max_chars}个字，只写摘要正文，不要标题、列表或开场白。"
)
_PREAMBLE = re.compile(
    r"^\s*(?:\*\*)?(?:updated\s+)?(?:summary|摘要|总结|更新后的摘要|新的对话内容)(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*",
    re.IGNORECASE,
)
"""A heading small models like to start with ("Summary:", 摘要：), cut off."""


def is_chinese(text: str) -> bool:
    """Mostly Chinese: a CJK character counted as two Latin letters (it says about as much), CJK wins."""
    cjk = sum(1 for ch in text if "\u3400" <= ch <= "\u9fff")
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    return cjk * 2 > latin


def summary_prompt(messages: Sequence[ChatMessage], *, previous: str, params: SummaryParams) -> list[ChatMessage]:
    """The chat to send; Chinese for a Chinese conversation: small models answer in the prompt's language."""
    chinese = is_chinese(previous + "".join(m.content for m in messages))
    lines = []
    for m in messages:
        content = " ".join(m.content.split())[: params.max_message_chars]
        speaker = {"user": "用户" if chinese else "User", "assistant": "助手" if chinese else "Assistant"}.get(m.role)
        lines.append(f"{speaker or ('系统' if chinese else 'System')}: {content}")
    transcript = "\n".join(lines)
    if chinese:
        system = _ZH_SYSTEM.format(max_chars=int(params.max_words * CJK_CHARS_PER_WORD))
        user = f"之前的摘要：{previous.strip() or '（无）'}\n\n新的对话：\n{transcript}\n\n请写出更新后的摘要。"
    else:
        system = _EN_SYSTEM
        head = f"Summary so far: {previous.strip()}\n\nMore conversation:\n" if previous.strip() else "Conversation:\n"
        user = f"{head}{transcript}\n\n{_EN_TASK.format(max_words=params.max_words)}"
    return [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)]


def clean_summary(text: str, *, max_words: int) -> str:
    """The model's answer without a "Summary:" preamble, cut to the length cap at a sentence end if one is near."""
    text = _PREAMBLE.sub("", " ".join(text.split())).strip()
    if is_chinese(text):
        limit = int(max_words * CJK_CHARS_PER_WORD)
        if len(text) <= limit:
            return text
        cut = text[:limit]
        end = max(cut.rfind(p) for p in "。！？；")
        return cut[: end + 1] if end >= limit // 2 else cut
    words = text.split()
    if len(words) <= max_words:
        return text
    cut = " ".join(words[:max_words])
    end = max(cut.rfind(p) for p in ".!?")
    return cut[: end + 1] if end >= len(cut) // 2 else cut


async def summarise(
    llm: ChatModel, messages: Sequence[ChatMessage], *, previous: str = "", params: SummaryParams = SummaryParams()
) -> str:
    """The previous summary updated with ``messages``. Raises TimeoutError or SummaryError; cancellable.

    Closing the token stream on the way out (timeout or cancel) is what stops the
    generation and frees the model for the conversation.
    """
    prompt = summary_prompt(messages, previous=previous, params=params)
    # background: on llama-server a slot of its own, apart from every conversation's prompt cache
    generation = GenerationParams(max_tokens=params.max_output_tokens, temperature=params.temperature,
                                  purpose="background")
    parts: list[str] = []
    async with asyncio.timeout(params.timeout_s):
        async with aclosing(llm.stream_chat(prompt, generation)) as stream:  # type: ignore[type-var]
            async for token in stream:
                parts.append(token)
    summary = clean_summary("".join(parts), max_words=params.max_words)
    if not summary:
        raise SummaryError("the LLM returned an empty summary")
    return summary


def batches(messages: Sequence[ChatMessage], *, max_tokens: int) -> list[tuple[ChatMessage, ...]]:
    """Consecutive runs of ``messages`` of at most ``max_tokens`` (estimated) each; never an empty run."""
    out: list[tuple[ChatMessage, ...]] = []
    current: list[ChatMessage] = []
    size = 0
    for m in messages:
        cost = estimate_tokens(m.content)
        if current and size + cost > max_tokens:
            out.append(tuple(current))
            current, size = [], 0
        current.append(m)
        size += cost
    if current:
        out.append(tuple(current))
    return out


class HistorySummariser:
    """A session's running summary, updated in the background as turns fall out of the window.

    ``request(dropped)`` takes the window's whole dropped prefix each time; what the
    summary already covers is skipped, so asking again is cheap. If the conversation
    was edited (an item deleted) and the prefix no longer matches, the summary is
    rebuilt from the start.
    """

    def __init__(self, *, llm: ChatModel, params: SummaryParams = SummaryParams()) -> None:
        self._llm = llm
        self._params = params
        self._summary = ""
        self._covered: tuple[ChatMessage, ...] = ()
        self._pending: tuple[ChatMessage, ...] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def summary(self) -> str:
        """The latest good summary ("" until the first one lands)."""
        return self._summary

    @property
    def covered(self) -> tuple[ChatMessage, ...]:
        """The dropped messages the summary already takes in."""
        return self._covered

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def request(self, dropped: Sequence[ChatMessage]) -> None:
        """Bring the summary up to ``dropped``. Returns at once; a request made while one runs replaces
        any request still waiting, and runs when the current one ends (so progress is never starved)."""
        dropped = tuple(dropped)
        self._pending = None if dropped == self._covered else dropped
        if self._pending is None:
            return
        if not self.busy:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="history-summariser")

    async def wait(self) -> None:
        """Until no summarisation runs or waits (tests; flushing before a session's summary is stored)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    def cancel(self) -> None:
        """Stop the running summarisation (the model is needed elsewhere); the summary stays as it was."""
        self._pending = None
        if self._task is not None:
            self._task.cancel()

    async def aclose(self) -> None:
        """Cancel and wait: no task outlives its session."""
        self.cancel()
        if self._task is not None:
            await asyncio.wait({self._task})
            self._task = None

    async def _run(self) -> None:
        while self._pending is not None:
            dropped, self._pending = self._pending, None
            if dropped[: len(self._covered)] != self._covered:
                # Edited history: what the summary says may be about a deleted item, so it goes at once.
                self._summary, self._covered = "", ()
            summary, covered = self._summary, self._covered
            for batch in batches(dropped[len(covered) :], max_tokens=self._params.max_input_tokens):
                if self._pending is not None and self._pending[: len(covered)] != covered:
                    break  # the conversation changed under us; the newer request starts over
                try:
                    summary = await summarise(self._llm, batch, previous=summary, params=self._params)
                except Exception:
                    logger.warning("history summary failed; keeping the previous one", exc_info=True)
                    break
                covered += batch
                self._summary, self._covered = summary, covered
