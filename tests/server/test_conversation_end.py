"""A closing session tells an endpoint pool its conversation ended, so least-loaded placement
counts only open conversations (models/pooled_chat.py)."""

from __future__ import annotations

from models.endpoint_pool import EndpointPool, PoolParams
from tests.server.session_harness import ScriptedChat, SilentTTS, open_session


class PoolPlacedChat(ScriptedChat):
    """Places each conversation on a real EndpointPool as PooledChatModel does, without the HTTP."""

    def __init__(self, tokens: list[str]) -> None:
        super().__init__(tokens)
        self.pool = EndpointPool(("http://a/v1", "http://b/v1"), PoolParams())

    async def stream_chat(self, messages, params):
        self.pool.choose(params.conversation)
        async for token in super().stream_chat(messages, params):
            yield token

    def end_conversation(self, conversation: str) -> None:
        self.pool.forget(conversation)


def loads(pool: EndpointPool) -> list[int]:
    return [s.conversations for s in pool.snapshot()]


async def test_a_closed_session_no_longer_counts_on_its_endpoint():
    llm = PoolPlacedChat(["Hello there."])
    first = await open_session(llm=llm, tts=SilentTTS())
    second = await open_session(llm=llm, tts=SilentTTS())
    for harness in (first, second):
        await harness.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
        await harness.say("Hi")
        await harness.send({"type": "response.create"})
        await harness.until("response.done")
    assert loads(llm.pool) == [1, 1]
    await first.aclose()
    assert loads(llm.pool) == [0, 1]
    await second.aclose()
    assert loads(llm.pool) == [0, 0]
