"""End to end over a real WebSocket against ``tingshuo serve`` with the real embedded models."""

from __future__ import annotations

import asyncio
import urllib.request

import numpy as np
import pytest

from server.latency import STAGES
from tests.e2e.realtime_client import load_speech, silence
from tests.e2e.scoring import error_rate, manifest

pytestmark = pytest.mark.e2e

# Measured on this project's 2-core machine with Whisper base (int8): English WER 0.0 %, Mandarin CER 12.2 %
# over the shared recordings (see README). The bounds leave headroom for CPU-dependent decoding noise.
MAX_WER_EN = 0.08
MAX_CER_ZH = 0.20
PUSH_TO_TALK = {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}}


async def transcribe_via_server(client, relative: str) -> str:
    # At 3.3x real time: the server drops audio past 4x once its 30 s burst is spent, and sent all at
    # once the eleventh English file lost its second half ("1,0001 9021" for 8.3 s of digits).
    await client.send_audio(load_speech(relative), realtime_factor=0.3)
    await client.send({"type": "input_audio_buffer.commit"})
    committed = await client.wait_for("input_audio_buffer.committed", count=len(client.of_type("input_audio_buffer.committed")) + 1)
    done = await client.wait_for("conversation.item.input_audio_transcription.completed", timeout=60,
                                 where=lambda e: e["item_id"] == committed["item_id"])
    return done["transcript"]


@pytest.mark.parametrize("language,bound", [("en", MAX_WER_EN), ("zh", MAX_CER_ZH)])
async def test_transcripts_of_real_speech_within_bound(connect, language, bound):
    client = await connect()
    await client.send(PUSH_TO_TALK)
    await client.wait_for("session.updated")
    rows = [r for r in manifest() if r["language"] == language and not r["file"].startswith("long/")]
    hyps = [await transcribe_via_server(client, r["file"]) for r in rows]
    rate = error_rate([r["reference"] for r in rows], hyps, language)
    print(f"{language}: error rate {rate:.3f} over {len(rows)} files: {hyps}")
    assert client.of_type("error") == []  # no audio dropped on the way
    assert rate <= bound
    assert not client.of_type("response.created"), "push-to-talk commits must not start a response by themselves"


async def test_spoken_turn_gets_a_spoken_answer_matching_its_transcript(connect, whisper):
    client = await connect()
    await client.send_audio(load_speech("en/en_deepspeech_new_home.wav"), realtime_factor=0.25)
    await client.send_audio(silence(2.5), realtime_factor=0.25)
    started = await client.wait_for("input_audio_buffer.speech_started", timeout=30)
    stopped = await client.wait_for("input_audio_buffer.speech_stopped", timeout=30)
    assert stopped["audio_end_ms"] > started["audio_start_ms"] + 2000
    user = await client.wait_for("conversation.item.input_audio_transcription.completed", timeout=60)
    assert error_rate(["We must find a new home in the stars."], [user["transcript"]], "en") <= 0.15
    done = await client.wait_for("response.done", timeout=120)
    response = done["response"]
    assert response["status"] == "completed"
    transcript = response["output"][0]["content"][0]["transcript"]
    assert transcript.strip()
    audio = client.response_audio(response["id"])
    assert len(audio) > 24_000 * 0.5
    heard = whisper(audio.astype(np.float32) / 32768, 24_000)
    wer = error_rate([transcript], [heard], "en")
    print(f"answer {transcript!r} heard back as {heard!r}: WER {wer:.2f}")
    assert wer <= 0.25
    latency = response["latency"]
    for stage in STAGES:
        assert latency[stage] is not None, stage
    assert latency["speech_end"] <= latency["turn_end"] <= latency["transcript_final"] <= latency["llm_request"]
    assert latency["llm_request"] <= latency["first_llm_token"] <= latency["first_tts_chunk"]
    assert latency["first_tts_chunk"] <= latency["first_tts_audio"] <= latency["first_audio_sent"]
    deltas = "".join(e["delta"] for e in client.of_type("response.output_audio_transcript.delta")
                     if e["response_id"] == response["id"])
    assert deltas == transcript


