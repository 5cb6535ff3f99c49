"""The probe against a scripted Realtime server: a backchannel that cancels the answer is counted
lost, a short noise the server only transcribes is not, and a barge-in's client-side stop times
come from the player model (the server sends audio ahead, so a client that plays out its queue
stops later than one that flushes it)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json

import numpy as np
import pytest
import soundfile as sf
from aiohttp import WSMsgType, web

from benchmarks.corpus import Recording
from benchmarks.false_interruptions import OverlayClip
from benchmarks.realtime_probe import ProbeConfig, SessionProbe

pytestmark = pytest.mark.timeout(60)
RATE = 24_000
FRAME_S = 0.02
CANCEL_AFTER_S = 0.4
"""The scripted server's bug under test: speech over the answer longer than this cancels it."""
BACKCHANNEL_UNDER_S = 0.8
"""Shorter speech is transcribed as "uh-huh" and gets no answer."""
ANSWER_S, ANSWER_CHUNK_S, SEND_EVERY_S = 2.0, 0.1, 0.05
"""Two seconds of answer, sent at twice real time."""


class ScriptedServer:
    """Energy VAD, a fixed answer streamed ahead of real time, a cancel on long speech over it."""

    def __init__(self, *, stall_after_chunk: int | None = None, stall_s: float = 0.0) -> None:
        self._stall_after_chunk, self._stall_s = stall_after_chunk, stall_s
        self._ids = itertools.count()
        self.answering: asyncio.Task | None = None
        self.cancelled = asyncio.Event()

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        send = ws.send_json
        await send({"type": "session.created", "session": {"model": "scripted"}})
        speaking, speech_s, silence_s, over_answer = False, 0.0, 0.0, False
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                event = json.loads(msg.data)
                if event["type"] != "input_audio_buffer.append":
                    continue
                pcm = np.frombuffer(base64.b64decode(event["audio"]), "<i2").astype(np.float64)
                loud = np.sqrt(np.mean(pcm**2)) > 500
                active = self.answering is not None and not self.answering.done()
                if loud and not speaking:
                    speaking, speech_s, silence_s, over_answer = True, 0.0, 0.0, active
                    await send({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0})
                if not speaking:
                    continue
                speech_s, silence_s = (speech_s + FRAME_S, 0.0) if loud else (speech_s, silence_s + FRAME_S)
                if over_answer and active and speech_s > CANCEL_AFTER_S:
                    self.answering.cancel()
                if silence_s >= 0.2:
                    speaking = False
                    item = self._id("item")
                    await send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 0})
                    await send({"type": "input_audio_buffer.committed", "item_id": item})
                    words = "uh-huh" if speech_s < BACKCHANNEL_UNDER_S else "a real question"
                    await send({"type": "conversation.item.input_audio_transcription.completed",
                                "item_id": item, "transcript": words})
                    if words != "uh-huh":
                        await asyncio.gather(self.answering, return_exceptions=True) if self.answering else None
                        self.answering = asyncio.create_task(self._answer(send, item))
        finally:
            if self.answering is not None:
                self.answering.cancel()
        return ws

    async def _answer(self, send, user_item: str) -> None:
        rid, item = self._id("resp"), self._id("item")
        text = "Here is a complete answer."
        await send({"type": "response.created", "response": {"id": rid}})
        await send({"type": "response.output_item.added", "response_id": rid, "item": {"id": item}})
        await send({"type": "conversation.item.added", "previous_item_id": user_item,
                    "item": {"id": item, "role": "assistant"}})
        chunk = base64.b64encode(bytes(int(RATE * ANSWER_CHUNK_S) * 2)).decode()
        status, said = "completed", ""
        try:
            for i in range(int(ANSWER_S / ANSWER_CHUNK_S)):
                if i == 0:
                    await send({"type": "response.output_audio_transcript.delta", "response_id": rid, "delta": text})
                await send({"type": "response.output_audio.delta", "response_id": rid, "delta": chunk})
                said = text
                await asyncio.sleep(SEND_EVERY_S + (self._stall_s if i == self._stall_after_chunk else 0.0))
        except asyncio.CancelledError:
            status, said = "cancelled", text[:4]
            self.cancelled.set()
        await send({"type": "response.done", "response": {
            "id": rid, "status": status,
            "output": [{"type": "message", "content": [{"type": "output_audio", "transcript": said}]}]}})


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.25 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


