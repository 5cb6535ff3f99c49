"""Runs one spoken response: LLM tokens -> speakable chunks -> TTS -> paced audio frames.

Three owned tasks joined by bounded queues, so synthesis of the next sentence
overlaps the paced sending of the current one:

    llm task ──text queue──▶ tts task ──audio queue──▶ sender (this coroutine)

Cancelling the runner cancels all three; the generation gate drops any frame
that was already in flight, so nothing is sent after a cancel. The queues are
:class:`ClosableQueue`: a stage ends its stream with a synchronous ``close``,
so no cleanup ever waits on a full queue whose consumer is gone, and a
cancelled runner is finished as soon as its tasks see the cancel.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from models.interfaces import ChatMessage, GenerationParams, ToolCall
from server import events
from server.engines import Engines
from server.latency import TurnTimeline
from server.stage_executor import StageTimeout, run_with_deadline
from streaming.audio_frames import FrameSplitter, int16_to_bytes, resample_once
from streaming.closable_queue import ClosableQueue, QueueClosed
from streaming.output_valve import OutputValve
from streaming.playout_clock import PlayoutClock
from streaming.sentence_chunker import ChunkerParams, SentenceChunker
from streaming.speakable_text import SpeakableFilter
from streaming.speaker_label import SpeakerLabelFilter
from streaming.speech_handle import GenerationGate, SpeechHandle
from streaming.spoken_transcript import SpokenTranscript

log = logging.getLogger(__name__)

TEXT_QUEUE_CHUNKS = 8
AUDIO_QUEUE_FRAMES = 200
"""At 40 ms frames, up to 8 s synthesised ahead of the pacer; bounds memory per session."""

SendEvent = Callable[[dict[str, Any]], Awaitable[None]]
SendAudio = Callable[[bytes], Awaitable[None]]


class EngineTimeout(RuntimeError):
    """An engine call took longer than its configured limit."""


class EmptyAnswer(RuntimeError):
    """The LLM ended without a word (a small model's dropped tool call): a failure to the user."""


@dataclass(frozen=True)
class ResponsePlan:
    response_id: str
    item_id: str
    messages: list[ChatMessage]
    generation: GenerationParams
    modalities: tuple[str, ...]
    output_rate_hz: int
    voice: str
    speed: float
    frame_ms: int
    max_lead_ms: int
    binary_audio: bool
    first_token_timeout_s: float = 30.0
    token_timeout_s: float = 15.0
    tts_chunk_timeout_s: float = 30.0
    fixed_text: str | None = None
    """Say exactly this instead of asking the LLM (an apology when an engine failed)."""
    server_tools: frozenset[str] = frozenset()
    """Names among ``generation.tools`` that the server runs; the others are the client's."""
    max_tool_rounds: int = 3
    filler_after_s: float = 0.6
    filler_text: str = ""
    speaker_names: tuple[str, ...] = ()
    """The persona's names, besides the generic ones, whose label in front of the answer is dropped."""


@dataclass
class _ChunkStart:
    text: str


@dataclass(frozen=True)
class _Filler:
    """Words said while a slow tool runs; flushed out at once rather than held for a sentence end."""

    text: str


class ToolHooks(Protocol):
    """The session's side of a tool call: the conversation items and events it makes."""

    async def client_call(self, call: ToolCall) -> None:
        """Announce a call the client must run (``response.function_call_arguments.done``)."""
        ...

    async def server_call(self, call: ToolCall) -> str:
        """Run a server tool; its output (or an error text) for the LLM. Never raises."""
        ...


@dataclass
class ResponseOutcome:
    full_text: str = ""
    spoken: SpokenTranscript = field(default_factory=SpokenTranscript)
    clock: PlayoutClock | None = None
    error: str | None = None
    client_calls: list[ToolCall] = field(default_factory=list)
    """Calls left to the client: the response ends with them."""
    failed_stage: str | None = None
    """'llm' or 'tts' when that engine raised or timed out: the session decides how to apologise."""
    sent_audio: list[np.ndarray] = field(default_factory=list)
    """The int16 frames as sent, when the runner keeps them (``data.record = "audio"``): references."""


class ResponseRunner:
    def __init__(self, *, plan: ResponsePlan, engines: Engines, handle: SpeechHandle, gate: GenerationGate,
                 send_event: SendEvent, send_audio: SendAudio, timeline: TurnTimeline,
                 tools: ToolHooks | None = None, valve: OutputValve | None = None,
                 first_stream: AsyncIterator[str | ToolCall] | None = None, keep_audio: bool = False) -> None:
        """``valve``: held while a barge-in is judged; the sender sends nothing while it is.
        ``first_stream``: the first LLM round's tokens, already started (a preemptive answer).
        ``keep_audio``: keep the frames sent in ``outcome.sent_audio`` (for recording)."""
        self.plan = plan
        self._engines = engines
        self.handle = handle
        self._gate = gate
        self._send_event = send_event
        self._send_audio = send_audio
        self.timeline = timeline
        self._tools = tools
        self._valve = valve or OutputValve()
        self._first_stream = first_stream
        self._keep_audio = keep_audio
        self.outcome = ResponseOutcome(clock=PlayoutClock(max_lead_ms=plan.max_lead_ms))

    @property
    def speaks(self) -> bool:
        return "audio" in self.plan.modalities

    async def run(self) -> None:
        """Streams the whole response; raises CancelledError when interrupted."""
        if not self.speaks:
            await self._run_text_only()
            return
        text_queue: ClosableQueue[str] = ClosableQueue(TEXT_QUEUE_CHUNKS)
        audio_queue: ClosableQueue[_ChunkStart | np.ndarray] = ClosableQueue(AUDIO_QUEUE_FRAMES)
        llm_task = asyncio.create_task(self._generate(text_queue), name=f"llm-{self.plan.response_id}")
        tts_task = asyncio.create_task(self._synthesize(text_queue, audio_queue), name=f"tts-{self.plan.response_id}")
        try:
            await self._send_paced(audio_queue)
            audio_queue.discard()  # the sender is done: a producer still putting stops at once
            await asyncio.gather(llm_task, tts_task)
        finally:
            text_queue.discard()
            audio_queue.discard()
            for task in (llm_task, tts_task):
                task.cancel()
            # Bounded: the tasks' cleanup is synchronous (queue closes, a generator close handed
            # to the TTS worker), so this returns as soon as they have seen the cancel.
            await asyncio.gather(llm_task, tts_task, return_exceptions=True)

    async def _timed_tokens(self, stream: AsyncIterator[str]) -> AsyncIterator[str]:
        """An LLM that stalls (an endpoint down, a wedged server) fails the response instead of
        leaving the user in silence; cancelling the pending read closes the stream."""
        first = True
        while True:
            timeout = self.plan.first_token_timeout_s if first else self.plan.token_timeout_s
            try:
                token = await asyncio.wait_for(anext(stream), timeout)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                raise EngineTimeout(f"the LLM sent no {'first ' if first else ''}token for {timeout:g} s") from None
            first = False
            yield token

    def _token_stream(self, messages: list[ChatMessage], params: GenerationParams) -> AsyncIterator[str | ToolCall]:
        if self.plan.fixed_text is not None:
            return _fixed_tokens(self.plan.fixed_text)
        if self._first_stream is not None:
            stream, self._first_stream = self._first_stream, None
            return stream
        return self._engines.llm.stream_chat(messages, params)

    async def _answer_text(self) -> AsyncIterator[str | _Filler]:
        """The answer's text, across tool calls: a server tool's output goes back to the LLM,
        which then goes on answering (up to ``max_tool_rounds`` calls); a client tool ends
        the response with its call, and the client's output starts the next one."""
        messages = list(self.plan.messages)
        # Never a label in front of a fixed text (an apology); the LLM's answers lose theirs.
        label = SpeakerLabelFilter(self.plan.speaker_names) if self.plan.fixed_text is None else None
        for round_ in range(self.plan.max_tool_rounds + 1):
            params = self.plan.generation
            if round_ == self.plan.max_tool_rounds:
                params = dataclasses.replace(params, tools=())  # enough calls: answer in words now
            calls: list[ToolCall] = []
            stream = self._token_stream(messages, params)
            try:
                async for piece in self._timed_tokens(stream):
                    if isinstance(piece, ToolCall):
                        calls.append(piece)
                    elif label is None:
                        yield piece
                    elif text := label.push(piece):
                        yield text
                if label is not None and (text := label.finish()):
                    yield text
            finally:
                await stream.aclose()
            if not calls or self._tools is None:
                return
            client_calls = [c for c in calls if c.name not in self.plan.server_tools]
            if client_calls:
                for call in client_calls:
                    await self._tools.client_call(call)
                self.outcome.client_calls.extend(client_calls)
                return
            for call in calls:
                running = asyncio.create_task(self._tools.server_call(call), name=f"tool-{call.name}")
                try:
                    done, _ = await asyncio.wait({running}, timeout=self.plan.filler_after_s)
                    if not done and self.plan.filler_text and not self.outcome.full_text.strip():
                        yield _Filler(self.plan.filler_text)  # said while the tool runs
                    output = await running
                finally:
                    running.cancel()  # a barge-in cancels the call and its answer
                messages += [ChatMessage(role="assistant", content="", tool_calls=(call,)),
                             ChatMessage(role="tool", content=output, tool_call_id=call.call_id)]

    def _check_not_empty(self) -> None:
        if not self.outcome.full_text.strip() and not self.outcome.client_calls and self.plan.fixed_text is None:
            raise EmptyAnswer("the LLM answered with no words")

    async def _generate(self, text_queue: ClosableQueue[str]) -> None:
        # A voice slow per character (Kokoro) asks for a short first chunk of Mandarin.
        cjk_chars = getattr(self._engines.tts, "first_chunk_cjk_chars", None)
        chunker = SentenceChunker(ChunkerParams(first_chunk_cjk_chars=cjk_chars))
        self.timeline.mark("llm_request")
        try:
            async for token in self._answer_text():
                if isinstance(token, _Filler):
                    for chunk in chunker.flush():
                        await text_queue.put(chunk)
                    await text_queue.put(token.text)
                    continue
                self.timeline.mark("first_llm_token")
                self.outcome.full_text += token
                for chunk in chunker.push(token):
                    await text_queue.put(chunk)
            for chunk in chunker.flush():
                await text_queue.put(chunk)
            self._check_not_empty()
        except QueueClosed:
            return  # the TTS side is gone (an interrupt): nothing more to say
        except Exception:
            self.outcome.failed_stage = "llm"
            raise
        finally:
            text_queue.close()

    async def _synthesize(self, text_queue: ClosableQueue[str],
                          audio_queue: ClosableQueue[_ChunkStart | np.ndarray]) -> None:
        speakable = SpeakableFilter()
        framer = FrameSplitter(frame_samples=self.plan.output_rate_hz * self.plan.frame_ms // 1000, dtype=np.int16)
        try:
            while (chunk := await text_queue.get()) is not None:
                await audio_queue.put(_ChunkStart(chunk))
                spoken = speakable.push(chunk)
                if not spoken.strip():
                    continue
                self.timeline.mark("first_tts_chunk")
                await self._synthesize_clause(spoken, framer, audio_queue)
                for frame in framer.flush():
                    await audio_queue.put(frame)
        except QueueClosed:
            return  # the sender is gone (an interrupt)
        except Exception:
            self.outcome.failed_stage = self.outcome.failed_stage or "tts"
            raise
        finally:
            text_queue.discard()  # the LLM side stops at its next put
            audio_queue.close()

    async def _synthesize_clause(self, text: str, framer: FrameSplitter,
                                 audio_queue: ClosableQueue[_ChunkStart | np.ndarray]) -> None:
        """One clause through the TTS. An iterator left unfinished (an interrupt, a failure) is closed
        on the TTS worker (a generator cannot be closed while the worker is inside it), without
        waiting, so the engine drops the request at once."""
        tts, executor = self._engines.tts, self._engines.executors.tts
        pieces = tts.synthesize(text, voice=self.plan.voice, speed=self.plan.speed)
        out_rate = self.plan.output_rate_hz

        def next_audio() -> np.ndarray | None:
            # Resampled here, on the TTS worker, not on the event loop.
            pcm = next(pieces, None)
            if pcm is None:
                return None
            return resample_once(pcm, in_rate=tts.sample_rate, out_rate=out_rate).astype(np.int16, copy=False)

        finished = False
        try:
            while True:
                try:
                    pcm = await run_with_deadline(executor, next_audio, timeout_s=self.plan.tts_chunk_timeout_s)
                except StageTimeout:
                    raise EngineTimeout(f"the TTS made no audio for {self.plan.tts_chunk_timeout_s:g} s") from None
                if pcm is None:
                    finished = True
                    return
                self.timeline.mark("first_tts_audio")
                for frame in framer.push(pcm):
                    await audio_queue.put(frame)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None and not finished:
                try:
                    executor.submit(_close_quietly, close)
                except RuntimeError:  # the executor is shut down (server stopping)
                    pass

    async def _send_paced(self, audio_queue: ClosableQueue[_ChunkStart | np.ndarray]) -> None:
        clock = self.outcome.clock
        assert clock is not None
        while (item := await audio_queue.get()) is not None:
            await self._valve.wait_open()  # paused over a possible barge-in: the item waits here
            if not self._gate.is_current(self.handle.generation):
                return
            if isinstance(item, _ChunkStart):
                before = len(self.outcome.spoken.full_text())
                self.outcome.spoken.add_text(item.text)
                await self._send_event(events.audio_transcript_delta(
                    response_id=self.plan.response_id, item_id=self.plan.item_id,
                    delta=self.outcome.spoken.full_text()[before:]))
                continue
            while (delay := clock.delay_before_send_s()) > 0 or self._valve.held:
                await asyncio.sleep(delay)
                await self._valve.wait_open()  # held during the sleep: not one more frame until released
            if not self._gate.is_current(self.handle.generation):
                return
            duration_ms = len(item) * 1000 / self.plan.output_rate_hz
            pcm = int16_to_bytes(item)
            if self.plan.binary_audio:
                await self._send_audio(pcm)
            else:
                await self._send_event(events.audio_delta(
                    response_id=self.plan.response_id, item_id=self.plan.item_id,
                    delta_b64=base64.b64encode(pcm).decode("ascii")))
            self.timeline.mark("first_audio_sent")
            clock.mark_sent(duration_ms)
            self.outcome.spoken.add_audio(duration_ms)
            if self._keep_audio:
                self.outcome.sent_audio.append(item)

    async def _run_text_only(self) -> None:
        self.timeline.mark("llm_request")
        try:
            async for token in self._answer_text():
                text = token.text if isinstance(token, _Filler) else token
                self.timeline.mark("first_llm_token")
                self.outcome.full_text += text
                await self._send_event(events.text_delta(
                    response_id=self.plan.response_id, item_id=self.plan.item_id, delta=text))
            self._check_not_empty()
        except Exception:
            self.outcome.failed_stage = "llm"
            raise

    async def wait_for_playout(self) -> None:
        """After the last frame is sent, wait until the client has played it (for barge-in)."""
        clock = self.outcome.clock
        if clock is not None and (remaining := clock.remaining_ms()) > 0:
            await asyncio.sleep(remaining / 1000)


async def _fixed_tokens(text: str) -> AsyncIterator[str]:
    yield text


def _close_quietly(close: Callable[[], None]) -> None:
    try:
        close()
    except Exception:  # noqa: BLE001 (an engine's cleanup error must not reach a later job)
        log.warning("closing a TTS stream failed", exc_info=True)
