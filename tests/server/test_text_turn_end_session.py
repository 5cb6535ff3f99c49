"""An unsure end-of-turn model waits less once the pause's transcript reads finished.

The real session and input pipeline; the VAD hears loudness, the recogniser and the
end-of-turn model are scripted (the model is always unsure), so the text alone decides.
"""

from __future__ import annotations

import pytest

from models.interfaces import Transcript
from tests.server.session_harness import ScriptedChat
from tests.server.test_barge_in_session import LoudnessVAD, _pcm

pytestmark = pytest.mark.timeout(30)


class UnsureTurnModel:
    def end_of_turn_probability(self, audio) -> float:
        return 0.1


async def _turn_end_reason(make_session, words: str, eagerness: str = "auto") -> str:
    harness = await make_session(llm=ScriptedChat(["Fine."]), vad=LoudnessVAD(), turn=UnsureTurnModel())
    await harness.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"],
                        "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": eagerness}}}}})
    reasons: list[str] = []
    turns = harness.session.turns
    on_utterance = turns.on_utterance

    async def recorded(utterance):
        reasons.append(utterance.end_reason)
        await on_utterance(utterance)

    turns.on_utterance = recorded
    harness.engines.asr.transcripts.append(Transcript(words, "en"))
    for _ in range(8):
        await harness.send({"type": "input_audio_buffer.append", "audio": _pcm(0.1, 0.5)})
    for _ in range(4):
        await harness.send({"type": "input_audio_buffer.append", "audio": _pcm(0.1, 0.0)})
    await harness.until("response.done", timeout=10)
    return reasons[0]


async def test_finished_words_end_an_unsure_turn_early(make_session):
    assert await _turn_end_reason(make_session, "The child almost hurt the small dog.") == "finished_text"


async def test_unfinished_words_wait_for_the_longest_silence(make_session):
    assert await _turn_end_reason(make_session, "I want to ask about") == "max_silence"


async def test_low_eagerness_keeps_its_patience(make_session):
    assert await _turn_end_reason(make_session, "The child almost hurt the small dog.", "low") == "max_silence"