async def _serve(server: ScriptedServer):
    app = web.Application()
    app.router.add_get("/v1/realtime", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"ws://127.0.0.1:{port}/v1/realtime"


@pytest.fixture
async def scripted_url():
    runner, url = await _serve(ScriptedServer())
    yield url
    await runner.cleanup()


def _question(tmp_path) -> Recording:
    question = tmp_path / "question.wav"
    sf.write(question, np.concatenate([_tone(1.0), np.zeros(RATE // 10, np.float32)]), RATE)
    return Recording(question, "en", "a real question")


@pytest.mark.parametrize("stall_s", [0.0, 0.6])
async def test_the_probe_measures_the_silence_inside_an_answer(tmp_path, stall_s):
    """Five chunks (0.5 s of audio) arrive in 0.25 s; a stall of 0.6 s after them leaves the client's
    queue dry from 0.5 s to 0.85 s: 0.35 s of silence inside the answer. No stall: none."""
    runner, url = await _serve(ScriptedServer(stall_after_chunk=4, stall_s=stall_s))
    try:
        probe = SessionProbe(ProbeConfig(url=url, pause_after_answer_s=0.1, turn_timeout_s=20),
                             session_index=0, concurrency=1)
        await probe.run([(_question(tmp_path), None)], barge_in_offset_ms=300)
    finally:
        await runner.cleanup()
    (turn,) = probe.turns
    assert turn.status == "completed"
    expected_ms = max(0.0, stall_s - 0.25) * 1000
    assert turn.answer_gaps_ms == pytest.approx(expected_ms, abs=60)


async def test_probe_counts_lost_answers_and_client_stop_times(scripted_url, tmp_path):
    recording = _question(tmp_path)
    backchannel = OverlayClip("backchannel", "uh-huh@0.6x", "en", _tone(0.6), RATE)
    noise = OverlayClip("noise", "click", "", _tone(0.2), RATE)
    probe = SessionProbe(ProbeConfig(url=scripted_url, pause_after_answer_s=0.1, turn_timeout_s=20),
                         session_index=0, concurrency=1)
    plan = [(recording, None), (recording, recording), (recording, None)]
    await probe.run(plan, barge_in_offset_ms=300, overlays={0: backchannel, 2: noise}, false_interrupt_offset_ms=300)

    lost, kept = probe.false_interruptions
    assert (lost.kind, lost.status, lost.heard, lost.heard_as) == ("backchannel", "played", True, "uh-huh")
    assert (lost.lost, lost.reason, lost.answer_status, lost.new_responses) == (True, "cancelled", "cancelled", 0)
    assert (kept.kind, kept.status, kept.heard, kept.heard_as) == ("noise", "played", True, "uh-huh")
    assert (kept.lost, kept.reason, kept.answer_status, kept.resumed) == (False, "", "completed", False)
    assert kept.done_transcript_chars == kept.answer_chars > 0 and not kept.answered_clip

    (barge,) = probe.barge_ins
    assert barge.status == "cancelled"
    # The cancel comes 0.4 s into the interruption; by then the client has about as much audio queued
    # again as it has played (the answer is sent at twice real time), so playing it out takes longer.
    assert 0 <= barge.client_flush_stop_ms <= barge.speech_started_ms + 50
    assert barge.client_stop_ms > barge.cancel_ms + 200
    assert [t.status for t in probe.turns] == ["cancelled", "cancelled", "completed", "completed"]