async def test_barge_in_cancels_the_answer_and_truncates_history(connect):
    client = await connect()
    await client.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "Tell me a long story about a dragon who learns to bake bread. "
                                                   "Use at least ten sentences."}]}})
    await client.send({"type": "response.create", "response": {"max_output_tokens": 400}})
    created = await client.wait_for("response.created")
    first_id = created["response"]["id"]
    await client.wait_for("response.output_audio.delta", timeout=60)
    await asyncio.sleep(1.0)
    # The user talks over the answer, as a microphone would: in real time.
    await client.send_audio(load_speech("en/en_harvard_spk1_snt5.wav"), realtime_factor=1.0)
    await client.send_audio(silence(2.0), realtime_factor=1.0)
    done = await client.wait_for("response.done", where=lambda e: e["response"]["id"] == first_id, timeout=30)
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"]["reason"] == "turn_detected"
    done_index = client.events.index(done)
    stale = [e for e in client.events[done_index:]
             if e["type"] == "response.output_audio.delta" and e["response_id"] == first_id]
    assert stale == [], "audio of the cancelled answer arrived after response.done"
    heard = done["response"]["output"][0]["content"][0]["transcript"]
    sent_text = "".join(e["delta"] for e in client.of_type("response.output_audio_transcript.delta")
                        if e["response_id"] == first_id)
    assert sent_text.startswith(heard.rstrip())
    sent_ms = len(client.response_audio(first_id)) / 24
    assert sent_ms > 500
    # What the model will see next: the truncated text, and the new user turn answered.
    second = await client.wait_for("response.done", count=2, timeout=120)
    assert second["response"]["status"] == "completed"
    user_items = [e for e in client.of_type("conversation.item.input_audio_transcription.completed")]
    assert "sunday" in user_items[-1]["transcript"].lower()


async def test_noise_alone_starts_no_turn(connect):
    client = await connect()
    await client.send_audio(load_speech("noise/noise_koala_noise.wav"), realtime_factor=0.25)
    await client.send_audio(silence(2.0), realtime_factor=0.25)
    await asyncio.sleep(2.0)
    assert client.of_type("input_audio_buffer.speech_started") == []
    assert client.of_type("input_audio_buffer.committed") == []
    assert client.of_type("response.created") == []


async def test_binary_audio_and_16khz_session(connect, whisper):
    client = await connect("?audio=binary")
    # Instructions without the assistant's name: a CI run's answer said "Tingshuo", which Whisper heard as
    # "think she will" (WER 0.31 over a 13-word answer); this test is about the 16 kHz path, not names.
    await client.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["audio"],
                       "instructions": "You are a friendly voice assistant. Reply in one short sentence of plain words.",
                       "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None},
                                 "output": {"format": {"type": "audio/pcm", "rate": 16000}}}}})
    updated = await client.wait_for("session.updated")
    assert updated["session"]["audio"]["input"]["format"]["rate"] == 16000
    await client.send_audio(load_speech("en/en_harvard_spk1_snt3.wav", rate=16_000), rate=16_000, binary=True)
    await client.send({"type": "input_audio_buffer.commit"})
    done = await client.wait_for("conversation.item.input_audio_transcription.completed", timeout=60)
    assert error_rate(["At that high level the air is pure."], [done["transcript"]], "en") <= 0.15
    await client.send({"type": "response.create"})
    response = (await client.wait_for("response.done", timeout=120))["response"]
    assert response["status"] == "completed"
    assert client.of_type("response.output_audio.delta") == []  # audio came as binary frames
    audio = np.frombuffer(b"".join(client.binary_frames), dtype="<i2")
    assert len(audio) > 16_000 * 0.5
    transcript = response["output"][0]["content"][0]["transcript"]
    # Its words: Whisper hears Piper's 16 kHz audio with some slips ("pure at" heard "purant", a
    # name heard as three words: 0.5 and 0.31 in CI runs), and it hears speech at the wrong rate
    # too (24 kHz samples played at 16 kHz read back at 0.19-0.5), so the rate is checked by length.
    assert error_rate([transcript], [whisper(audio.astype(np.float32) / 32768, 16_000)], "en") <= 0.6
    expected_s = _piper_seconds(transcript)
    assert 0.75 * expected_s <= len(audio) / 16_000 <= 1.3 * expected_s, (len(audio) / 16_000, expected_s)


