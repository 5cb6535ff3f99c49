"""One session's stuck model call must cost another session nothing.

Two real sessions share the stage executors, as every session of a server does. The turn
model hangs on session A's audio. Session B's turn-model jobs, queued behind A's stuck call on
the same stage, move to the fresh worker when A's deadline passes: B's appends all go through,
each of B's turns is answered, and A's own turn ends by the silence rule.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from models.interfaces import Transcript
from server.config import AssistantSection, Config
from server.engines import Executors
from tests.server.session_harness import ScriptedChat, SessionHarness
from tests.server.test_barge_in_session import LoudnessVAD, _pcm

A_LEVEL, B_LEVEL = 0.6, 0.3


class HangsOnLoudTurns:
    """An end-of-turn model that never answers for session A's (louder) audio."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def end_of_turn_probability(self, audio: np.ndarray) -> float:
        self.calls += 1
        if float(np.abs(audio).max()) > (A_LEVEL + B_LEVEL) / 2:
            self.release.wait(30)
        return 0.9


async def _turn(harness: SessionHarness, level: float) -> None:
    for _ in range(8):
        await harness.send({"type": "input_audio_buffer.append", "audio": _pcm(0.1, level)})
    for _ in range(4):
        await harness.send({"type": "input_audio_buffer.append", "audio": _pcm(0.1, 0.0)})


async def test_a_hung_turn_model_for_one_session_leaves_the_other_untouched(make_session):
    turn_model = HangsOnLoudTurns()
    executors = Executors()
    config = dataclasses.replace(Config(), assistant=AssistantSection(turn_model_timeout_s=0.5))
    update = {"type": "session.update", "session": {
        "type": "realtime", "output_modalities": ["text"],
        "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}}}}
    a = await make_session(llm=ScriptedChat(["Yes."]), vad=LoudnessVAD(), turn=turn_model, executors=executors,
                           config=config)
    b = await make_session(llm=ScriptedChat(["Fine."]), vad=LoudnessVAD(), turn=turn_model, executors=executors,
                           config=config)
    try:
        for harness in (a, b):
            await harness.send(update)
        a.engines.asr.transcripts.append(Transcript("Hello from A.", "en"))
        await _turn(a, A_LEVEL)
        await a.until("input_audio_buffer.speech_stopped", timeout=2)  # A's turn-model call is now stuck
        for n in range(1, 4):
            b.engines.asr.transcripts.append(Transcript(f"Question {n} from B.", "en"))
            await _turn(b, B_LEVEL)
            done = await b.until("response.done", count=n, timeout=10)
            assert done["response"]["status"] == "completed"
        assert b.of_type("error") == []  # no append of B's was dropped, no engine error reached it
        transcripts = [e["transcript"] for e in b.of_type("conversation.item.input_audio_transcription.completed")]
        assert transcripts == ["Question 1 from B.", "Question 2 from B.", "Question 3 from B."]
        # A's own turn was not lost either: past the deadline the silence rule ended it.
        a_done = await a.until("response.done", timeout=10)
        assert a_done["response"]["status"] == "completed"
        assert executors.turn.replacements == 1
        assert not a.session.closed and not b.session.closed
    finally:
        turn_model.release.set()
