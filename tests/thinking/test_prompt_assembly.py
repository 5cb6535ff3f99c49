"""The prompt keeps a stable head (instructions, memories) and puts this turn's passages
just before the user's message, so llama.cpp's prefix cache survives from turn to turn."""

from __future__ import annotations

from dataclasses import dataclass

from models.interfaces import ChatMessage
from thinking.prompt_assembly import PromptParts, assemble, citations_line


@dataclass(frozen=True)
class _Passage:
    text: str
    source: str

    def citation(self) -> str:
        return f"[{self.source}]"


HISTORY = [ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello!"), ChatMessage("user", "When do you open?")]


def test_passages_go_just_before_the_last_user_message_and_the_head_stays_the_same():
    plain = assemble(PromptParts(instructions="Be brief.", memory="The user is Li."), HISTORY, budget_tokens=1500)
    grounded = assemble(PromptParts(instructions="Be brief.", memory="The user is Li.",
                                    passages=(_Passage("Open 9 to 5.", "hours.md"),), language="en"),
                        HISTORY, budget_tokens=1500)
    assert grounded.messages[:3] == plain.messages[:3]  # system head, "Hi", "Hello!": a shared prefix
    context = grounded.messages[3]
    assert context.role == "system" and "[hours.md] Open 9 to 5." in context.content
    assert grounded.messages[4] == HISTORY[-1] and len(grounded.messages) == len(plain.messages) + 1
    assert grounded.tokens > plain.tokens


def test_the_context_is_counted_against_the_budget_and_chinese_gets_a_chinese_header():
    long_history = [ChatMessage("user" if i % 2 == 0 else "assistant", "word " * 60) for i in range(20)]
    long_history.append(ChatMessage("user", "门票多少钱？"))
    passages = (_Passage("成人票十四欧元。" * 20, "museum.md"),)
    window = assemble(PromptParts(instructions="简短回答。", passages=passages, language="zh"), long_history,
                      budget_tokens=500)
    assert window.tokens <= 500 + 10 and window.dropped
    assert "参考段落" in window.messages[-2].content and window.messages[-1].content == "门票多少钱？"
    assert citations_line(passages + passages) == "[museum.md]"
