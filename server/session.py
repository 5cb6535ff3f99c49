"""One Realtime session per WebSocket connection: dispatches client events, owns every task.

Lifecycle (connect, read loop, close) lives in :mod:`server.app`; this class is
the logic. Its invariants: errors in client input become ``error`` events and
the session continues; every task it starts is tracked and cancelled in
:meth:`aclose`; a response is stopped through its :class:`SpeechHandle`, and
the conversation keeps only what the user heard of it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from models.language_router import detect_language
from models.interfaces import MODEL_SAMPLE_RATE_HZ, GenerationParams, ToolSpec, Transcript
from server import events
from server.apologies import apology, filler
from server.audio_input import AudioInput, Utterance
from server.config import Config
from server.conversation import Conversation, ConversationItem
from server.engines import Engines
from server.ids import new_id
from server.latency import TurnTimeline
from server.metrics import ServerMetrics
from server.partial_transcripts import PartialTranscripts
from server.protocol import ClientEvent, ProtocolError, parse_client_event
from server.response_runner import ResponsePlan, ResponseRunner
from server.stage_executor import StageTimeout, run_with_deadline
from server.session_thinking import SessionThinking
from server.thinking_services import ThinkingServices
from server.tool_calls import ResponseToolCalls
from thinking.personas import PersonaLibrary
from server.session_settings import SessionSettings, SettingsError, TurnDetectionSettings, apply_session_update
from streaming.audio_frames import PCMFormatError, pcm16_bytes_to_float
from streaming.audio_rate_limit import AudioRateLimit
from streaming.barge_in import BargeInPolicy
from streaming.speech_handle import GenerationGate, SpeechHandle

log = logging.getLogger(__name__)

MIN_COMMIT_MS = 100


@dataclasses.dataclass
class _ActiveResponse:
    runner: ResponseRunner
    item: ConversationItem
    task: asyncio.Task[None]
    cancel_reason: str | None = None


class RealtimeSession:
    def __init__(self, *, config: Config, engines: Engines, metrics: ServerMetrics,
                 send_text: Callable[[str], Awaitable[None]], send_bytes: Callable[[bytes], Awaitable[None]],
                 binary_audio: bool = False, thinking: ThinkingServices | None = None) -> None:
        self.config = config
        self._engines = engines
        self._metrics = metrics
        self._send_text = send_text
        self._send_bytes = send_bytes
        audio = config.audio
        self.settings = SessionSettings(
            id=new_id("sess"),
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
        self._services = thinking or ThinkingServices(personas=PersonaLibrary([]))
        self._thinking = SessionThinking(services=self._services, llm=engines.llm, config=config,
                                         session_id=self.settings.id, report=self._report_error)
        self._barge_in = BargeInPolicy(min_speech_ms=audio.barge_in_min_speech_ms)
        self._gate = GenerationGate()
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._active: _ActiveResponse | None = None
        self._starting_responses = 0
        """Responses between their first event and ``_active`` being set (graceful shutdown waits for them)."""
        self._audible: _ActiveResponse | None = None  # finished sending, client may still be playing
        self._speech_item_id: str | None = None
        self._speech_during_response = False
        self._spoken_by_item: dict[str, ResponseRunner] = {}
        self._early_transcript: tuple[int, asyncio.Task[Transcript]] | None = None
        self._transcribing: dict[str, asyncio.Task[Any]] = {}
        self._pinned: dict[str, Any] = {}
        self._audio_rate = AudioRateLimit(max_speed=config.server.max_audio_speed)
        self._uncommitted_turn: TurnTimeline | None = None
        """The timeline of a turn committed without an answer (push-to-talk), for response.create."""
        self._last_user_language: str | None = None
        """Whisper's language of the last user turn with words: auto-detect sessions preview only its language."""
        self._partials = (
            PartialTranscripts(recognizer=engines.partials, executor=engines.executors.partials,
                               spawn=self._spawn, send=self.send)
            if engines.partials is not None else None
        )
        self._closed = False
        self.input = AudioInput(
            engines=engines, hooks=self, input_rate_hz=self.settings.input_rate_hz,
            turn_detection=self.settings.turn_detection, vad_start_ms=audio.vad_start_ms,
            max_turn_secs=audio.max_turn_secs, vad_timeout_s=config.assistant.vad_timeout_s,
            turn_model_timeout_s=config.assistant.turn_model_timeout_s,
        )

    # -- sending ----------------------------------------------------------------------
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
        self._metrics.errors.labels(code=exc.code).inc()
        await self.send(events.error(exc.message, code=exc.code, param=exc.param, client_event_id=exc.client_event_id))

    async def _report_error(self, code: str, message: str) -> None:
        self._metrics.errors.labels(code=code).inc()
        await self.send(events.error(message, code=code, type_="server_error"))

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("session task %s failed", task.get_name(), exc_info=exc)

    # -- lifecycle --------------------------------------------------------------------
    @property
    def answering(self) -> bool:
        """A response is being started or generated, or its audio is still being sent."""
        return self._active is not None or self._starting_responses > 0

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
        await self._thinking.start(user_id)
        await self.send(events.session_created(self.settings.to_wire()))
        await self._greet()

    async def _greet(self) -> None:
        """A persona's greeting opens a conversation the user has not spoken in yet."""
        user_spoke = any(item.role == "user" for item in self.conversation.items)
        if self.settings.greeting and not user_spoke and self._active is None:
            await self._start_response(TurnTimeline(), overrides={}, fixed_text=self.settings.greeting)

    def _apply_settings(self, updated: SessionSettings) -> None:
        if updated.input_rate_hz != self.settings.input_rate_hz or updated.turn_detection != self.settings.turn_detection:
            self.input.configure(input_rate_hz=updated.input_rate_hz, turn_detection=updated.turn_detection)
        self.settings = updated

    async def aclose(self) -> None:
        """Idempotent: cancels every task this session owns and waits for them."""
        if self._closed:
            return
        self._closed = True
        self._gate.close()
        await self._thinking.aclose(self.conversation.chat_history())
        await self.input.aclose()
        if self._partials is not None:
            await self._partials.aclose()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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
            except StageTimeout as exc:
                self._metrics.errors.labels(code="engine_timeout").inc()
                await self.send(events.error(f"{exc}; this audio was dropped", code="engine_timeout",
                                             type_="server_error", client_event_id=client_event_id))

    async def _on_commit(self, event: ClientEvent) -> None:
        if self.input.buffered_ms < MIN_COMMIT_MS:
            raise ProtocolError("input_audio_buffer_commit_empty",
                                f"buffer too small: {self.input.buffered_ms:.0f} ms of audio, at least "
                                f"{MIN_COMMIT_MS} ms needed", client_event_id=event.event_id)
        utterance = await self.input.commit()
        await self._commit_utterance(utterance, respond=False)

    async def _on_clear(self, event: ClientEvent) -> None:
        self.input.clear()
        self._discard_early_transcript()
        if self._partials is not None and self._speech_item_id is not None:
            self._partials.finish(self._speech_item_id)
        self._speech_item_id = None
        await self.send(events.buffer_cleared())

    async def _on_item_create(self, event: ClientEvent) -> None:
        raw = event.raw["item"]
        if raw.get("type") in ("function_call", "function_call_output"):
            await self._create_function_item(raw, event)
            return
        if raw.get("type") != "message":
            raise ProtocolError("unsupported_item", f"conversation items of type {raw.get('type')!r} are not supported",
                                param="item.type", client_event_id=event.event_id)
        texts = [c.get("text") or c.get("transcript") or "" for c in raw.get("content") or []
                 if c.get("type") in ("input_text", "text", "output_text")]
        if len("".join(texts)) > self.config.server.max_item_chars:
            raise ProtocolError("item_too_large", f"item text of {len(''.join(texts))} characters exceeds the "
                                f"limit of {self.config.server.max_item_chars}", param="item.content",
                                client_event_id=event.event_id)
        if not texts or not "".join(texts).strip():
            raise ProtocolError("unsupported_content", "message items need input_text (or text) content",
                                param="item.content", client_event_id=event.event_id)
        previous = event.raw.get("previous_item_id")
        if previous is not None and self.conversation.get(previous) is None:
            raise ProtocolError("item_not_found", f"previous_item_id {previous!r} does not exist",
                                param="previous_item_id", client_event_id=event.event_id)
        role = raw["role"]
        item = ConversationItem(id=raw.get("id") or new_id("item"), role=role,
                                content_type="input_text" if role in ("user", "system") else "output_text",
                                text="".join(texts))
        prev = await self._add_item(item, after=previous)
        await self.send(events.item_added(item.to_wire(), previous_item_id=prev))
        await self.send(events.item_done(item.to_wire(), previous_item_id=prev))
        if role == "user":
            await self._thinking.on_user_words(item.text or "", self._text_language(item.text or ""))

    async def _create_function_item(self, raw: dict[str, Any], event: ClientEvent) -> None:
        """A client tool's result (``function_call_output``), or a call replayed into the history."""
        call_id = raw.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise ProtocolError("invalid_value", "function items need a call_id", param="item.call_id",
                                client_event_id=event.event_id)
        calls = {i.call_id for i in self.conversation.items if i.type == "function_call"}
        if raw["type"] == "function_call_output":
            if call_id not in calls:
                raise ProtocolError("item_not_found", f"no function_call with call_id {call_id!r}",
                                    param="item.call_id", client_event_id=event.event_id)
            output = str(raw.get("output") or "")
            if len(output) > self.config.server.max_item_chars:
                raise ProtocolError("item_too_large", f"output of {len(output)} characters exceeds the limit of "
                                    f"{self.config.server.max_item_chars}", param="item.output",
                                    client_event_id=event.event_id)
            item = ConversationItem.function_call_output(item_id=raw.get("id") or new_id("item"), call_id=call_id,
                                                         output=output)
        else:
            item = ConversationItem.function_call(item_id=raw.get("id") or new_id("item"), call_id=call_id,
                                                  name=str(raw.get("name") or ""), arguments=str(raw.get("arguments") or "{}"))
        previous = event.raw.get("previous_item_id")
        if previous is not None and self.conversation.get(previous) is None:
            raise ProtocolError("item_not_found", f"previous_item_id {previous!r} does not exist",
                                param="previous_item_id", client_event_id=event.event_id)
        prev = await self._add_item(item, after=previous)
        await self.send(events.item_added(item.to_wire(), previous_item_id=prev))
        await self.send(events.item_done(item.to_wire(), previous_item_id=prev))

    async def _add_item(self, item: ConversationItem, *, after: str | None = None,
                        before: str | None = None) -> str | None:
        """Adds an item; a conversation over ``server.max_conversation_items`` loses its oldest
        items, each announced with ``conversation.item.deleted`` so clients stay in step."""
        previous = self.conversation.add(item, after=after, before=before)
        limit = max(2, self.config.server.max_conversation_items)
        while len(self.conversation.items) > limit:
            oldest = self.conversation.items[0]
            self.conversation.delete(oldest.id)
            self._spoken_by_item.pop(oldest.id, None)
            await self.send(events.item_deleted(item_id=oldest.id))
        return previous

    async def _on_item_delete(self, event: ClientEvent) -> None:
        item_id = event.raw["item_id"]
        self._spoken_by_item.pop(item_id, None)
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
        runner = self._spoken_by_item.get(item_id)
        if item is None or item.role != "assistant" or runner is None:
            raise ProtocolError("item_not_found", f"no assistant audio item {item_id!r}", param="item_id",
                                client_event_id=event.event_id)
        if audio_end_ms < 0 or audio_end_ms > runner.outcome.spoken.total_audio_ms + 1:
            raise ProtocolError("invalid_value", f"audio_end_ms {audio_end_ms} is outside the item's "
                                f"{runner.outcome.spoken.total_audio_ms:.0f} ms of audio", param="audio_end_ms",
                                client_event_id=event.event_id)
        self._truncate_item(item, runner, audio_end_ms)
        await self.send(events.item_truncated(item_id=item_id, audio_end_ms=int(audio_end_ms)))

    def _truncate_item(self, item: ConversationItem, runner: ResponseRunner, played_ms: float) -> None:
        item.text = runner.outcome.spoken.heard_text(played_ms)
        item.status = "incomplete"

    async def _on_response_create(self, event: ClientEvent) -> None:
        if self._starting_responses:
            raise ProtocolError("conversation_already_has_active_response", "a response is starting",
                                client_event_id=event.event_id)
        if self._active is not None:
            raise ProtocolError("conversation_already_has_active_response",
                                f"response {self._active.runner.plan.response_id} is still in progress",
                                client_event_id=event.event_id)
        params = event.raw.get("response") or {}
        # After a push-to-talk commit the user's words are still being recognised: the answer
        # waits for them (and inherits that turn's timeline) instead of answering without them.
        pending, self._uncommitted_turn = self._uncommitted_turn, None
        timeline = pending or TurnTimeline()
        waiting = [task for task in self._transcribing.values() if not task.done()]
        await self._start_response(timeline, overrides=params, after=waiting)

    async def _on_response_cancel(self, event: ClientEvent) -> None:
        active = self._active
        wanted = event.raw.get("response_id")
        if active is None or (wanted and wanted != active.runner.plan.response_id):
            raise ProtocolError("response_cancel_not_active", "there is no active response to cancel",
                                client_event_id=event.event_id)
        await self._interrupt(active, reason="client_cancelled")

    # -- InputHooks -------------------------------------------------------------------
    async def on_speech_started(self, audio_start_ms: int) -> None:
        self._speech_item_id = new_id("item")
        self._thinking.user_started_speaking()
        self._speech_during_response = self._active is not None or self._audible is not None
        await self.send(events.speech_started(audio_start_ms=audio_start_ms, item_id=self._speech_item_id))
        if self._partials is not None and self._wants_partials(self._partials.language):
            self._partials.start(self._speech_item_id)
        td = self.settings.turn_detection
        if td is not None and td.interrupt_response:
            if self._active is not None:
                await self._interrupt(self._active, reason="turn_detected")
            elif (audible := self._audible) is not None:
                self._audible = None
                played = audible.runner.outcome.clock.played_ms() if audible.runner.outcome.clock else 0.0
                self._truncate_item(audible.item, audible.runner, played)
                await self.send(events.item_truncated(item_id=audible.item.id, audio_end_ms=int(played)))
            self.input.set_interrupt_guard(None)

    def _wants_partials(self, language: str) -> bool:
        """Previews only when transcripts are on and the user likely speaks the preview recogniser's language."""
        if not self.settings.transcription:
            return False
        pinned = self.settings.transcription_language
        if pinned is not None:
            return pinned == language
        # Auto-detect: only once a turn was heard in the preview's language. Guessing on the first
        # turn showed Mandarin speakers English nonsense ("or will shoot for the time") until Whisper.
        return self._last_user_language == language

    def on_turn_audio(self, audio: np.ndarray) -> None:
        if self._partials is not None:
            self._partials.feed(audio)

    async def on_speech_stopped(self, audio_end_ms: int, audio: np.ndarray) -> None:
        await self.send(events.speech_stopped(audio_end_ms=audio_end_ms, item_id=self._speech_item_id or new_id("item")))
        # Speculative recognition: the turn usually ends on exactly this audio, so decoding it now
        # overlaps Whisper with the end-of-turn decision. If the user goes on, the result is dropped.
        self._discard_early_transcript()
        self._early_transcript = (len(audio), self._spawn(self._recognise(audio), name="early-asr"))

    def _discard_early_transcript(self) -> None:
        if self._early_transcript is not None:
            self._early_transcript[1].cancel()
            self._early_transcript = None

    async def _recognise(self, audio: np.ndarray) -> Transcript:
        language = self.settings.transcription_language

        def recognise() -> Transcript:
            stream = self._engines.asr.open_stream(language=language)
            stream.accept_audio(audio)
            return stream.finish()

        return await run_with_deadline(self._engines.executors.asr, recognise,
                                       timeout_s=self.config.assistant.asr_timeout_s)

    async def on_utterance(self, utterance: Utterance) -> None:
        td = self.settings.turn_detection
        await self._commit_utterance(utterance, respond=td is not None and td.create_response)

    # -- turns ------------------------------------------------------------------------
    async def _commit_utterance(self, utterance: Utterance, *, respond: bool) -> None:
        item = ConversationItem(id=self._speech_item_id or new_id("item"), role="user", content_type="input_audio",
                                text=None, status="completed")
        self._speech_item_id = None
        during_response = self._speech_during_response
        self._speech_during_response = False
        previewed = self._partials.finish(item.id) if self._partials is not None else False
        previous = await self._add_item(item)
        await self.send(events.buffer_committed(item_id=item.id, previous_item_id=previous))
        await self.send(events.item_added(item.to_wire(), previous_item_id=previous))
        timeline = TurnTimeline()
        if utterance.speech_end_at is not None:
            timeline.mark("speech_end", utterance.speech_end_at)
        timeline.mark("turn_end", utterance.turn_end_at)
        task = self._spawn(self._transcribe_and_respond(item, previous, utterance, timeline, respond=respond,
                                                        during_response=during_response, previewed=previewed),
                           name=f"turn-{item.id}")
        self._transcribing[item.id] = task
        task.add_done_callback(lambda _: self._transcribing.pop(item.id, None))
        self._uncommitted_turn = None if respond else timeline

    async def _transcribe_and_respond(self, item: ConversationItem, previous: str | None, utterance: Utterance,
                                      timeline: TurnTimeline, *, respond: bool, during_response: bool,
                                      previewed: bool = False) -> None:
        """Whisper's transcript is final: ``completed`` carries it and replaces any live preview.

        Clients concatenate deltas, so Whisper's text goes out as one more delta only when no
        preview delta was sent for the item (``previewed`` false: partials off, another
        language, push-to-talk); after a preview that delta would duplicate the words.
        """
        early, self._early_transcript = self._early_transcript, None
        try:
            if early is not None and early[0] == len(utterance.audio):
                transcript = await early[1]
            else:
                if early is not None:
                    early[1].cancel()
                transcript = await self._recognise(utterance.audio)
        except Exception as exc:  # the engine failed; the session goes on
            log.exception("transcription failed")
            await self.send(events.transcription_failed(item_id=item.id, message=str(exc)))
            if respond and self._active is None and not self._closed:
                await self._start_response(TurnTimeline(), overrides={},
                                           fixed_text=apology("hearing", self._user_language()))
            return
        timeline.mark("transcript_final")
        text = transcript.text
        if text.strip():
            self._last_user_language = transcript.language
        item.text = text
        if self.settings.transcription:
            if text and not previewed:
                await self.send(events.transcription_delta(item_id=item.id, delta=text))
            await self.send(events.transcription_completed(
                item_id=item.id, transcript=text, audio_secs=len(utterance.audio) / MODEL_SAMPLE_RATE_HZ))
        await self.send(events.item_done(item.to_wire(), previous_item_id=previous))
        if text.strip():
            await self._thinking.on_user_words(text, transcript.language or self._user_language())
        if not respond or not text.strip():
            return
        if during_response and self._barge_in.is_backchannel(text):
            log.info("backchannel %r: no new response", text)
            return
        if self._active is not None:
            await self._interrupt(self._active, reason="turn_detected")
        await self._start_response(timeline, overrides={})

    # -- responses --------------------------------------------------------------------
    def _text_language(self, text: str) -> str | None:
        return "zh" if detect_language(text) == "zh" else self._user_language() or "en"

    def _user_language(self) -> str | None:
        return self.settings.transcription_language or self._last_user_language

    async def _start_response(self, timeline: TurnTimeline, *, overrides: dict[str, Any],
                              after: list[asyncio.Task[Any]] | None = None, fixed_text: str | None = None) -> None:
        """Starts at once (``response.created`` goes out now); the prompt is built once the
        transcriptions in ``after`` have finished, so it holds the user's latest words."""
        self._starting_responses += 1
        try:
            await self._begin_response(timeline, overrides=overrides, after=after, fixed_text=fixed_text)
        finally:
            self._starting_responses -= 1

    async def _begin_response(self, timeline: TurnTimeline, *, overrides: dict[str, Any],
                              after: list[asyncio.Task[Any]] | None, fixed_text: str | None) -> None:
        settings = self.settings
        modalities = tuple(overrides.get("output_modalities") or settings.output_modalities)
        max_tokens = overrides.get("max_output_tokens") or settings.max_output_tokens
        instructions = overrides.get("instructions") or settings.instructions
        response_id, item_id = new_id("resp"), new_id("item")
        audio = "audio" in modalities
        server_tools = self._server_tool_specs()
        client_tools = settings.tools if settings.tool_choice != "none" else ()
        plan = ResponsePlan(
            response_id=response_id, item_id=item_id, messages=[],
            generation=GenerationParams(max_tokens=4096 if max_tokens == "inf" else int(max_tokens),
                                        temperature=self.config.assistant.temperature,
                                        adapter=settings.llm_adapter or self.config.assistant.llm_adapter or None,
                                        tools=(*server_tools, *client_tools),
                                        tool_choice=settings.tool_choice if client_tools else "auto"),
            modalities=modalities, output_rate_hz=settings.output_rate_hz, voice=settings.voice, speed=settings.speed,
            frame_ms=self.config.audio.output_frame_ms, max_lead_ms=self.config.audio.max_lead_ms,
            binary_audio=settings.binary_audio,
            first_token_timeout_s=self.config.assistant.llm_first_token_timeout_s,
            token_timeout_s=self.config.assistant.llm_token_timeout_s,
            tts_chunk_timeout_s=self.config.assistant.tts_chunk_timeout_s,
            fixed_text=fixed_text,
            server_tools=frozenset(t.name for t in server_tools),
            max_tool_rounds=self.config.assistant.max_tool_rounds,
            filler_after_s=self.config.assistant.tool_filler_after_s,
            filler_text=filler(self._user_language() or (settings.persona.language if settings.persona else None)),
        )
        handle = SpeechHandle(response_id=response_id)
        self._gate.open(handle.generation)
        tool_calls = ResponseToolCalls(response_id=response_id, message_item_id=item_id,
                                       registry=self._services.tools, add_item=self._add_item, send=self.send)
        runner = ResponseRunner(plan=plan, engines=self._engines, handle=handle, gate=self._gate,
                                send_event=self.send, send_audio=self.send_audio_bytes, timeline=timeline,
                                tools=tool_calls)
        item = ConversationItem(id=item_id, role="assistant", content_type="output_audio" if audio else "output_text",
                                status="in_progress")
        previous = await self._add_item(item)
        self._spoken_by_item[item_id] = runner
        await self.send(events.response_created(self._response_wire(plan, "in_progress", [])))
        await self.send(events.output_item_added(response_id=response_id, item=item.to_wire()))
        await self.send(events.item_added(item.to_wire(), previous_item_id=previous))
        await self.send(events.content_part_added(response_id=response_id, item_id=item_id,
                                                  part_type="audio" if audio else "text"))
        if audio:
            self.input.set_interrupt_guard(self._barge_in.min_speech_ms)
        self._audible = None
        task = self._spawn(self._drive_response(runner, item, previous, after=after or [], instructions=instructions,
                                                tool_calls=tool_calls),
                           name=f"response-{response_id}")
        self._active = _ActiveResponse(runner=runner, item=item, task=task)

    def _response_wire(self, plan: ResponsePlan, status: str, output: list[dict[str, Any]],
                       reason: str | None = None, latency: dict[str, Any] | None = None) -> dict[str, Any]:
        response: dict[str, Any] = {
            "object": "realtime.response", "id": plan.response_id, "status": status, "output": output,
            "conversation_id": "conv_" + self.settings.id, "output_modalities": list(plan.modalities),
            "max_output_tokens": plan.generation.max_tokens,
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": plan.output_rate_hz}, "voice": plan.voice}},
        }
        if status in ("cancelled", "failed", "incomplete"):
            response["status_details"] = {"type": status, "reason": reason}
        if latency is not None:
            response["latency"] = latency  # tingshuo extension: per-stage ms from the end of user speech
        return response

    def _server_tool_specs(self) -> tuple[ToolSpec, ...]:
        registry = self._services.tools
        wanted = [n.strip() for n in self.config.assistant.server_tools.split(",") if n.strip()]
        if registry is None or not wanted:
            return ()
        return tuple(spec for spec in registry.specs() if spec.name in wanted)

    async def _drive_response(self, runner: ResponseRunner, item: ConversationItem, previous: str | None, *,
                              after: list[asyncio.Task[Any]], instructions: str,
                              tool_calls: ResponseToolCalls) -> None:
        plan = runner.plan
        citations = ""

        async def run() -> None:
            nonlocal citations
            if after:  # cancelling this wait (a barge-in) leaves the transcriptions running
                await asyncio.wait(after)
            confirmation = self._thinking.take_confirmation() if plan.fixed_text is None else None
            if confirmation is not None:  # a memory request: its fixed reply, no LLM
                runner.plan = dataclasses.replace(plan, fixed_text=confirmation)
            elif plan.fixed_text is None:
                history = self.conversation.chat_history()
                query = next((m.content for m in reversed(history) if m.role == "user"), "")
                language = self._user_language() or (self.settings.persona.language if self.settings.persona else None)
                hint = self.config.assistant.tool_hint if plan.server_tools else ""
                prepared = await self._thinking.prepare(instructions=f"{instructions} {hint}".strip(), history=history,
                                                        query=query, language=language)
                citations = prepared.citations
                runner.plan = dataclasses.replace(plan, messages=prepared.messages)
            runner.timeline.mark("prompt_ready")
            await runner.run()

        run_task = asyncio.create_task(run(), name=f"run-{plan.response_id}")
        status, reason = "completed", None
        try:
            finished = await runner.handle.wait_if_not_interrupted(run_task)
            if not finished:
                run_task.cancel()
            await run_task
        except asyncio.CancelledError:
            if not runner.handle.interrupted:
                run_task.cancel()
                raise  # the session is closing
            status, reason = "cancelled", self._active.cancel_reason if self._active else "client_cancelled"
        except Exception as exc:
            log.exception("response %s failed", plan.response_id)
            status, reason = "failed", None
            self._metrics.errors.labels(code="response_failed").inc()
            await self.send(events.error(f"response failed: {exc}", code="response_failed", type_="server_error"))
        self._gate.close()
        outcome = runner.outcome
        if status == "completed":
            item.text = outcome.spoken.full_text() if runner.speaks else outcome.full_text
            item.status = "completed"
            if citations and item.text.strip():
                item.citations = citations
                await self._send_citations(runner, citations)
        else:
            played = outcome.clock.played_ms() if outcome.clock else 0.0
            item.text = outcome.spoken.heard_text(played) if runner.speaks else outcome.full_text
            item.status = "incomplete"
        item.audio_ms = outcome.spoken.total_audio_ms
        await self._send_response_end(runner, item, previous, status, reason, extra_output=tool_calls.output_items)
        if self._active is not None and self._active.runner is runner:
            self._active = None
        if status == "completed":
            self._thinking.after_answer()
        if status == "failed":
            await self._apologise_for(runner)
        if status == "completed" and runner.speaks:
            self._audible = _ActiveResponse(runner=runner, item=item, task=asyncio.current_task())
            await runner.wait_for_playout()
            if self._audible is not None and self._audible.runner is runner:
                self._audible = None
                self.input.set_interrupt_guard(None)
        elif self._active is None:
            self.input.set_interrupt_guard(None)

    async def _apologise_for(self, failed: ResponseRunner) -> None:
        """After a failed answer the user heard nothing of, say sorry: aloud when only the LLM
        failed, as text when the TTS did. An apology that fails itself is not apologised for."""
        outcome = failed.outcome
        if failed.plan.fixed_text is not None or self._closed or self._active is not None:
            return
        if outcome.spoken.total_audio_ms > 0 or (not failed.speaks and outcome.full_text):
            return  # part of the answer got through; the error event says the rest failed
        modalities = list(failed.plan.modalities)
        if outcome.failed_stage == "tts":
            modalities = ["text"]
        await self._start_response(TurnTimeline(), overrides={"output_modalities": modalities},
                                   fixed_text=apology("answer", self._user_language()))

    async def _send_citations(self, runner: ResponseRunner, citations: str) -> None:
        """Sources go into the transcript, never into the audio."""
        ids = {"response_id": runner.plan.response_id, "item_id": runner.plan.item_id}
        delta = "\n" + citations
        if runner.speaks:
            await self.send(events.audio_transcript_delta(**ids, delta=delta))
        else:
            await self.send(events.text_delta(**ids, delta=delta))

    async def _send_response_end(self, runner: ResponseRunner, item: ConversationItem, previous: str | None,
                                 status: str, reason: str | None,
                                 extra_output: list[ConversationItem] | None = None) -> None:
        plan = runner.plan
        ids = {"response_id": plan.response_id, "item_id": plan.item_id}
        text = item.wire_text()
        if runner.speaks:
            await self.send(events.audio_done(**ids))
            await self.send(events.audio_transcript_done(**ids, transcript=text))
        else:
            await self.send(events.text_done(**ids, text=text))
        await self.send(events.content_part_done(**ids, part_type="audio" if runner.speaks else "text", text=text))
        await self.send(events.output_item_done(response_id=plan.response_id, item=item.to_wire()))
        await self.send(events.item_done(item.to_wire(), previous_item_id=previous))
        latency = runner.timeline.as_ms()
        self._metrics.observe_timeline(latency)
        self._metrics.responses.labels(status=status).inc()
        log.info("response %s %s latency_ms=%s", plan.response_id, status, latency)
        output = [item.to_wire(), *(extra.to_wire() for extra in extra_output or ())]
        await self.send(events.response_done(self._response_wire(plan, status, output, reason, latency)))

    async def _interrupt(self, active: _ActiveResponse, *, reason: str) -> None:
        """Stop a response now and wait until its final events are sent."""
        if active.runner.handle.interrupted:
            return
        active.cancel_reason = reason
        self._gate.close()  # frames already queued are stale from this instant
        active.runner.handle.interrupt()
        await asyncio.wait({active.task})