def _piper_seconds(text: str) -> float:
    """How long the embedded English voice takes to say ``text``, synthesized here at its own rate."""
    from models import embedded_store
    from models.piper_tts import PiperSynthesizer
    from tests.e2e.conftest import REPO

    voice = PiperSynthesizer(model_path=embedded_store.ensure_model(embedded_store.PIPER_JOE, REPO / "var" / "models")
                             / "en_US-joe-medium.onnx")
    return sum(len(chunk) for chunk in voice.synthesize(text)) / voice.sample_rate


async def test_metrics_expose_stage_latencies(connect, server_url):
    client = await connect()
    await client.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    await client.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello."}]}})
    await client.send({"type": "response.create"})
    done = await client.wait_for("response.done", timeout=60)
    assert done["response"]["status"] == "completed"
    assert client.of_type("response.output_text.delta")
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(server_url + "/metrics").read().decode())
    assert 'tingshuo_turn_stage_seconds_count{stage="first_llm_token"}' in body
    assert 'tingshuo_responses_total{status="completed"}' in body


async def test_short_sound_during_the_answer_does_not_cancel_it(connect):
    client = await connect()
    await client.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "Describe the ocean in three sentences."}]}})
    await client.send({"type": "response.create", "response": {"max_output_tokens": 120}})
    created = await client.wait_for("response.created")
    await client.wait_for("response.output_audio.delta", timeout=60)
    # 250 ms of real speech (a syllable, a cough-length sound), then silence, at microphone pace.
    blip = load_speech("en/en_harvard_spk1_snt5.wav")[int(0.35 * 24_000) : int(0.60 * 24_000)]
    await client.send_audio(np.concatenate([silence(0.3), blip, silence(1.5)]), realtime_factor=1.0)
    done = await client.wait_for("response.done", where=lambda e: e["response"]["id"] == created["response"]["id"],
                                 timeout=120)
    assert done["response"]["status"] == "completed"
    assert client.of_type("input_audio_buffer.speech_started") == []


async def test_mandarin_turn_gets_a_mandarin_spoken_answer(connect, whisper):
    client = await connect()
    await client.send({"type": "session.update", "session": {
        "type": "realtime", "instructions": "你是一个语音助手。请用一两句简短的中文回答。"}})
    await client.send_audio(load_speech("zh/zh_funasr_asr_example.wav"), realtime_factor=0.25)
    await client.send_audio(silence(2.5), realtime_factor=0.25)
    user = await client.wait_for("conversation.item.input_audio_transcription.completed", timeout=60)
    assert error_rate(["欢迎大家来体验达摩院推出的语音识别模型"], [user["transcript"]], "zh") <= 0.25
    spoken = (await client.wait_for("response.done", timeout=180))["response"]
    assert spoken["status"] == "completed"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in spoken["output"][0]["content"][0]["transcript"])
    assert len(client.response_audio(spoken["id"])) > 24_000 * 0.5
    # Intelligibility, on an answer made of real words (the spoken turn above may echo ASR slips).
    await client.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "请用一句话介绍一下北京。"}]}})
    await client.send({"type": "response.create"})
    response = (await client.wait_for("response.done", count=2, timeout=180))["response"]
    assert response["status"] == "completed"
    transcript = response["output"][0]["content"][0]["transcript"]
    heard = whisper(client.response_audio(response["id"]).astype(np.float32) / 32768, 24_000, "zh")
    cer = error_rate([transcript], [heard], "zh")
    print(f"answer {transcript!r} heard back as {heard!r}: CER {cer:.2f}")
    # Measured 0.24-0.37 (Kokoro's voices are Japanese speakers; Whisper base's own Mandarin CER is 0.12).
    assert cer <= 0.45


async def test_response_create_right_after_a_commit_waits_for_the_words(connect):
    # Push-to-talk clients send commit and response.create back to back; the answer must be to
    # the words just said: the LLM request may only start once the transcript is final.
    client = await connect()
    await client.send(PUSH_TO_TALK)
    await client.wait_for("session.updated")
    await client.send_audio(load_speech("zh/zh_funasr_asr_example.wav"))
    await client.send({"type": "input_audio_buffer.commit"})
    await client.send({"type": "response.create"})
    response = (await client.wait_for("response.done", timeout=120))["response"]
    assert response["status"] == "completed", response
    latency = response["latency"]
    assert latency["turn_end"] is not None and latency["transcript_final"] is not None, latency
    assert latency["transcript_final"] <= latency["llm_request"], latency
