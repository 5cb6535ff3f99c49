"""A session's thinking when its parts are missing or broken: an empty knowledge base adds
nothing to the prompt, a corrupt memory file is reported once and the conversation goes on,
and a memory request without a user id gets a plain answer."""

from __future__ import annotations

import threading
import time

import pytest

from models.e5_embedder import E5Embedder
from models.interfaces import ChatMessage
from server.config import Config
from server.session_thinking import SessionThinking
from server.thinking_services import ThinkingServices
from thinking.knowledge_base import KnowledgeBase
from thinking.personas import PersonaLibrary
from thinking.user_memory import UserMemory


@pytest.fixture(scope="module")
def embedder():
    return E5Embedder.load()


def _thinking(services: ThinkingServices, reports: list) -> SessionThinking:
    async def report(code: str, message: str) -> None:
        reports.append((code, message))

    return SessionThinking(services=services, llm=None, config=Config(), session_id="sess_t", report=report)


async def test_an_empty_knowledge_base_adds_nothing_to_the_prompt(tmp_path, embedder):
    kb = KnowledgeBase.open(tmp_path / "kb.sqlite", embedder=embedder, create=True)
    reports: list = []
    thinking = _thinking(ThinkingServices(personas=PersonaLibrary([]), knowledge=kb), reports)
    prepared = await thinking.prepare(instructions="Be brief.", history=[ChatMessage("user", "When do you open?")],
                                      query="When do you open?", language="en")
    assert prepared.citations == "" and reports == []
    assert prepared.messages[0] == ChatMessage("system", "Be brief.")
    kb.close()


async def test_a_corrupt_memory_file_is_reported_once_and_the_session_goes_on(tmp_path):
    path = tmp_path / "memory.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    reports: list = []
    thinking = _thinking(ThinkingServices(personas=PersonaLibrary([]), memory=UserMemory(path=path)), reports)
    await thinking.start("user-1")
    await thinking.on_user_words("Please remember that I like tea.", "en")
    assert thinking.take_confirmation() == "Sorry, my memory isn't working right now."
    await thinking.on_user_words("Please remember that I like coffee.", "en")
    assert [code for code, _ in reports] == ["memory_unavailable"]
    prepared = await thinking.prepare(instructions="Be brief.", history=[ChatMessage("user", "Hi")], query="Hi",
                                      language="en")
    assert prepared.messages[-1] == ChatMessage("user", "Hi")


async def test_a_memory_request_without_a_user_id_is_answered_plainly(tmp_path):
    reports: list = []
    thinking = _thinking(ThinkingServices(personas=PersonaLibrary([]), memory=UserMemory(path=tmp_path / "m.sqlite")),
                         reports)
    await thinking.start(None)
    await thinking.on_user_words("请记住我的生日是五月三日", "zh")
    assert thinking.take_confirmation() == "抱歉，这里我没法在对话之间记住事情。"
    assert thinking.take_confirmation() is None  # said once
    await thinking.on_user_words("What's the weather like?", "en")
    assert thinking.take_confirmation() is None and reports == []


async def test_an_older_fact_that_matches_the_question_joins_the_recalled_ones(tmp_path):
    memory = UserMemory(path=tmp_path / "m.sqlite")
    memory.remember("u1", "my bicycle is locked at the north gate")
    for i in range(12):  # newer facts push it out of the start-of-session recall (10)
        memory.remember("u1", f"note number {i} about the weather")
    thinking = _thinking(ThinkingServices(personas=PersonaLibrary([]), memory=memory), [])
    await thinking.start("u1")
    prepared = await thinking.prepare(instructions="Be brief.", history=[ChatMessage("user", "Where is my bicycle?")],
                                      query="Where is my bicycle?", language="en")
    system = prepared.messages[0].content
    assert "note number 11" in system and "north gate" in system
    unrelated = await thinking.prepare(instructions="Be brief.", history=[ChatMessage("user", "Hello")],
                                       query="Hello", language="en")
    assert "north gate" not in unrelated.messages[0].content
    memory.close()


class _SlowOnceMemory:
    """A memory whose ``relevant`` lookup hangs past the deadline once, then answers at once."""

    def __init__(self, memory: UserMemory) -> None:
        self._memory = memory
        self.slow = threading.Event()
        self.slow.set()

    def __getattr__(self, name):
        return getattr(self._memory, name)

    def relevant(self, user_id, query, k=3):
        if self.slow.is_set():
            self.slow.clear()
            time.sleep(1.5)  # past MEMORY_TIMEOUT_S (1 s)
        return self._memory.relevant(user_id, query, k=k)


async def test_one_missed_memory_deadline_does_not_turn_memory_off_for_the_session(tmp_path):
    memory = UserMemory(path=tmp_path / "m.sqlite")
    memory.remember("u1", "my bicycle is locked at the north gate")
    for i in range(12):
        memory.remember("u1", f"note number {i} about the weather")
    services = ThinkingServices(personas=PersonaLibrary([]), memory=_SlowOnceMemory(memory))
    reports: list = []
    thinking = _thinking(services, reports)
    await thinking.start("u1")
    question = [ChatMessage("user", "Where is my bicycle?")]
    first = await thinking.prepare(instructions="Be brief.", history=question, query="Where is my bicycle?",
                                   language="en")
    assert "north gate" not in first.messages[0].content  # this turn went ahead without the slow lookup
    assert [code for code, _ in reports] == ["memory_unavailable"]
    second = await thinking.prepare(instructions="Be brief.", history=question, query="Where is my bicycle?",
                                    language="en")
    assert "north gate" in second.messages[0].content  # the next turn has its memory back
    services.executor.shutdown(wait=False)
    memory.close()


async def test_waiting_behind_a_slow_search_is_not_a_memory_failure(tmp_path):
    """Memory, knowledge search and tools share one thread: time spent queued behind a two-second
    knowledge search does not count against memory's one-second deadline."""
    memory = UserMemory(path=tmp_path / "m.sqlite")
    memory.remember("u1", "my bicycle is locked at the north gate")
    services = ThinkingServices(personas=PersonaLibrary([]), memory=memory)
    reports: list = []
    thinking = _thinking(services, reports)
    await thinking.start("u1")
    busy = services.executor.submit(time.sleep, 2.0)  # a slow search, as the knowledge tool runs it
    prepared = await thinking.prepare(instructions="Be brief.", history=[ChatMessage("user", "Where is my bicycle?")],
                                      query="Where is my bicycle?", language="en")
    assert busy.done()  # the memory lookup really did wait behind it
    assert reports == [] and "north gate" in prepared.messages[0].content
    services.executor.shutdown(wait=False)
    memory.close()
