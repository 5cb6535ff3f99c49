"""Cleaned chat logs turned into stored conversations: one turn per user message and the answer
after it, the whole conversation kept together so that exports keep the context."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from thinking.conversation_logs.records import LoggedConversation
from thinking.training_data.dataset_records import RecordedTurn, Source, StoredConversation


@dataclass
class ImportReport:
    conversations: int = 0
    turns: int = 0
    left_out: Counter[str] = field(default_factory=Counter)
    """Messages that made no turn, by reason."""


def stored_conversation(logged: LoggedConversation, source: Source, report: ImportReport) -> StoredConversation | None:
    """``None`` when no user message in it was answered."""
    instructions = "\n".join(m.content for m in logged.messages if m.role == "system")
    messages = [m for m in logged.messages if m.role != "system"]
    turns: list[RecordedTurn] = []
    i = 0
    while i < len(messages):
        message = messages[i]
        if message.role == "assistant":
            # Before the first user message (the other side spoke first), or a second answer.
            report.left_out["assistant message with no user message before it"] += 1
            i += 1
            continue
        answer = messages[i + 1] if i + 1 < len(messages) and messages[i + 1].role == "assistant" else None
        if answer is None:
            report.left_out["user message never answered"] += 1
            i += 1
            continue
        turns.append(RecordedTurn(
            item_id=f"{logged.id}/{len(turns) + 1}", user_text=message.content,
            answer_generated=answer.content, answer_heard=answer.content,
            started_at=message.time.timestamp() if message.time else 0.0))
        i += 2
    if not turns:
        return None
    report.conversations += 1
    report.turns += len(turns)
    return StoredConversation(id=f"{source}:{logged.id}", source=source, started_at=turns[0].started_at,
                              instructions=instructions, title=logged.title, turns=turns)
