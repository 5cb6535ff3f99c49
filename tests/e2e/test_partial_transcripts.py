"""Live preview transcripts over a real WebSocket: they arrive while the user is still speaking."""

from __future__ import annotations

import numpy as np
import pytest

from tests.e2e.realtime_client import load_speech, silence
from tests.e2e.scoring import error_rate

pytestmark = pytest.mark.e2e

DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"
REFERENCE = "Sunday is the best part of the week."


def _no_response(transcription: dict | None = None) -> dict:
    audio_input: dict = {"turn_detection": {"type": "semantic_vad", "create_response": False}}
    if transcription is not None:
        audio_input["transcription"] = transcription
    return {"type": "session.update", "session": {"type": "realtime", "audio": {"input": audio_input}}}


async def _speak_at_microphone_pace(client) -> dict:
    speech = np.concatenate([silence(0.5), load_speech("en/en_harvard_spk1_snt5.wav"), silence(2.0)])
    await client.send_audio(speech, realtime_factor=1.0)
    return await client.wait_for(COMPLETED, timeout=60)


async def test_english_previews_arrive_before_speech_stops_and_whisper_has_the_last_word(connect):
    client = await connect()
    await client.send(_no_response({"model": "whisper-base", "language": "en"}))
    await client.wait_for("session.updated")
    completed = await _speak_at_microphone_pace(client)
    started = client.of_type("input_audio_buffer.speech_started")[0]
    stopped = client.of_type("input_audio_buffer.speech_stopped")[0]
    committed = client.of_type("input_audio_buffer.committed")[0]
    deltas = client.of_type(DELTA)
    before_stop = [e for e in client.events[: client.events.index(stopped)] if e["type"] == DELTA]
    print("preview deltas:", [e["delta"] for e in deltas], f"({len(before_stop)} before speech_stopped)",
          "final:", completed["transcript"])
    assert before_stop, "no preview while the user was speaking"
    item_id = started["item_id"]
    assert {e["item_id"] for e in deltas} == {item_id}
    assert stopped["item_id"] == committed["item_id"] == completed["item_id"] == item_id
    assert client.events.index(deltas[-1]) < client.events.index(completed)
    preview = "".join(e["delta"] for e in deltas)
    assert set(preview.split()) & {"sunday", "best", "part", "week"}, preview
    # Whisper's transcript is not appended again as a delta: clients concatenating deltas see the preview only.
    assert completed["transcript"] not in [e["delta"] for e in deltas]
    assert error_rate([REFERENCE], [completed["transcript"]], "en") <= 0.15


async def test_a_mandarin_session_gets_mandarin_previews_while_speaking(connect):
    # The embedded Whisper decodes the growing turn (models/whisper_partials.py): Mandarin words
    # arrive while the user is still talking, append-only, and the final transcript replaces them.
    client = await connect()
    await client.send(_no_response({"model": "whisper-base", "language": "zh"}))
    updated = await client.wait_for("session.updated")
    assert updated["session"]["audio"]["input"]["transcription"]["language"] == "zh"
    reference = "近几年不但我用书给女儿压岁也劝说亲朋不要给女儿压岁钱而改送压岁书"
    speech = np.concatenate([silence(0.5), load_speech("zh/zh_masr_test.wav"), silence(2.0)])
    await client.send_audio(speech, realtime_factor=1.0)
    completed = await client.wait_for(COMPLETED, timeout=60)
    started = client.of_type("input_audio_buffer.speech_started")[0]
    stopped = client.of_type("input_audio_buffer.speech_stopped")[0]
    deltas = client.of_type(DELTA)
    before_stop = [e for e in client.events[: client.events.index(stopped)] if e["type"] == DELTA]
    preview = "".join(e["delta"] for e in deltas)
    print("preview deltas:", [e["delta"] for e in deltas], f"({len(before_stop)} before speech_stopped)",
          "final:", completed["transcript"])
    assert before_stop, "Mandarin words did not arrive while the user was speaking"
    assert {e["item_id"] for e in deltas} == {started["item_id"]} == {completed["item_id"]}
    assert preview and not any(ch.isascii() and ch.isalpha() for ch in preview), preview  # no English guesses
    assert error_rate([reference[:len(preview)]], [preview], "zh") <= 0.35, preview
    assert completed["transcript"] not in [e["delta"] for e in deltas]
    assert error_rate([reference], [completed["transcript"]], "zh") <= 0.25


async def test_an_english_session_gets_no_mandarin_previews(connect):
    client = await connect()
    await client.send(_no_response({"model": "whisper-base", "language": "en"}))
    await client.wait_for("session.updated")
    await _speak_at_microphone_pace(client)
    assert not any("\u4e00" <= ch <= "\u9fff" for e in client.of_type(DELTA) for ch in e["delta"])
