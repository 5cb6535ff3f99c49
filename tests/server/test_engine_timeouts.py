"""An LLM, TTS or ASR that hangs or fails: an error event, an apology (aloud when the TTS works,
as text when it does not), and the session goes on. The session and runner are real; the
engines are stand-ins that hang or fail on purpose."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import numpy as np

from models.interfaces import ChatMessage, GenerationParams
from server.config import AssistantSection, Config
from server.engines import Engines, Executors
from server.metrics import ServerMetrics
from server.audio_input import Utterance
from server.session import RealtimeSession
from tests.server.test_session_partials import _QuietVAD, _ScriptedASR


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


class SilentTTS:
    """A working TTS: a tenth of a second of silence per sentence."""

    sample_rate = 16_000

    def synthesize(self, text, *, voice=None, speed=1.0):
        yield np.zeros(1600, np.int16)


class FailingASR:
    def open_stream(self, *, language=None):
        raise RuntimeError("the recogniser crashed")


class HangingTTS:
    sample_rate = 16_000

    def synthesize(self, text, *, voice=None, speed=1.0):
        import time

        time.sleep(1.0)  # longer than the test's limit
        yield np.zeros(1600, np.int16)


async def run(llm, tts=None, *, modality: str, responses: int = 2) -> tuple[list[dict], HangingChat]:
    """``response.create`` once; returns every event once ``responses`` responses are done."""
    sent: list[dict] = []

    async def send_text(text: str) -> None:
        sent.append(json.loads(text))

    async def send_bytes(data: bytes) -> None: ...

    config = dataclasses.replace(Config(), assistant=AssistantSection(
        llm_first_token_timeout_s=0.3, llm_token_timeout_s=0.3, tts_chunk_timeout_s=0.3))
    engines = Engines(vad=_QuietVAD(), turn=None, asr=_ScriptedASR(), llm=llm, tts=tts, executors=Executors())
    session = RealtimeSession(config=config, engines=engines, metrics=ServerMetrics(), send_text=send_text,
                              send_bytes=send_bytes)
    await session.start()
    await session.handle_text(json.dumps({"type": "session.update", "session": {"type": "realtime",
                                                                               "output_modalities": [modality]}}))
    await session.handle_text(json.dumps({"type": "response.create"}))
    for _ in range(300):
        await asyncio.sleep(0.01)
        if sum(e["type"] == "response.done" for e in sent) >= responses:
            break
    # the session still serves requests
    await session.handle_text(json.dumps({"type": "conversation.item.retrieve", "item_id": "nope", "event_id": "e1"}))
    await session.aclose()
    engines.executors.shutdown()
    return sent, llm


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
    sent, _ = await run(HangingChat(["Hello there. "]), SilentTTS(), modality="audio")
    await asyncio.sleep(0.3)
    assert [r["status"] for r in _responses(sent)] == ["failed"]


async def test_a_failed_recogniser_is_followed_by_a_spoken_request_to_repeat():
    sent: list[dict] = []

    async def send_text(text: str) -> None:
        sent.append(json.loads(text))

    async def send_bytes(data: bytes) -> None: ...

    engines = Engines(vad=_QuietVAD(), turn=None, asr=FailingASR(), llm=HangingChat([]), tts=SilentTTS(),
                      executors=Executors())
    session = RealtimeSession(config=Config(), engines=engines, metrics=ServerMetrics(), send_text=send_text,
                              send_bytes=send_bytes)
    await session.start()
    await session.on_speech_started(0)
    await session.on_utterance(Utterance(audio=np.zeros(16_000, np.float32), speech_end_at=None,
                                         turn_end_at=time.monotonic(), end_reason="silence"))
    for _ in range(300):
        await asyncio.sleep(0.01)
        if _responses(sent):
            break
    await session.aclose()
    engines.executors.shutdown()
    failed = next(e for e in sent if e["type"] == "conversation.item.input_audio_transcription.failed")
    assert "the recogniser crashed" in failed["error"]["message"]
    (apology,) = _responses(sent)
    assert _text_of(apology) == "Sorry, I didn't catch that. Could you say it again?"


async def test_an_llm_that_answers_with_no_words_is_a_failure_with_an_apology():
    sent, _ = await run(ScriptedChat([]), SilentTTS(), modality="audio")
    failed, apology = _responses(sent)
    assert failed["status"] == "failed"
    assert any("no words" in e["error"]["message"] for e in sent if e["type"] == "error")
    assert _text_of(apology).startswith("Sorry, I can't answer right now")
