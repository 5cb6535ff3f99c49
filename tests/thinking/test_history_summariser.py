"""The running history summary: one LLM call, and the background owner that serialises and supersedes them.

Most tests script a fake chat model (it records prompts and can block, fail or
stall); the last one asks the real embedded Qwen2.5-0.5B for a summary.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from models.interfaces import ChatMessage, GenerationParams
from thinking.history_summariser import (
    HistorySummariser,
    SummaryError,
    SummaryParams,
    clean_summary,
    summarise,
)

REPO = Path(__file__).resolve().parents[2]
GGUF = REPO / "var" / "models" / "qwen2.5-0.5b" / "model.gguf"


def U(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def A(text: str) -> ChatMessage:
    return ChatMessage("assistant", text)


class FakeChatModel:
    """Answers each call with the next scripted reply, token by token.

    A reply may be an exception (raised), ``"stall"`` (one token, then waits forever)
    or text; ``gate`` (when set) holds every call before its first token.
    """

    def __init__(self, *replies: str | Exception) -> None:
        self.replies = list(replies)
        self.prompts: list[list[ChatMessage]] = []
        self.params: list[GenerationParams] = []
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.most_running = 0
        self.closed = 0

    def stream_chat(self, messages: Sequence[ChatMessage], params: GenerationParams) -> AsyncIterator[str]:
        self.prompts.append(list(messages))
        self.params.append(params)
        return self._stream(self.replies.pop(0))

    async def _stream(self, reply: str | Exception) -> AsyncIterator[str]:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if isinstance(reply, Exception):
                raise reply
            if reply == "stall":
                yield "Still "
                await asyncio.Event().wait()
            for word in reply.split(" "):
                yield word + " "
        finally:
            self.running -= 1
            self.closed += 1


@pytest.fixture
async def no_leaked_tasks():
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert leaked == [], f"tasks left running: {leaked}"


async def test_summarise_updates_the_previous_summary(no_leaked_tasks):
    llm = FakeChatModel("Summary: The user, Li Wei, is planning a trip to Hangzhou in May.")
    out = await summarise(llm, [U("I'm going to Hangzhou in May."), A("Lovely! West Lake is beautiful then.")],
                          previous="The user is called Li Wei.")
    assert out == "The user, Li Wei, is planning a trip to Hangzhou in May."
    system, user = llm.prompts[0]
    assert system.role == "system" and "In at most 80 words" in user.content
    assert user.content.startswith("Summary so far: The user is called Li Wei.\n\nMore conversation:\n")
    assert "User: I'm going to Hangzhou in May.\nAssistant: Lovely!" in user.content
    assert llm.params[0].temperature <= 0.3 and llm.closed == 1


async def test_a_chinese_conversation_gets_a_chinese_prompt(no_leaked_tasks):
    llm = FakeChatModel("用户李伟五月要去杭州旅行。")
    out = await summarise(llm, [U("我五月要去杭州。"), A("太好了，五月的西湖很美。")])
    assert out == "用户李伟五月要去杭州旅行。"
    system, user = llm.prompts[0]
    assert "用中文写" in system.content and "120个字" in system.content
    assert "之前的摘要：（无）" in user.content and "用户: 我五月要去杭州。" in user.content


async def test_an_empty_answer_is_an_error(no_leaked_tasks):
    with pytest.raises(SummaryError):
        await summarise(FakeChatModel("   "), [U("hi")])


async def test_a_stalled_llm_times_out_and_its_stream_is_closed(no_leaked_tasks):
    llm = FakeChatModel("stall")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await summarise(llm, [U("hi")], params=SummaryParams(timeout_s=0.05))
    assert time.monotonic() - started < 1.0
    assert llm.closed == 1 and llm.running == 0


@pytest.mark.parametrize("raw,expected", [
    ("**Summary:** The user likes tea.", "The user likes tea."),
    ("摘要：用户喜欢喝茶。", "用户喜欢喝茶。"),
    ("  The user\nlikes   tea. ", "The user likes tea."),
    ("One two three four five. Six seven eight nine ten.", "One two three four five."),  # at a sentence end
    ("One. Two three four five six seven eight nine ten.", "One. Two three four five six seven eight"),  # too early
    ("One two three four five six seven eight nine ten eleven twelve", "One two three four five six seven eight"),
    ("第一句话说完了。第二句话很长很长很长很长。", "第一句话说完了。"),
])
def test_clean_summary(raw, expected):
    assert clean_summary(raw, max_words=8) == expected


async def test_the_summariser_covers_what_it_was_given(no_leaked_tasks):
    llm = FakeChatModel("The user likes tea.")
    summariser = HistorySummariser(llm=llm)
    dropped = [U("I like tea."), A("Green or black?")]
    summariser.request(dropped)
    assert summariser.busy
    await summariser.wait()
    assert summariser.summary == "The user likes tea." and summariser.covered == tuple(dropped)
    summariser.request(dropped)  # nothing new: no call
    assert not summariser.busy and len(llm.prompts) == 1
    await summariser.aclose()


async def test_one_at_a_time_and_the_newest_request_wins(no_leaked_tasks):
    llm = FakeChatModel("first summary.", "second summary.")
    llm.gate = asyncio.Event()
    summariser = HistorySummariser(llm=llm)
    turns = [U("one"), A("1"), U("two"), A("2"), U("three"), A("3")]
    summariser.request(turns[:2])
    await asyncio.sleep(0)
    summariser.request(turns[:4])  # superseded before it runs
    summariser.request(turns[:6])
    llm.gate.set()
    await summariser.wait()
    assert llm.most_running == 1 and len(llm.prompts) == 2
    second = llm.prompts[1][1].content
    assert "Summary so far: first summary." in second
    assert "User: two" in second and "User: three" in second and "User: one" not in second
    assert (summariser.summary, summariser.covered) == ("second summary.", tuple(turns))
    await summariser.aclose()


async def test_a_failure_keeps_the_old_summary_and_is_logged(caplog, no_leaked_tasks):
    llm = FakeChatModel("The user likes tea.", RuntimeError("llm crashed"), "stall", "The user likes tea and cake.")
    summariser = HistorySummariser(llm=llm, params=SummaryParams(timeout_s=0.05))
    history = [U("I like tea."), A("Nice."), U("And cake."), A("Yum.")]
    summariser.request(history[:2])
    await summariser.wait()
    with caplog.at_level(logging.WARNING, logger="thinking.history_summariser"):
        summariser.request(history)
        await summariser.wait()
        assert summariser.summary == "The user likes tea." and "llm crashed" in caplog.text
        summariser.request(history)  # this time the LLM stalls past the timeout
        await summariser.wait()
        assert summariser.summary == "The user likes tea." and "TimeoutError" in caplog.text
    summariser.request(history)  # the uncovered turn is retried on the next request
    await summariser.wait()
    assert summariser.summary == "The user likes tea and cake." and summariser.covered == tuple(history)
    await summariser.aclose()


async def test_aclose_cancels_a_running_summary(no_leaked_tasks):
    llm = FakeChatModel("The user likes tea.", "stall")
    summariser = HistorySummariser(llm=llm)
    summariser.request([U("I like tea."), A("Nice.")])
    await summariser.wait()
    summariser.request([U("I like tea."), A("Nice."), U("More?"), A("Sure.")])
    while llm.running == 0:
        await asyncio.sleep(0)
    await summariser.aclose()
    assert not summariser.busy and llm.running == 0 and llm.closed == 2
    assert summariser.summary == "The user likes tea."


async def test_an_edited_history_is_summarised_again_from_the_start(no_leaked_tasks):
    llm = FakeChatModel("The user's wife is Anna; he likes tea.", "The user likes tea.")
    summariser = HistorySummariser(llm=llm)
    summariser.request([U("My wife is Anna."), A("Hi Anna!"), U("I like tea."), A("Nice.")])
    await summariser.wait()
    llm.gate = asyncio.Event()
    summariser.request([U("I like tea."), A("Nice.")])  # the first turn was deleted
    await asyncio.sleep(0)
    assert summariser.summary == ""  # what it said may be about the deleted item
    llm.gate.set()
    await summariser.wait()
    assert summariser.summary == "The user likes tea."
    assert llm.prompts[1][1].content.startswith("Conversation:\n") and "Anna" not in llm.prompts[1][1].content
    await summariser.aclose()


async def test_a_long_backlog_is_summarised_in_batches(no_leaked_tasks):
    llm = FakeChatModel("s1.", "s2.", "s3.")
    summariser = HistorySummariser(llm=llm, params=SummaryParams(max_input_tokens=30))
    backlog = [U("x" * 80), A("y" * 40), U("z" * 80), A("w" * 40), U("v" * 80)]  # 20 + 10 tokens a pair
    summariser.request(backlog)
    await summariser.wait()
    assert len(llm.prompts) == 3 and summariser.summary == "s3."
    assert "Summary so far: s1." in llm.prompts[1][1].content
    assert "Summary so far: s2." in llm.prompts[2][1].content
    await summariser.aclose()


async def test_summary_from_the_embedded_llm(no_leaked_tasks):
    """The real Qwen2.5-0.5B on two CPU threads, as the embedded server runs it."""
    if not GGUF.exists():
        pytest.skip(f"{GGUF} missing: run `tingshuo models install`")
    from models.llama_chat import LlamaChatModel, LlamaParams

    llm = LlamaChatModel(model_path=GGUF, params=LlamaParams(context_tokens=2048, threads=2))
    english = [
        U("Hi, my name is Li Wei and I'm planning a trip to Hangzhou in May."),
        A("Nice to meet you, Li Wei! May is a lovely time to visit West Lake."),
        U("I'm allergic to peanuts, so I need restaurants that can handle that."),
        A("Good to know. Many Hangzhou restaurants can cook without peanuts if you ask."),
    ]
    chinese = [
        U("我叫王芳，下个月要去北京出差三天。"),
        A("好的王芳，北京这个季节比较干燥，记得多喝水。"),
        U("我不吃辣，帮我推荐一些清淡的菜。"),
        A("可以试试北京烤鸭和清炒时蔬，都不辣。"),
    ]
    params = SummaryParams(timeout_s=60.0)
    started = time.monotonic()
    en = await summarise(llm, english, previous="", params=params)
    en_s = time.monotonic() - started
    started = time.monotonic()
    zh = await summarise(llm, chinese, previous="", params=params)
    zh_s = time.monotonic() - started
    print(f"\nembedded summary latency: en {en_s:.1f} s, zh {zh_s:.1f} s\nen: {en}\nzh: {zh}")
    assert "Li Wei" in en or "Hangzhou" in en
    assert len(en.split()) <= params.max_words
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh) and ("王芳" in zh or "北京" in zh)
    assert len(zh) <= params.max_words * 1.5
