"""Acceptance: the official openai SDK's realtime client holds a spoken conversation with the server."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest
from openai import AsyncOpenAI

from tests.e2e.conftest import API_KEY
from tests.e2e.realtime_client import load_speech, silence
from tests.e2e.scoring import error_rate

pytestmark = pytest.mark.e2e

TURN_TIMEOUT_S = 180
"""From the last audio sent to response.done (what tests/e2e/test_voice_loop.py allows a spoken turn)."""


async def test_openai_sdk_spoken_conversation(server_url, whisper):
    client = AsyncOpenAI(base_url=server_url + "/v1", api_key=API_KEY)
    async with client.realtime.connect(model="tingshuo") as conn:
        await conn.session.update(session={
            "type": "realtime",
            "instructions": "You are a helpful voice assistant. Answer in one short sentence.",
            "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}},
        })
        speech = np.concatenate([load_speech("en/en_cheetah_platforms.wav"), silence(2.5)])
        for start in range(0, len(speech), 960):
            chunk = speech[start : start + 960].astype("<i2").tobytes()
            await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
        seen: list[str] = []
        user_transcript, answer_audio, answer_transcript = "", bytearray(), ""
        done = None
        try:
            async with asyncio.timeout(TURN_TIMEOUT_S):
                async for event in conn:
                    seen.append(event.type)
                    if event.type == "conversation.item.input_audio_transcription.completed":
                        user_transcript = event.transcript
                    elif event.type == "response.output_audio.delta":
                        answer_audio += base64.b64decode(event.delta)
                    elif event.type == "response.output_audio_transcript.done":
                        answer_transcript = event.transcript
                    elif event.type == "error":
                        pytest.fail(f"server error: {event.error.message}")
                    elif event.type == "response.done":
                        done = event
                        break
        except TimeoutError:
            pytest.fail(f"no response.done within {TURN_TIMEOUT_S} s; events so far: {seen}")
        assert done is not None, f"the connection ended before response.done; events: {seen}"
        assert done.response.status == "completed", done.response
    for expected in ("session.created", "session.updated", "input_audio_buffer.speech_started",
                     "input_audio_buffer.speech_stopped", "input_audio_buffer.committed", "response.created",
                     "response.output_audio.delta", "response.output_audio.done"):
        assert expected in seen, expected
    assert error_rate(["Today only platforms one and three are used."], [user_transcript], "en") <= 0.15
    audio = np.frombuffer(bytes(answer_audio), dtype="<i2").astype(np.float32) / 32768
    heard = whisper(audio, 24_000)
    assert answer_transcript and error_rate([answer_transcript], [heard], "en") <= 0.25
