"""One Realtime session per WebSocket connection: the connection's side of the conversation.

This module keeps what belongs to the connection: outbound events and the tasks
the session owns, start and close, settings and what a client secret pinned,
protocol dispatch, and the conversation's items. The turn lives in
:mod:`server.user_turns` (VAD hooks, previews, recognition, barge-in) and the
answer in :mod:`server.responder` (create, plan, run, cancel, ``response.done``).

Its invariants: errors in client input become ``error`` events and the session
continues; every task it starts is owned by :attr:`tasks` and cancelled in
:meth:`aclose`; the conversation keeps only what the user heard of an answer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from server import events
from server.audio_input import AudioInput
from server.config import Config
from server.client_items import item_from_client
from server.conversation import Conversation, ConversationItem
from server.engines import Engines
from server.ids import new_id
from server.latency import TurnTimeline
from server.metrics import ServerMetrics
from server.partial_transcripts import PartialTranscripts
from server.protocol import ClientEvent, ProtocolError, parse_client_event
from server.responder import Responder, truncate
from server.session_settings import SessionSettings, SettingsError, TurnDetectionSettings, apply_session_update
from server.session_thinking import SessionThinking
from server.stage_executor import StageClosed, StageTimeout
from server.task_group import OwnedTasks
from server.turn_capture import TurnCapture
from server.turn_recorder import TurnRecorder
from server.thinking_services import ThinkingServices
from server.user_turns import UserTurns
from streaming.audio_frames import PCMFormatError, pcm16_bytes_to_float
from streaming.audio_rate_limit import AudioRateLimit
from thinking.personas import PersonaLibrary

log = logging.getLogger(__name__)

MIN_COMMIT_MS = 100


class RealtimeSession:
    def __init__(self, *, config: Config, engines: Engines, metrics: ServerMetrics,
                 send_text: Callable[[str], Awaitable[None]], send_bytes: Callable[[bytes], Awaitable[None]],
                 binary_audio: bool = False, thinking: ThinkingServices | None = None,
                 recorder: TurnRecorder | None = None, session_id: str | None = None) -> None:
        """``recorder``: the server's, which keeps finished turns when ``data.record`` (or the persona) says so.
        ``session_id``: the id the session registry admitted it under (a fresh one otherwise)."""
        self.config = config
        self.engines = engines
        self.metrics = metrics
        self._send_text = send_text
        self._send_bytes = send_bytes
        audio = config.audio
        self.settings = SessionSettings(
            id=session_id or new_id("sess"),
            instructions=config.assistant.instructions,
            max_output_tokens=config.assistant.max_output_tokens,
            binary_audio=binary_audio,
            transcription_language=config.models.asr_language or None,
            turn_detection=TurnDetectionSettings(
                threshold=audio.vad_threshold, prefix_padding_ms=audio.prefix_padding_ms,
                silence_duration_ms=audio.silence_duration_ms,
            ),
        )
        self.conversation = Conversation()
        self.tasks = OwnedTasks(name=f"session {self.settings.id}")
        self._services = thinking or ThinkingServices(personas=PersonaLibrary([]))
        self.thinking = SessionThinking(services=self._services, llm=engines.llm, config=config,
                                        session_id=self.settings.id, report=self._report_error)
        self._send_lock = asyncio.Lock()
        self._pinned: dict[str, Any] = {}
        self._audio_rate = AudioRateLimit(max_speed=config.server.max_audio_speed)
        self._closed = False
        self.capture = TurnCapture(self, recorder=recorder, tools=lambda: self.responses.offered_tools())
        self.responses = Responder(self, tools=self._services.tools, capture=self.capture)
        previews = [PartialTranscripts(recognizer=recognizer, executor=engines.executors.partials,
                                       spawn=self.spawn, send=self.send)
                    for recognizer in (engines.partials, engines.mandarin_partials) if recognizer is not None]
        self.turns = UserTurns(self, previews=previews, capture=self.capture)
        self.input = AudioInput(
            engines=engines, hooks=self.turns, input_rate_hz=self.settings.input_rate_hz,
            turn_detection=self.settings.turn_detection, vad_start_ms=audio.vad_start_ms,
            max_turn_secs=audio.max_turn_secs, vad_timeout_s=config.assistant.vad_timeout_s,
            turn_model_timeout_s=config.assistant.turn_model_timeout_s, pause_ms=audio.early_asr_pause_ms,
        )

    # -- sending and tasks ------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, event: dict[str, Any]) -> None:
        if self._closed:
            return
        async with self._send_lock:
            try:
                await self._send_text(json.dumps(event, ensure_ascii=False))
            except ConnectionResetError:
                pass  # the client is gone or stalled: the read loop ends and closes this session

    async def send_audio_bytes(self, pcm: bytes) -> None:
        if self._closed:
            return
        async with self._send_lock:
            try:
                await self._send_bytes(pcm)
            except ConnectionResetError:
                pass

    async def send_error(self, exc: ProtocolError) -> None:
        self.metrics.errors.labels(code=exc.code).inc()
        await self.send(events.error(exc.message, code=exc.code, param=exc.param, client_event_id=exc.client_event_id))

    async def _report_error(self, code: str, message: str) -> None:
        self.metrics.errors.labels(code=code).inc()
        await self.send(events.error(message, code=code, type_="server_error"))

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any] | None:
        """An owned task; None once the session is closing."""
        return self.tasks.spawn(coro, name)

    def user_language(self) -> str | None:
        return self.turns.user_language()

    # -- lifecycle --------------------------------------------------------------------
    @property
    def answering(self) -> bool:
        """A response is being started or generated, or its audio is still being sent."""
        return self.responses.answering

    async def start(self, pinned: dict[str, Any] | None = None, user_id: str | None = None) -> None:
        """``pinned``: settings from the client secret that opened the session; they win over
        every later ``session.update`` (the operator's persona stays). ``user_id``: whose
        long-term memory this conversation may use (None: no memory)."""
        if self.config.assistant.persona:
            self._apply_settings(apply_session_update(
                self.settings, {"prompt": {"id": self.config.assistant.persona}}, self._services.personas))
        if pinned:
            self._pinned = pinned
            self._apply_settings(apply_session_update(self.settings, pinned, self._services.personas))
        await self.thinking.start(user_id)
        await self.send(events.session_created(self.settings.to_wire()))
        await self._greet()
        self.responses.ahead.warm_next_prompt()  # the instructions, read while the user starts to speak

    async def _greet(self) -> None:
        """A persona's greeting opens a conversation the user has not spoken in yet."""
        user_spoke = any(item.role == "user" for item in self.conversation.items)
        if self.settings.greeting and not user_spoke and not self.responses.answering:
            await self.responses.create(TurnTimeline(), fixed_text=self.settings.greeting)

    def _apply_settings(self, updated: SessionSettings) -> None:
        if updated.input_rate_hz != self.settings.input_rate_hz or updated.turn_detection != self.settings.turn_detection:
            self.input.configure(input_rate_hz=updated.input_rate_hz, turn_detection=updated.turn_detection)
        self.settings = updated

    async def aclose(self) -> None:
        """Idempotent: cancels every task this session owns and waits for them."""
        if self._closed:
            return
        self._closed = True
        self.responses.close()
        await self.thinking.aclose(self.conversation.chat_history())
        await self.input.aclose()
        await self.turns.aclose()
        await self.tasks.aclose()
        end_conversation = getattr(self.engines.llm, "end_conversation", None)
        if end_conversation is not None:  # an endpoint pool: the conversation no longer loads its endpoint
            end_conversation(self.settings.id)

    # -- incoming messages ------------------------------------------------------------
    async def handle_text(self, text: str) -> None:
        if len(text.encode("utf-8")) > self.config.server.max_message_bytes:
            await self.send_error(ProtocolError(
                "message_too_large", f"message of {len(text)} characters exceeds the limit of "
                f"{self.config.server.max_message_bytes} bytes; send audio in smaller appends"))
            return
        try:
            event = parse_client_event(text)
            await self._dispatch(event)
        except ProtocolError as exc:
            await self.send_error(exc)
        except Exception as exc:  # noqa: BLE001 (the session must outlive any one message)
            await self._unexpected(exc)

    async def _unexpected(self, exc: Exception) -> None:
        """A malformed event that validation let through, or a bug: answer it, log it, go on."""
        log.exception("failed to handle a client event")
        await self.send_error(ProtocolError("invalid_event", f"the event could not be handled: "
                                            f"{type(exc).__name__}: {str(exc)[:200]}"))

    async def handle_binary(self, data: bytes) -> None:
        try:
            if not self.settings.binary_audio:
                raise ProtocolError("binary_audio_not_enabled",
                                    "binary frames carry audio only when the connection was opened with ?audio=binary")
            if len(data) > self.config.server.max_message_bytes:
                raise ProtocolError("message_too_large", f"binary frame of {len(data)} bytes exceeds the limit")
            await self._append_pcm(data, client_event_id=None)
        except ProtocolError as exc:
            await self.send_error(exc)
        except Exception as exc:  # noqa: BLE001
            await self._unexpected(exc)

    async def _dispatch(self, event: ClientEvent) -> None:
        handler = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self._on_append,
            "input_audio_buffer.commit": self._on_commit,
            "input_audio_buffer.clear": self._on_clear,
            "conversation.item.create": self._on_item_create,
            "conversation.item.delete": self._on_item_delete,
            "conversation.item.retrieve": self._on_item_retrieve,
            "conversation.item.truncate": self._on_item_truncate,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
        }[event.type]
        await handler(event)

    async def _on_session_update(self, event: ClientEvent) -> None:
        try:
            updated = apply_session_update(self.settings, event.raw["session"], self._services.personas)
            if self._pinned:
                updated = apply_session_update(updated, self._pinned, self._services.personas)
        except SettingsError as exc:
            raise ProtocolError("invalid_value", str(exc), param=exc.param, client_event_id=event.event_id) from None
        except (TypeError, ValueError) as exc:
            raise ProtocolError("invalid_value", f"invalid session: {exc}", client_event_id=event.event_id) from None
        new_persona = updated.persona is not None and updated.persona != self.settings.persona
        self._apply_settings(updated)
        await self.send(events.session_updated(self.settings.to_wire()))
        if new_persona:
            await self._greet()
        self.responses.ahead.warm_next_prompt()

    # -- audio in ---------------------------------------------------------------------
    async def _on_append(self, event: ClientEvent) -> None:
        try:
            pcm = base64.b64decode(event.raw["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("invalid_base64", "input_audio_buffer.append: 'audio' is not valid base64",
                                param="audio", client_event_id=event.event_id) from None
        await self._append_pcm(pcm, client_event_id=event.event_id)

    async def _append_pcm(self, pcm: bytes, *, client_event_id: str | None) -> None:
        rate = self.settings.input_rate_hz
        max_bytes = self.config.server.max_audio_append_ms * rate // 1000 * 2
        if len(pcm) > max_bytes:
            raise ProtocolError("audio_too_long", f"one append may carry at most {self.config.server.max_audio_append_ms}"
                                f" ms of audio ({max_bytes} bytes at {rate} Hz), got {len(pcm)} bytes",
                                param="audio", client_event_id=client_event_id)
        try:
            samples = pcm16_bytes_to_float(pcm)
        except PCMFormatError as exc:
            raise ProtocolError("invalid_audio", str(exc), param="audio", client_event_id=client_event_id) from None
        if samples.size:
            if not self._audio_rate.take(samples.size / rate, time.monotonic()):
                raise ProtocolError("audio_rate_exceeded", f"audio arrives faster than "
                                    f"{self._audio_rate.max_speed:g}x real time; this append was dropped",
                                    param="audio", client_event_id=client_event_id)
            try:
                await self.input.push(samples, input_rate_hz=rate)
            except (StageTimeout, StageClosed) as exc:
                self.metrics.errors.labels(code="engine_timeout").inc()
                await self.send(events.error(f"{exc}; this audio was dropped", code="engine_timeout",
                                             type_="server_error", client_event_id=client_event_id))

    async def _on_commit(self, event: ClientEvent) -> None:
        if self.input.buffered_ms < MIN_COMMIT_MS:
            raise ProtocolError("input_audio_buffer_commit_empty",
                                f"buffer too small: {self.input.buffered_ms:.0f} ms of audio, at least "
                                f"{MIN_COMMIT_MS} ms needed", client_event_id=event.event_id)
        utterance = await self.input.commit()
        await self.turns.commit(utterance, respond=False)

    async def _on_clear(self, event: ClientEvent) -> None:
        self.input.clear()
        self.turns.clear()
        await self.send(events.buffer_cleared())

    # -- conversation items -----------------------------------------------------------
    async def _on_item_create(self, event: ClientEvent) -> None:
        item = item_from_client(event.raw["item"], self.conversation, max_chars=self.config.server.max_item_chars,
                                client_event_id=event.event_id)
        previous = event.raw.get("previous_item_id")
        if previous is not None and self.conversation.get(previous) is None:
            raise ProtocolError("item_not_found", f"previous_item_id {previous!r} does not exist",
                                param="previous_item_id", client_event_id=event.event_id)
        prev = await self.add_item(item, after=previous)
        await self.send(events.item_added(item.to_wire(), previous_item_id=prev))
        await self.send(events.item_done(item.to_wire(), previous_item_id=prev))
        if item.role == "user" and item.type == "message":
            language = self.turns.text_language(item.text or "")
            self.capture.user_said(item.id, item.text or "", language)
            await self.thinking.on_user_words(item.text or "", language)

    async def add_item(self, item: ConversationItem, *, after: str | None = None,
                       before: str | None = None) -> str | None:
        """Adds an item; a conversation over ``server.max_conversation_items`` loses its oldest
        items, each announced with ``conversation.item.deleted`` so clients stay in step."""
        previous = self.conversation.add(item, after=after, before=before)
        limit = max(2, self.config.server.max_conversation_items)
        while len(self.conversation.items) > limit:
            oldest = self.conversation.items[0]
            self.conversation.delete(oldest.id)
            self.responses.forget(oldest.id)
            await self.send(events.item_deleted(item_id=oldest.id))
        return previous

    async def _on_item_delete(self, event: ClientEvent) -> None:
        item_id = event.raw["item_id"]
        self.responses.forget(item_id)
        if not self.conversation.delete(item_id):
            raise ProtocolError("item_not_found", f"no item {item_id!r}", param="item_id",
                                client_event_id=event.event_id)
        await self.send(events.item_deleted(item_id=item_id))

    async def _on_item_retrieve(self, event: ClientEvent) -> None:
        item = self.conversation.get(event.raw["item_id"])
        if item is None:
            raise ProtocolError("item_not_found", f"no item {event.raw['item_id']!r}", param="item_id",
                                client_event_id=event.event_id)
        await self.send({"type": "conversation.item.retrieved", "event_id": new_id("event"), "item": item.to_wire()})

    async def _on_item_truncate(self, event: ClientEvent) -> None:
        item_id, audio_end_ms = event.raw["item_id"], event.raw["audio_end_ms"]
        item = self.conversation.get(item_id)
        spoken = self.responses.spoken(item_id)
        if item is None or item.role != "assistant" or spoken is None:
            raise ProtocolError("item_not_found", f"no assistant audio item {item_id!r}", param="item_id",
                                client_event_id=event.event_id)
        if audio_end_ms < 0 or audio_end_ms > spoken.outcome.spoken.total_audio_ms + 1:
            raise ProtocolError("invalid_value", f"audio_end_ms {audio_end_ms} is outside the item's "
                                f"{spoken.outcome.spoken.total_audio_ms:.0f} ms of audio", param="audio_end_ms",
                                client_event_id=event.event_id)
        truncate(spoken, audio_end_ms)
        await self.send(events.item_truncated(item_id=item_id, audio_end_ms=int(audio_end_ms)))

    # -- responses --------------------------------------------------------------------
    async def _on_response_create(self, event: ClientEvent) -> None:
        current = self.responses.current
        if current is None and self.responses.answering:
            raise ProtocolError("conversation_already_has_active_response", "a response is starting",
                                client_event_id=event.event_id)
        if current is not None and not current.handle.interrupted:
            raise ProtocolError("conversation_already_has_active_response",
                                f"response {current.request.response_id} is still in progress",
                                client_event_id=event.event_id)
        # After a push-to-talk commit the user's words are still being recognised: the answer
        # waits for them (and inherits that turn's timeline) instead of answering without them.
        # A response still cancelling is waited for (bounded) before this one starts.
        timeline = self.turns.take_uncommitted_timeline() or TurnTimeline()
        await self.responses.create(timeline, overrides=event.raw.get("response") or {},
                                    after=self.turns.pending_transcriptions())

    async def _on_response_cancel(self, event: ClientEvent) -> None:
        current = self.responses.current
        wanted = event.raw.get("response_id")
        if current is None or current.handle.interrupted or (wanted and wanted != current.request.response_id):
            raise ProtocolError("response_cancel_not_active", "there is no active response to cancel",
                                client_event_id=event.event_id)
        self.responses.interrupt("client_cancelled")
