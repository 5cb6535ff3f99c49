"""The LLM's prompt for one answer: instructions, what it remembers, what it looked up, recent turns.

Pure, so what the model is told can be tested without a model. Everything optional
adds nothing when empty: a question the knowledge base cannot answer costs no
prompt tokens (every token is prompt-processing time before the first word).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from models.interfaces import ChatMessage
from thinking.history_budget import MESSAGE_OVERHEAD_TOKENS, HistoryWindow, estimate_tokens, fit_history

PASSAGES_HEADER_EN = ("Reference passages from the operator's documents. Use them when they answer the "
                      "question; do not read out the bracketed source names.")
PASSAGES_HEADER_ZH = "以下是运营方资料中的参考段落。能回答问题时请依据它们回答；不要念出方括号里的出处。"


class CitablePassage(Protocol):
    text: str

    def citation(self) -> str: ...


@dataclass(frozen=True)
class PromptParts:
    instructions: str
    memory: str = ""
    """What the user asked it to remember and earlier conversations (``Recollection.prompt_text()``)."""
    passages: tuple[CitablePassage, ...] = ()
    language: str | None = None


def system_prompt(parts: PromptParts) -> str:
    """The stable head: instructions and what it remembers. It changes only when a memory does,
    so llama.cpp reuses its evaluation (and the history's after it) from turn to turn."""
    sections = [parts.instructions.strip()]
    if parts.memory.strip():
        sections.append(parts.memory.strip())
    return "\n\n".join(s for s in sections if s)


def turn_context(parts: PromptParts) -> str:
    """This turn's passages: sent just before the user's message, so that changing them each
    turn costs only their own tokens, not a re-read of the whole conversation."""
    sections: list[str] = []
    if parts.passages:
        header = PASSAGES_HEADER_ZH if parts.language == "zh" else PASSAGES_HEADER_EN
        lines = "\n".join(f"{p.citation()} {' '.join(p.text.split())}" for p in parts.passages)
        sections.append(f"{header}\n{lines}")
    return "\n\n".join(sections)


def assemble(parts: PromptParts, history: Sequence[ChatMessage], *, budget_tokens: int,
             summary: str = "") -> HistoryWindow:
    """The messages to send within ``budget_tokens``; ``dropped`` is what the summariser should take in."""
    context = turn_context(parts)
    reserve = estimate_tokens(context) + MESSAGE_OVERHEAD_TOKENS if context else 0
    window = fit_history([ChatMessage(role="system", content=system_prompt(parts)), *history],
                         budget_tokens=budget_tokens - reserve, summary=summary)
    if not context:
        return window
    messages = list(window.messages)
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=len(messages))
    messages.insert(last_user, ChatMessage(role="system", content=context))
    return HistoryWindow(messages=tuple(messages), dropped=window.dropped, tokens=window.tokens + reserve)


def citations_line(passages: Sequence[CitablePassage]) -> str:
    """Shown at the end of the transcript, never spoken."""
    seen: list[str] = []
    for passage in passages:
        if (c := passage.citation()) not in seen:
            seen.append(c)
    return " ".join(seen)
