"""After an answer, the next turn's prompt up to the user's words is read into a caching LLM's
cache (server/prompt_warmup.py): exactly the prompt the next answer then starts with."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from models.interfaces import PromptCachingChatModel
from tests.server.session_harness import ScriptedChat

pytestmark = pytest.mark.timeout(30)


class CachingChat(ScriptedChat):
    """A chat model with a prompt cache: records its prompts and its prefills."""

    def __init__(self, tokens: list[str], *, fail_prefill: bool = False) -> None:
        super().__init__(tokens)
        self.prompts: list[tuple[list, object]] = []
        self.prefills: list[tuple[list, object]] = []
        self.prefilled = asyncio.Event()
        self.fail_prefill = fail_prefill

    async def stream_chat(self, messages, params):
        self.prompts.append((list(messages), params))
        async for token in super().stream_chat(messages, params):
            yield token

    async def prefill(self, messages, params) -> None:
        self.prefills.append((list(messages), params))
        self.prefilled.set()
        if self.fail_prefill:
            raise ConnectionResetError("the LLM server went away")


class SilentTTS:
    sample_rate = 16_000

    def synthesize(self, text, *, voice=None, speed=1.0):
        yield np.zeros(160, np.int16)


async def test_a_new_session_reads_its_instructions_before_the_user_speaks(make_session):
    llm = CachingChat(["Hi", "."])
    assert isinstance(llm, PromptCachingChatModel)
    harness = await make_session(llm=llm, tts=SilentTTS())
    await asyncio.wait_for(llm.prefilled.wait(), 5)
    [(head, _)] = llm.prefills
    assert [m.role for m in head] == ["system", "user"] and head[-1].content == ""
    llm.prefilled.clear()
    await harness.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}})
    await asyncio.wait_for(llm.prefilled.wait(), 5)
    assert llm.prefills[-1][0][0].content.startswith("Be brief.")  # the new instructions, read at once
    await harness.say("Hello?")
    await harness.send({"type": "response.create"})
    await harness.until("response.done", timeout=10)
    assert llm.prompts[0][0][0] == llm.prefills[1][0][0]


async def test_the_next_prompt_head_is_read_after_an_answer_and_the_next_prompt_starts_with_it(make_session):
    llm = CachingChat(["Sure", ",", " here", " it", " is", "."])
    harness = await make_session(llm=llm, tts=SilentTTS())
    await asyncio.wait_for(llm.prefilled.wait(), 5)  # the session's start
    llm.prefilled.clear()
    await harness.say("Can you help?")
    await harness.send({"type": "response.create"})
    await harness.until("response.done", timeout=10)
    await asyncio.wait_for(llm.prefilled.wait(), 5)
    head, head_params = llm.prefills[-1]
    assert [(m.role, m.content) for m in head[-3:]] == [
        ("user", "Can you help?"), ("assistant", "Sure, here it is."), ("user", "")]

    await harness.say("Thanks.")
    await harness.send({"type": "response.create"})
    await harness.until("response.done", count=2, timeout=10)
    prompt, params = llm.prompts[1]
    assert prompt[:-1] == head[:-1]  # everything before the user's words was read ahead
    assert prompt[-1].content == "Thanks."
    assert (params.conversation, params.tools, params.adapter) == (
        head_params.conversation, head_params.tools, head_params.adapter)


async def test_a_cancelled_answer_reads_nothing_ahead_and_a_failed_prefill_costs_no_turn(make_session):
    llm = CachingChat(["Fine", "."], fail_prefill=True)
    harness = await make_session(llm=llm, tts=SilentTTS())
    await asyncio.wait_for(llm.prefilled.wait(), 5)  # the session's start (it failed)
    llm.prefilled.clear()
    await harness.say("Hello?")
    await harness.send({"type": "response.create"})
    await harness.send({"type": "response.cancel"})
    first = await harness.until("response.done", timeout=10)
    assert first["response"]["status"] == "cancelled"
    assert len(llm.prefills) == 1

    await harness.say("Hello again?")
    await harness.send({"type": "response.create"})
    await harness.until("response.done", count=2, timeout=10)
    await asyncio.wait_for(llm.prefilled.wait(), 5)  # it failed ...
    await harness.say("Still there?")
    await harness.send({"type": "response.create"})
    third = await harness.until("response.done", count=3, timeout=10)
    assert third["response"]["status"] == "completed"  # ... and the next turn is answered all the same
    assert not harness.of_type("error")
