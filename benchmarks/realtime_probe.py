"""One Realtime session driven like a person: recordings said at real time, then listening.

The microphone never stops: 20-40 ms frames of speech or silence leave on a fixed real-time
schedule, as a browser's would. After each utterance the probe waits for the answer, listens
to it for as long as its audio lasts, pauses, and says the next one. Every timestamp is the
probe's own monotonic clock, taken when the event arrives; :mod:`benchmarks.probe_records`
turns those moments into the per-turn and barge-in records.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from benchmarks.barge_in_driving import BargeInDriving
from benchmarks.corpus import Recording, speech_end_secs, speech_start_secs
from benchmarks.false_interruption_driving import FalseInterruptionDriving
from benchmarks.false_interruptions import FalseInterruptionRecord, OverlayClip
from benchmarks.paced_microphone import PacedMicrophone
from benchmarks.probe_records import (BargeInRecord, ResponseTrack, TurnRecord, TurnTrack, finish_turn,
                                      score_transcript)

CONTINUATION_COMMIT_S = 4.0
"""After an answer cancelled because the user went on: how long the rest of the utterance may take
to be committed."""
CONTINUATION_ANSWER_S = 30.0
"""...and, once committed, to be answered."""


@dataclass(frozen=True)
class ProbeConfig:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    rate: int = 24_000
    frame_ms: int = 20
    pause_after_answer_s: float = 1.0
    """Silence a person leaves after the answer has played before talking again."""
    turn_timeout_s: float = 120.0
    instructions: str = ""
    transcription_model: str = "whisper-1"
    """Sent in session.update so that servers which need a model name (OpenAI's) transcribe too."""


class SessionProbe(FalseInterruptionDriving, BargeInDriving):
    """Runs a list of turns on one connection and returns their records."""

    def __init__(self, config: ProbeConfig, *, session_index: int, concurrency: int) -> None:
        self.config = config
        self.session_index = session_index
        self.concurrency = concurrency
        self.turns: list[TurnRecord] = []
        self.barge_ins: list[BargeInRecord] = []
        self.errors: list[dict[str, Any]] = []
        self.server_session: dict[str, Any] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._responses: dict[str, ResponseTrack] = {}
        self._awaiting_commit: deque[TurnTrack] = deque()
        self._awaiting_response: deque[TurnTrack] = deque()
        self._by_item: dict[str, TurnTrack] = {}
        self._item_owner: dict[str, object] = {}
        """User item → whose speech the server heard in it (``speech_started``'s ``audio_start_ms``
        on the microphone's timeline): a late commit still goes to the utterance it came from."""
        self._mic: PacedMicrophone | None = None
        self._tracks: list[TurnTrack] = []
        self._last_speech_stopped: float | None = None
        self._current: TurnTrack | None = None
        self._item_response: dict[str, str] = {}
        self._speech_started: list[float] = []
        self._created = asyncio.Event()
        self.false_interruptions: list[FalseInterruptionRecord] = []
        self._overlay: FalseInterruptionRecord | None = None
        """The false interruption being played and listened through: commits and transcripts of
        the clip are its, not a user turn's."""
        self._overlay_items: set[str] = set()
        self._overlay_start = 0.0
        self._overlay_end = 0.0
        self._overlay_heard_at: float | None = None
        self._overlay_transcribed: set[str] = set()
        self._overlay_responses_before = 0
        self._response_starts: list[float] = []
        self._overlays: dict[int, OverlayClip] = {}
        self._false_offset_ms = 1000.0

    async def _send(self, event: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps(event))

    async def _send_append(self, frame: np.ndarray) -> None:
        await self._send({"type": "input_audio_buffer.append",
                          "audio": base64.b64encode(frame.astype("<i2").tobytes()).decode("ascii")})

    # -- receiving --------------------------------------------------------------------
    async def _receive(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
                continue
            self._on_event(json.loads(msg.data), time.monotonic())

    def _on_event(self, event: dict[str, Any], now: float) -> None:
        kind = event.get("type", "")
        if kind == "session.created":
            self.server_session = event.get("session", {})
            self._created.set()
        elif kind == "error":
            self.errors.append(event.get("error", {}))
        elif kind == "input_audio_buffer.speech_started":
            self._speech_started.append(now)
            item_id, start_ms = event.get("item_id"), event.get("audio_start_ms")
            if item_id and isinstance(start_ms, (int, float)) and self._mic is not None:
                self._item_owner[item_id] = self._mic.owner_at(start_ms)
            if self._overlay is not None and not self._overlay.heard:
                self._overlay.heard, self._overlay_heard_at = True, now
        elif kind == "input_audio_buffer.speech_stopped":
            self._last_speech_stopped = now
        elif kind == "input_audio_buffer.committed":
            self._on_committed(event, now)
        elif kind == "conversation.item.input_audio_transcription.delta":
            # A live preview: a delta before the item's commit. Timed from the first voiced frame sent.
            turn = self._item_owner.get(event.get("item_id") or "")
            if (isinstance(turn, TurnTrack) and turn.record.first_partial_ms is None
                    and event.get("item_id") not in self._by_item and turn.voice_start is not None):
                turn.record.first_partial_ms = round((now - turn.voice_start) * 1000, 1)
        elif kind == "conversation.item.input_audio_transcription.completed":
            if self._overlay is not None and event.get("item_id", "") in self._overlay_items:
                self._overlay.heard_as = (self._overlay.heard_as + " " + event.get("transcript", "")).strip()
                self._overlay_transcribed.add(event.get("item_id", ""))
            elif (turn := self._by_item.get(event.get("item_id", ""))) is not None:
                turn.transcripts[event.get("item_id", "")] = event.get("transcript", "")
                joiner = "" if turn.record.language == "zh" else " "
                turn.record.transcript = joiner.join(t.strip() for t in turn.transcripts.values() if t.strip())
                if turn.speech_end is not None:
                    turn.record.transcript_ms = (now - turn.speech_end) * 1000
                turn.transcribed.set()
        elif kind == "response.created":
            rid = event["response"]["id"]
            self._responses[rid] = ResponseTrack(id=rid, created=now, done=asyncio.get_running_loop().create_future())
            self._response_starts.append(now)
        elif kind == "response.output_item.added":
            self._item_response[event.get("item", {}).get("id", "")] = event.get("response_id", "")
        elif kind == "conversation.item.added" and event.get("item", {}).get("role") == "assistant":
            self._on_answer_item(event)
        elif kind in ("response.output_audio_transcript.delta", "response.output_text.delta"):
            if (track := self._responses.get(event.get("response_id", ""))) is not None:
                track.first_text = track.first_text or now
                track.text += event.get("delta", "")
        elif kind == "response.output_audio.delta":
            if (track := self._responses.get(event.get("response_id", ""))) is not None:
                ms = len(base64.b64decode(event.get("delta", ""))) / 2 * 1000 / self.config.rate
                track.first_audio = track.first_audio or now
                track.last_audio = now
                track.audio_ms += ms
                track.playback.push(now, ms)
                if track.done_at is not None:
                    track.audio_after_done_ms += ms
        elif kind == "response.done":
            response = event.get("response", {})
            if (track := self._responses.get(response.get("id", ""))) is not None:
                track.done_at, track.status = now, response.get("status")
                track.latency = response.get("latency") or {}
                track.done_transcript = _audio_transcript(response)
                if track.done is not None and not track.done.done():
                    track.done.set_result(None)

    def _on_committed(self, event: dict[str, Any], now: float) -> None:
        owner = self._item_owner.get(event.get("item_id") or "")
        if isinstance(owner, FalseInterruptionRecord):
            if owner is self._overlay:
                self._overlay_items.add(event.get("item_id") or "")
            return  # a clip's commit, maybe judged already: never a user turn's
        if isinstance(owner, TurnTrack):
            turn = owner  # by where its speech lies in the audio, however late the commit comes
            if turn in self._awaiting_commit:
                self._awaiting_commit.remove(turn)
        elif self._awaiting_commit:
            turn = self._awaiting_commit.popleft()
        elif self._overlay is not None:
            self._overlay_items.add(event.get("item_id") or "")  # the server took the clip for a turn
            return
        elif self._current is not None and self._current.committed.is_set():
            turn = self._current  # the server cut the utterance at a pause; this is its rest
        else:
            return  # a commit of audio we did not count as a turn (noise)
        turn.record.commits += 1
        turn.item_id = event.get("item_id")
        if turn.item_id:
            turn.transcripts.setdefault(turn.item_id, "")
            turn.unanswered.add(turn.item_id)
        turn.committed_at = now
        if turn.item_id:
            self._by_item[turn.item_id] = turn
        stopped = self._last_speech_stopped
        if stopped is not None and turn.speech_end is not None and stopped >= turn.speech_start:
            turn.record.endpointing_ms = (stopped - turn.speech_end) * 1000
        self._awaiting_response.append(turn)
        turn.committed.set()

    def _on_answer_item(self, event: dict[str, Any]) -> None:
        """Match an answer to the user turn it follows (``previous_item_id``), else to the oldest
        turn still waiting: a commit the server answers not at all (or as part of a longer
        utterance) must not shift every later answer onto the wrong turn."""
        track = self._responses.get(self._item_response.get(event["item"].get("id", ""), ""))
        if track is None:
            return
        turn = self._by_item.get(event.get("previous_item_id") or "")
        if turn is not None:
            turn.unanswered.discard(event.get("previous_item_id") or "")
        elif self._awaiting_response:
            turn = self._awaiting_response[0]
        if turn is None:
            return
        while turn in self._awaiting_response:
            self._awaiting_response.remove(turn)
        turn.response = track
        turn.response_ready.set()

    # -- driving ----------------------------------------------------------------------
    async def run(self, plan: list[tuple[Recording, Recording | None]], *, barge_in_offset_ms: float,
                  on_turn=None, overlays: dict[int, OverlayClip] | None = None,
                  false_interrupt_offset_ms: float = 1000.0) -> None:
        """``plan``: (recording, interruption or None) per turn; an interruption is said
        ``barge_in_offset_ms`` after the answer's first audio. ``overlays``: turn index → a clip
        (noise or a backchannel) said ``false_interrupt_offset_ms`` after the answer's first audio."""
        self._overlays = overlays or {}
        self._false_offset_ms = false_interrupt_offset_ms
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(self.config.url, headers=self.config.headers, max_msg_size=0,
                                       heartbeat=30) as ws:
                self._ws = ws
                receiver = asyncio.create_task(self._receive(), name="probe-receive")
                mic = self._mic = PacedMicrophone(self._send_append, rate=self.config.rate,
                                                  frame_ms=self.config.frame_ms)
                sender: asyncio.Task | None = None
                try:
                    await asyncio.wait_for(self._created.wait(), timeout=30)
                    await self._send({"type": "session.update", "session": self._session_update()})
                    sender = asyncio.create_task(mic.run(), name="probe-microphone")
                    for index, (recording, interruption) in enumerate(plan):
                        await self._turn(mic, index, recording, interruption, barge_in_offset_ms)
                        if on_turn is not None:
                            on_turn()
                    for track in self._tracks:  # the rest of a split utterance may have come after its turn
                        score_transcript(track.record)
                finally:
                    for task in (sender, receiver):
                        if task is not None:
                            task.cancel()
                    await asyncio.gather(*(t for t in (sender, receiver) if t is not None), return_exceptions=True)

    def _session_update(self) -> dict[str, Any]:
        fmt = {"type": "audio/pcm", "rate": self.config.rate}
        session: dict[str, Any] = {
            "type": "realtime",
            "audio": {"input": {"format": fmt, "transcription": {"model": self.config.transcription_model}},
                      "output": {"format": fmt}},
        }
        if self.config.instructions:
            session["instructions"] = self.config.instructions
        return session

    def _new_turn(self, index: int, recording: Recording, pcm: np.ndarray, *, barge_in: bool) -> TurnTrack:
        record = TurnRecord(concurrency=self.concurrency, session=self.session_index, turn=index,
                            recording=recording.name, language=recording.language, reference=recording.reference,
                            speech_secs=round(len(pcm) / self.config.rate, 3), barge_in=barge_in)
        self.turns.append(record)
        track = TurnTrack(record=record)
        self._tracks.append(track)
        return track

    async def _say(self, mic: PacedMicrophone, turn: TurnTrack, pcm: np.ndarray) -> None:
        self._awaiting_commit.append(turn)
        self._current = turn
        utterance = mic.say(pcm, owner=turn)
        turn.speech_start = await utterance.started
        turn.voice_start = turn.speech_start + speech_start_secs(pcm, self.config.rate)
        # Frames leave on a fixed schedule, so the moment the last speech frame is sent is known
        # now, before the trailing silence of the recording has been sent (or the turn ended).
        frames = -(-speech_end_secs(pcm, self.config.rate) * 1000 // self.config.frame_ms)
        turn.speech_end = turn.speech_start + frames * self.config.frame_ms / 1000
        await utterance.finished

    async def _turn(self, mic: PacedMicrophone, index: int, recording: Recording, interruption: Recording | None,
                    offset_ms: float) -> None:
        pcm = recording.pcm16(self.config.rate)
        turn = self._new_turn(index, recording, pcm, barge_in=interruption is not None)
        await self._say(mic, turn, pcm)
        timeout = self.config.turn_timeout_s
        try:
            await asyncio.wait_for(turn.response_ready.wait(), timeout)
            await self._await_answer_to_all_of_it(turn)
            response = turn.response
            assert response is not None and response.done is not None
            if interruption is None and index in self._overlays:
                await self._false_interrupt(mic, index, turn, self._overlays[index], timeout)
            elif interruption is None:
                await asyncio.wait_for(asyncio.shield(response.done), timeout)
                await self._follow_continuations(turn, timeout)
            else:
                await self._barge_in(mic, index, turn, interruption, offset_ms)
        except asyncio.TimeoutError:
            turn.record.status = "timeout"
        finish_turn(turn)
        if interruption is None:
            await self._listen(turn.response)
            if index not in self._overlays and turn.response is not None and turn.response.first_audio is not None:
                turn.record.answer_gaps_ms = round(turn.response.playback.stall_s(after=turn.response.first_audio)
                                                   * 1000, 1)
        await asyncio.sleep(self.config.pause_after_answer_s)
        if self._overlay is not None:
            await self._judge_false_interruption(turn.response, timeout)

    async def _await_answer_to_all_of_it(self, turn: TurnTrack) -> None:
        """An answer begun before the utterance ended answered only its first part (the server cut
        it at a pause); the answer to the rest replaces it, unless the server commits no more."""
        while (early := turn.response) is not None and turn.speech_end is not None and early.created < turn.speech_end:
            waited = 0.0
            while turn.response is early and (waited < CONTINUATION_COMMIT_S
                                              or (turn.unanswered and waited < CONTINUATION_ANSWER_S)):
                await asyncio.sleep(0.05)
                waited += 0.05
            if turn.response is early:
                return

    async def _follow_continuations(self, turn: TurnTrack, timeout: float) -> None:
        """An answer cancelled because the user went on is replaced by the answer to all of it: a
        while for the rest's commit, longer once it is committed and not yet answered (a loaded
        server recognises and answers it seconds later)."""
        while turn.response is not None and turn.response.status == "cancelled":
            cancelled = turn.response
            waited = 0.0
            while turn.response is cancelled and (waited < CONTINUATION_COMMIT_S
                                                  or (turn.unanswered and waited < CONTINUATION_ANSWER_S)):
                await asyncio.sleep(0.05)
                waited += 0.05
            if turn.response is cancelled or turn.response.done is None:
                return
            await asyncio.wait_for(asyncio.shield(turn.response.done), timeout)

    @staticmethod
    async def _listen(response: ResponseTrack | None) -> None:
        """A person hears the answer out, pauses and underruns included, before talking again."""
        played_until = None if response is None else response.playback.ends_at()
        if played_until is not None:
            await asyncio.sleep(max(0.0, played_until - time.monotonic()))


def _audio_transcript(response: dict[str, Any]) -> str | None:
    """The assistant's words in ``response.done``'s output; None when it carries no transcript."""
    parts = [c.get("transcript") if "transcript" in c else c.get("text")
             for item in response.get("output") or [] if item.get("type") == "message"
             for c in item.get("content") or [] if "transcript" in c or "text" in c]
    return None if not parts else "".join(p or "" for p in parts)
