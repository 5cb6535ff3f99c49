"""What a real session hands the recorder, on scripted engines (the embedded models' path is in
tests/e2e/test_recording.py): one turn per answered user turn, a failed answer flagged and paired
with its apology, a client tool's call and output kept with the answer that used them, the
persona's mode over the server's, and nothing at all when recording is off."""

from __future__ import annotations

import dataclasses
import pytest

from models.interfaces import ToolCall, Transcript
from server.config import AssistantSection, Config, DataSection
from server.thinking_services import ThinkingServices
from server.turn_recorder import TurnRecorder
from tests.server.session_harness import ScriptedASR, ScriptedChat, SilentTTS, open_session, utterance
from thinking.personas import Persona, PersonaLibrary
from thinking.training_data.data_store import TrainingDataStore

pytestmark = pytest.mark.timeout(60)


class FailingChat:
    async def stream_chat(self, messages, params):
        raise RuntimeError("the LLM is down")
        yield ""  # pragma: no cover


class ClientToolThenAnswer:
    """Calls the client's ``lookup`` first; once its output is in the prompt, answers with it."""

    async def stream_chat(self, messages, params):
        if messages[-1].role == "tool":
            yield f"It says {messages[-1].content}."
            return
        yield ToolCall(call_id="call_1", name="lookup", arguments='{"q": "hours"}')


def _config(record: str) -> Config:
    return dataclasses.replace(Config(), data=DataSection(record=record),
                               assistant=AssistantSection(llm_first_token_timeout_s=0.5))


async def _recorded(tmp_path, record: str, llm, *, personas: list[Persona] = (), script=None):
    recorder = TurnRecorder(tmp_path / "data")
    recorder.start()
    services = ThinkingServices(personas=PersonaLibrary(list(personas)))
    asr = ScriptedASR()
    harness = await open_session(llm=llm, tts=SilentTTS(), asr=asr, config=_config(record), thinking=services,
                                 recorder=recorder)
    try:
        await script(harness, asr)
        await harness.settled()
    finally:
        await harness.aclose()
    assert recorder.close(timeout_s=10)
    if not (tmp_path / "data" / "data.sqlite").exists():
        return harness, []
    with TrainingDataStore(tmp_path / "data") as store:
        return harness, store.conversations()


async def _typed_turn(harness, asr) -> None:
    await harness.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    await harness.say("When do you open?")
    await harness.send({"type": "response.create"})
    await harness.until("response.done")


async def test_a_spoken_and_a_typed_turn_are_kept_once_each_with_their_answers(tmp_path):
    async def script(harness, asr):
        asr.transcripts.append(Transcript("What is your name?", "en"))
        await harness.session.turns.on_speech_started(0)
        await harness.session.turns.on_utterance(utterance(1.5))
        await harness.until("response.done")
        await harness.say("你们几点开门？")
        await harness.send({"type": "response.create"})
        await harness.until("response.done", count=2)

    harness, conversations = await _recorded(tmp_path, "audio", ScriptedChat(["I am ", "Tingshuo."]), script=script)
    (conversation,) = conversations
    assert conversation.id == harness.session.settings.id and conversation.source == "recorded"
    assert conversation.instructions == harness.session.settings.instructions
    spoken, typed = conversation.turns
    assert (spoken.user_text, spoken.answer_generated, spoken.answer_heard) == (
        "What is your name?", "I am Tingshuo.", "I am Tingshuo.")
    assert spoken.language == "en" and not spoken.interrupted and spoken.failure == ""
    assert spoken.latency_ms["transcript_final"] >= spoken.latency_ms["turn_end"]
    assert spoken.user_audio.endswith(".user.wav") and spoken.assistant_audio.endswith(".assistant.wav")
    import soundfile as sf

    audio, rate = sf.read(tmp_path / "data" / spoken.user_audio)
    assert rate == 16_000 and len(audio) == 24_000
    answer, answer_rate = sf.read(tmp_path / "data" / spoken.assistant_audio)
    assert answer_rate == 24_000 and len(answer) > 0
    assert typed.user_text == "你们几点开门？" and typed.language == "zh" and typed.user_audio == ""


async def test_a_failed_answer_is_kept_with_its_apology_and_flagged(tmp_path):
    _, conversations = await _recorded(tmp_path, "text", FailingChat(), script=_typed_turn)
    (turn,) = conversations[0].turns
    assert turn.failure == "llm"
    apology = "Sorry, I can't answer right now. Please try again in a moment."
    assert turn.answer_generated == turn.answer_heard == apology


async def test_a_client_tool_call_and_its_output_are_kept_with_the_answer_that_used_them(tmp_path):
    async def script(harness, asr):
        await harness.send({"type": "session.update", "session": {
            "type": "realtime", "output_modalities": ["text"],
            "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]}})
        await harness.say("When do you open?")
        await harness.send({"type": "response.create"})
        await harness.until("response.function_call_arguments.done")
        await harness.until("response.done")
        await harness.send({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": "call_1", "output": "nine to five"}})
        await harness.send({"type": "response.create"})
        await harness.until("response.done", count=2)

    _, conversations = await _recorded(tmp_path, "text", ClientToolThenAnswer(), script=script)
    (conversation,) = conversations
    (turn,) = conversation.turns
    assert turn.answer_generated == "It says nine to five."
    assert [(c.name, c.arguments, c.result) for c in turn.tool_calls] == [("lookup", '{"q": "hours"}', "nine to five")]
    assert [t["name"] for t in conversation.tools] == ["lookup"]


async def test_the_personas_mode_wins_over_the_servers_and_a_switch_applies_at_once(tmp_path):
    quiet = Persona(id="quiet", version=2, name="Q", language="en", instructions="Be brief.", record="off",
                    llm_adapter="brief-lora")
    kept = dataclasses.replace(quiet, id="kept", record="text")

    async def script(harness, asr):
        await harness.send({"type": "session.update", "session": {"type": "realtime", "prompt": {"id": "quiet"}}})
        assert harness.session.capture.mode == "off"
        await _typed_turn(harness, asr)
        await harness.send({"type": "session.update", "session": {"type": "realtime", "prompt": {"id": "kept"}}})
        assert harness.session.capture.mode == "text"
        await harness.say("And on Monday?")
        await harness.send({"type": "response.create"})
        await harness.until("response.done", count=2)

    _, conversations = await _recorded(tmp_path, "audio", ScriptedChat(["Nine."]), personas=[quiet, kept],
                                       script=script)
    (conversation,) = conversations
    assert [t.user_text for t in conversation.turns] == ["And on Monday?"]  # the first, said under 'off', is not
    assert (conversation.persona_id, conversation.persona_version) == ("kept", "2")
    assert conversation.adapter == "brief-lora" and conversation.instructions.startswith("Be brief.")
    assert conversation.turns[0].user_audio == ""  # 'text': no audio, though the server says 'audio'


async def test_off_records_nothing_and_creates_no_store(tmp_path):
    harness, conversations = await _recorded(tmp_path, "off", ScriptedChat(["Nine."]), script=_typed_turn)
    assert conversations == [] and not (tmp_path / "data").exists()
    assert harness.session.capture.mode == "off"
