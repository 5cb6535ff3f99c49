"""The prompt's history window: whole turns, newest first, the latest user message always kept."""

from __future__ import annotations

import pytest

from models.interfaces import ChatMessage
from thinking.history_budget import (
    MESSAGE_OVERHEAD_TOKENS,
    SUMMARY_PREFIX,
    HistoryWindow,
    estimate_tokens,
    fit_history,
)


def S(text: str) -> ChatMessage:
    return ChatMessage("system", text)


def U(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def A(text: str) -> ChatMessage:
    return ChatMessage("assistant", text)


def words(text: str) -> int:
    """A counter the tables can be read against: one token per word."""
    return len(text.split())


O = MESSAGE_OVERHEAD_TOKENS  # noqa: E741

CONVERSATION = [S("be brief"), U("one"), A("two two"), U("three three three"), A("four"), U("five five")]
# costs with `words`: system 2+O, u1 1+O, a2 2+O, u3 3+O, a4 1+O, u5 2+O

CASES = [
    # (name, messages, budget, summary, kept (after the head), dropped)
    ("everything fits", CONVERSATION, 100, "", CONVERSATION[1:], []),
    ("only the latest user turn fits", CONVERSATION, (2 + O) + (2 + O), "", [U("five five")], CONVERSATION[1:5]),
    ("a pair is never split: the whole older turn or none",
     CONVERSATION, (2 + O) + (2 + O) + (1 + O), "", [U("five five")], CONVERSATION[1:5]),
    ("two turns fit", CONVERSATION, (2 + O) + (2 + O) + (1 + O) + (3 + O), "",
     [U("three three three"), A("four"), U("five five")], CONVERSATION[1:3]),
    ("the summary's cost comes out of the budget",
     CONVERSATION, (2 + O) + (2 + O) + (1 + O) + (3 + O), "so far",
     [U("five five")], CONVERSATION[1:5]),
    ("the latest user message is kept even over budget", CONVERSATION, 1, "", [U("five five")], CONVERSATION[1:5]),
    ("a latest turn with its answer is kept whole",
     [S("be brief"), U("one"), A("two two"), U("three three three"), A("four")], 1, "",
     [U("three three three"), A("four")], [U("one"), A("two two")]),
    ("an assistant greeting before any user message is a turn of its own",
     [S("be brief"), A("hello there"), U("hi"), A("how can I help")], (2 + O) + (1 + O) + (4 + O), "",
     [U("hi"), A("how can I help")], [A("hello there")]),
    ("a system item inside the history travels with its turn",
     [S("be brief"), U("one"), S("note"), A("two"), U("three")], (2 + O) + (1 + O), "",
     [U("three")], [U("one"), S("note"), A("two")]),
    ("no history at all", [S("be brief")], 10, "", [], []),
    ("no user message at all: the budget rules alone",
     [S("be brief"), A("a long greeting from the assistant")], 3, "", [], [A("a long greeting from the assistant")]),
]


@pytest.mark.parametrize("name,messages,budget,summary,kept,dropped", CASES, ids=[c[0] for c in CASES])
def test_fit_history(name, messages, budget, summary, kept, dropped):
    window = fit_history(messages, budget_tokens=budget, count_tokens=words, summary=summary)
    head = [messages[0]] + ([S(SUMMARY_PREFIX + summary)] if summary else [])
    assert list(window.messages) == head + kept
    assert list(window.dropped) == dropped
    assert window.tokens == sum(words(m.content) + O for m in window.messages)


def test_within_budget_whenever_the_latest_turn_allows():
    history = [S("instructions " * 20)]
    for n in range(40):
        history += [U(f"question {n} " * 5), A(f"answer {n} " * 12)]
    history.append(U("and the last question?"))
    for budget in (150, 300, 600, 1000):
        window = fit_history(history, budget_tokens=budget, summary="The user asked forty questions.")
        assert window.tokens <= budget
        assert window.messages[0] == history[0]
        assert window.messages[1].content.startswith(SUMMARY_PREFIX)
        assert window.messages[2].role == "user" and window.messages[-1] == history[-1]
        assert list(window.dropped) + list(window.messages[2:]) == history[1:]


def test_several_leading_system_messages_are_all_instructions():
    messages = [S("be brief"), S("the user is called Li Wei"), U("hi")]
    window = fit_history(messages, budget_tokens=1, summary="earlier")
    assert [m.content for m in window.messages] == ["be brief", "the user is called Li Wei",
                                                    SUMMARY_PREFIX + "earlier", "hi"]


def test_a_blank_summary_adds_no_message():
    window = fit_history([S("x"), U("hi")], budget_tokens=100, summary="  ")
    assert window == HistoryWindow(messages=(S("x"), U("hi")), dropped=(), tokens=2 * O + 2)


@pytest.mark.parametrize("text,tokens", [
    ("", 0),
    ("abcd", 1),
    ("Hello, world!", 4),  # 13 characters
    ("你好世界", 4),
    ("今天天气很好。", 7),  # the full-width stop counts as CJK
    ("我叫Li Wei", 2 + 2),  # two CJK characters, six Latin characters
])
def test_estimate_tokens(text, tokens):
    assert estimate_tokens(text) == tokens
