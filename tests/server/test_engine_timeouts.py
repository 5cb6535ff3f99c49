"""An LLM, TTS or ASR that hangs or fails: an error event, an apology (aloud when the TTS works,
as text when it does not), and the session goes on. The session and runner are real; the
engines are stand-ins that hang or fail on purpose."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import numpy as np

from models.interfaces import ChatMessage, GenerationParams
from server.config import AssistantSection, Config
from tests.server.session_harness import SilentTTS, open_session, utterance


class HangingChat:
    """Sends ``tokens`` then hangs (an endpoint that stopped answering)."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.closed = tokens, 0

    async def stream_chat(self, messages: list[ChatMessage], params: GenerationParams):
        try:
            for token in self.tokens:
                yield token
            await asyncio.Event().wait()
        finally:
            self.closed += 1


class ScriptedChat(HangingChat):
    """Sends ``tokens`` and ends: a working LLM."""

    async def stream_chat(self, messages: list[ChatMessage], params: GenerationParams):
        for token in self.tokens:
            yield token


class FailingASR:
    def open_stream(self, *, language=None):
        raise RuntimeError("the recogniser crashed")


class HangingTTS:
    sample_rate = 16_000

    def synthesize(self, text, *, voice=None, speed=1.0):

        time.sleep(1.0)  # longer than the test's limit
        yield np.zeros(1600, np.int16)


async def run(llm, tts=None, *, modality: str, responses: int = 2) -> tuple[list[dict], HangingChat]:
    """``response.create`` once; returns every event once ``responses`` responses are done (or, when
    fewer came, after waiting 5 s for them), and the session has answered one more request."""
    config = dataclasses.replace(Config(), assistant=AssistantSection(
        llm_first_token_timeout_s=0.3, llm_token_timeout_s=0.3, tts_chunk_timeout_s=0.3))
    harness = await open_session(llm=llm, tts=tts, config=config)
    try:
        await harness.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": [modality]}})
        await harness.send({"type": "response.create"})
        await harness.until("response.done")
        try:
            await harness.until("response.done", count=responses, timeout=5)
        except AssertionError:
            pass  # the test checks how many came
        # the session still serves requests
        await harness.send({"type": "conversation.item.retrieve", "item_id": "nope", "event_id": "e1"})
        await harness.until("error", where=lambda e: e["error"].get("event_id") == "e1")
    finally:
        await harness.aclose()
    return harness.sent, llm


async def test_an_llm_that_never_starts_fails_the_response():
    sent, llm = await run(HangingChat([]), modality="text")
    done = next(e for e in sent if e["type"] == "response.done")
    assert done["response"]["status"] == "failed"
    errors = [e["error"] for e in sent if e["type"] == "error"]
    assert any("no first token for 0.3 s" in e["message"] for e in errors), errors
    assert errors[-1]["event_id"] == "e1"  # answered after the failure: the session lives on
    assert llm.closed == 1  # the stalled stream was closed, not left running


async def test_an_llm_that_stalls_mid_answer_fails_the_response():
    sent, llm = await run(HangingChat(["Hello", " there"]), modality="text")
    deltas = [e["delta"] for e in sent if e["type"] == "response.output_text.delta"]
    assert deltas == ["Hello", " there"]
    assert any("no token for 0.3 s" in e["error"]["message"] for e in sent if e["type"] == "error")
    assert llm.closed == 1


async def test_a_tts_that_hangs_fails_the_response():
    sent, _ = await run(HangingChat(["Hello there. ", "More."]), HangingTTS(), modality="audio")
    done = next(e for e in sent if e["type"] == "response.done")
    assert done["response"]["status"] == "failed"
    assert any("TTS made no audio for 0.3 s" in e["error"]["message"] for e in sent if e["type"] == "error")


def _responses(sent: list[dict]) -> list[dict]:
    return [e["response"] for e in sent if e["type"] == "response.done"]


def _text_of(response: dict) -> str:
    content = response["output"][0]["content"][0]
    return content.get("transcript") or content.get("text") or ""


async def test_a_failed_llm_is_followed_by_a_spoken_apology():
    sent, _ = await run(HangingChat([]), SilentTTS(), modality="audio")
    failed, apology = _responses(sent)
    assert failed["status"] == "failed"
    assert apology["status"] == "completed" and apology["output_modalities"] == ["audio"]
    assert _text_of(apology) == "Sorry, I can't answer right now. Please try again in a moment."
    assert any(e["type"] == "response.output_audio.delta" and e["response_id"] == apology["id"] for e in sent)


async def test_a_failed_tts_is_followed_by_a_text_apology():
    sent, _ = await run(ScriptedChat(["Hello there. ", "More."]), HangingTTS(), modality="audio")
    failed, apology = _responses(sent)
    assert failed["status"] == "failed"
    assert apology["output_modalities"] == ["text"] and apology["status"] == "completed"
    assert _text_of(apology).startswith("Sorry, I can't answer right now")


async def test_a_partly_heard_answer_gets_no_apology():
    sent, _ = await run(HangingChat(["Hello there. "]), SilentTTS(), modality="audio")  # waited 5 s for more
    assert [r["status"] for r in _responses(sent)] == ["failed"]


async def test_a_failed_recogniser_is_followed_by_a_spoken_request_to_repeat(make_session):
    harness = await make_session(asr=FailingASR(), llm=HangingChat([]), tts=SilentTTS())
    await harness.session.turns.on_speech_started(0)
    await harness.session.turns.on_utterance(utterance(1.0))
    await harness.until("response.done")
    failed = harness.of_type("conversation.item.input_audio_transcription.failed")[0]
    assert "the recogniser crashed" in failed["error"]["message"]
    (apology,) = _responses(harness.sent)
    assert _text_of(apology) == "Sorry, I didn't catch that. Could you say it again?"


async def test_an_llm_that_answers_with_no_words_is_a_failure_with_an_apology():
    sent, _ = await run(ScriptedChat([]), SilentTTS(), modality="audio")
    failed, apology = _responses(sent)
    assert failed["status"] == "failed"
    assert any("no words" in e["error"]["message"] for e in sent if e["type"] == "error")
    assert _text_of(apology).startswith("Sorry, I can't answer right now")
