"""PreemptiveAnswer: buffered tokens replayed on adoption, the engine's stream closed on discard."""

from __future__ import annotations

import asyncio

import pytest

from models.interfaces import ChatMessage, GenerationParams
from server import preemptive_answer
from server.preemptive_answer import PreemptiveAnswer, PreparedRequest

pytestmark = pytest.mark.timeout(10)
REQUEST = PreparedRequest([ChatMessage("user", "hello")], GenerationParams())


class Engine:
    def __init__(self, tokens: list[str], *, fail_after: int | None = None) -> None:
        self.tokens, self.fail_after = tokens, fail_after
        self.closed = asyncio.Event()
        self.read = 0

    async def stream_chat(self, messages, params):
        try:
            for i, token in enumerate(self.tokens):
                if self.fail_after is not None and i == self.fail_after:
                    raise RuntimeError("engine died")
                self.read += 1
                yield token
                await asyncio.sleep(0)
            await asyncio.Event().wait()  # a stream that is never finished: only a close ends it
        finally:
            self.closed.set()


async def _prepared() -> PreparedRequest:
    return REQUEST


def _start(engine, outcomes) -> PreemptiveAnswer:
    answer = PreemptiveAnswer(user_text="hello", prepare=_prepared, llm=engine,
                              on_outcome=lambda outcome, s: outcomes.append(outcome))
    answer.task = asyncio.create_task(answer.run())
    return answer


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.001)


async def test_adoption_replays_the_buffer_then_the_live_stream_and_closes_it_with_the_response():
    engine, outcomes = Engine(["a", "b", "c"]), []
    answer = _start(engine, outcomes)
    await _until(lambda: engine.read == 3)
    assert answer.matches(REQUEST)
    assert not answer.matches(PreparedRequest([ChatMessage("user", "hello there")], GenerationParams()))
    stream = answer.adopt()
    assert [await anext(stream) for _ in range(3)] == ["a", "b", "c"]
    await stream.aclose()  # the response ended early (a barge-in)
    await asyncio.wait_for(engine.closed.wait(), 2)
    await asyncio.gather(answer.task, return_exceptions=True)
    assert outcomes == ["kept"]


async def test_discard_closes_the_engines_stream_without_waiting():
    engine, outcomes = Engine(["a"]), []
    answer = _start(engine, outcomes)
    await _until(lambda: engine.read == 1)
    answer.discard()
    await asyncio.wait_for(engine.closed.wait(), 2)
    assert outcomes == ["discarded"] and not answer.matches(REQUEST)
    await asyncio.gather(answer.task, return_exceptions=True)


async def test_reading_ahead_stops_at_the_bound_until_adopted(monkeypatch):
    monkeypatch.setattr(preemptive_answer, "MAX_BUFFERED_TOKENS", 2)
    engine, outcomes = Engine(["a", "b", "c", "d"]), []
    answer = _start(engine, outcomes)
    await _until(lambda: engine.read == 2)
    for _ in range(20):
        await asyncio.sleep(0)
    assert engine.read == 2  # held at the bound
    stream = answer.adopt()
    assert [await anext(stream) for _ in range(4)] == ["a", "b", "c", "d"]
    await stream.aclose()
    await asyncio.gather(answer.task, return_exceptions=True)


async def test_an_engine_error_reaches_the_response_that_adopts_it():
    engine, outcomes = Engine(["a", "b"], fail_after=1), []
    answer = _start(engine, outcomes)
    await answer.task
    assert not answer.matches(REQUEST)  # a failed speculation is never adopted
