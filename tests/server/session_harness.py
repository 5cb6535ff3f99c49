"""One way to run a real :class:`RealtimeSession` on scripted engines, for the tests of one component.

The session, its turns, its responder and its runner are the product's; the engines are
stand-ins, and the session's events are collected instead of going over a socket. Tests
drive it through its public seam: ``handle_text`` (client events), ``turns`` (the input
hooks the VAD would call) and ``tasks``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.interfaces import Transcript
from server.audio_input import Utterance
from server.config import Config
from server.engines import Engines, Executors
from server.metrics import ServerMetrics
from server.session import RealtimeSession
from server.thinking_services import ThinkingServices
from server.turn_recorder import TurnRecorder


class QuietVAD:
    """Never hears speech, unless a test sets ``speaking``."""

    frame_samples = 512

    def __init__(self) -> None:
        self.speaking = False

    def open_stream(self):
        return self

    def speech_probability(self, frame) -> float:
        return 1.0 if self.speaking else 0.0

    def reset(self) -> None: ...


class ScriptedASR:
    """Returns the queued transcripts in order, as Whisper would after each turn ("" when none is queued)."""

    def __init__(self) -> None:
        self.transcripts: list[Transcript] = []
        self.calls = 0

    def open_stream(self, *, language=None):
        asr = self
        self.calls += 1

        class _Stream:
            def accept_audio(self, samples):
                return None

            def finish(self) -> Transcript:
                return asr.transcripts.pop(0) if asr.transcripts else Transcript("", "en")

        return _Stream()


class SilentTTS:
    """A working TTS: a tenth of a second of silence per sentence."""

    sample_rate = 16_000

    def synthesize(self, text, *, voice=None, speed=1.0):
        yield np.zeros(1600, np.int16)


class ScriptedChat:
    """Sends ``tokens`` and ends: a working LLM."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens

    async def stream_chat(self, messages, params):
        for token in self.tokens:
            yield token


def utterance(seconds: float = 1.0) -> Utterance:
    return Utterance(audio=np.zeros(int(16_000 * seconds), np.float32), speech_end_at=None,
                     turn_end_at=time.monotonic(), end_reason="test")


@dataclass
class SessionHarness:
    session: RealtimeSession
    engines: Engines
    sent: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.sent if e["type"] == kind]

    async def until(self, kind: str, count: int = 1, timeout: float = 5.0, where=None) -> dict[str, Any]:
        """The ``count``-th event of ``kind`` (matching ``where``), waiting up to ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [e for e in self.of_type(kind) if where is None or where(e)]
            if len(found) >= count:
                return found[count - 1]
            if loop.time() > deadline:
                raise AssertionError(f"no {kind} (#{count}) within {timeout} s in {[e['type'] for e in self.sent]}")
            await asyncio.sleep(0.005)

    async def settled(self, timeout: float = 5.0) -> None:
        """Waits until the session owns no running task (every turn and response has ended)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.session.tasks) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        assert not len(self.session.tasks), [t.get_name() for t in self.session.tasks.pending]

    async def send(self, event: dict[str, Any]) -> None:
        await self.session.handle_text(json.dumps(event))

    async def say(self, text: str) -> None:
        await self.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})

    async def aclose(self) -> None:
        await self.session.aclose()
        self.engines.executors.shutdown()


async def open_session(*, llm=None, tts=None, asr=None, vad=None, partials=None, mandarin_partials=None, turn=None,
                       config: Config | None = None, thinking: ThinkingServices | None = None,
                       executors: Executors | None = None, start: bool = True,
                       recorder: TurnRecorder | None = None) -> SessionHarness:
    engines = Engines(vad=vad or QuietVAD(), turn=turn, asr=asr or ScriptedASR(), llm=llm, tts=tts,
                      executors=executors or Executors(), partials=partials, mandarin_partials=mandarin_partials)
    sent: list[dict[str, Any]] = []

    async def send_text(text: str) -> None:
        sent.append(json.loads(text))

    async def send_bytes(data: bytes) -> None: ...

    session = RealtimeSession(config=config or Config(), engines=engines, metrics=ServerMetrics(),
                              send_text=send_text, send_bytes=send_bytes, thinking=thinking, recorder=recorder)
    harness = SessionHarness(session=session, engines=engines, sent=sent)
    if start:
        await session.start()
    return harness
