"""The assistant's side of one session: start a response, run it, stop it, end it.

A response lives in an :class:`AssistantResponse` from ``response.created`` to
``response.done``, and one task (:meth:`Responder._drive`) owns it: it waits for
the user's words, asks the thinking stage for the prompt, builds the plan, runs
the :class:`ResponseRunner`, and sends the closing events.

The barge-in path, start to end ("pause first, decide later"):

1. the VAD hears a first voiced frame during an answer: ``UserTurns`` calls
   :meth:`Responder.pause` and the paced sender holds its next frame; the
   client falls silent within the play-out lead;
2. a false interruption (a click, a turn with no words, a backchannel) ends
   with :meth:`Responder.resume`: the answer goes on where it paused. A real
   one (long speech, real words, or the pause's time limit) calls
   :meth:`Responder.barge_in`;
3. :meth:`interrupt` closes the generation gate (no frame of this answer
   leaves from now on) and interrupts its :class:`SpeechHandle`. It returns at
   once: the input pipeline never waits for a response to wind down;
4. the response's task sees the interrupt, cancels the runner (whose cleanup
   never blocks) and sends ``response.done`` (``cancelled``), with the
   transcript cut at what the client had played.

An answer whose audio was all sent but is still playing on the client is
:attr:`playing_out`: speech then truncates it to what was heard.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from models.interfaces import ChatMessage, ToolSpec
from server import events
from server.answer_ahead import AnswerAhead
from server.apologies import apology, filler
from server.audio_input import AudioInput
from server.config import Config
from server.conversation import Conversation, ConversationItem
from server.engines import Engines
from server.latency import TurnTimeline
from server.metrics import ServerMetrics
from server.preemptive_answer import PreemptiveAnswer, PreparedRequest
from server.response_closing import send_citations, send_done
from server.response_planning import ResponseRequest, ToolChoice, instructions_for, plan_response
from server.response_runner import ResponseOutcome, ResponseRunner
from server.session_settings import SessionSettings
from server.session_thinking import SessionThinking
from server.tool_calls import ResponseToolCalls
from server.turn_capture import TurnCapture
from streaming.output_valve import OutputValve
from streaming.speech_handle import GenerationGate, SpeechHandle
from thinking.tool_registry import ToolRegistry

log = logging.getLogger(__name__)


class ResponseHost(Protocol):
    """What a responder needs of its session."""

    config: Config
    engines: Engines
    settings: SessionSettings
    conversation: Conversation
    input: AudioInput
    metrics: ServerMetrics
    thinking: SessionThinking

    @property
    def closed(self) -> bool: ...

    async def send(self, event: dict[str, Any]) -> None: ...

    async def send_audio_bytes(self, pcm: bytes) -> None: ...

    async def add_item(self, item: ConversationItem, *, after: str | None = None) -> str | None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any] | None: ...

    def user_language(self) -> str | None: ...


@dataclass(eq=False)
class AssistantResponse:
    request: ResponseRequest
    handle: SpeechHandle
    item: ConversationItem
    previous_item_id: str | None
    timeline: TurnTimeline
    tool_calls: ResponseToolCalls
    runner: ResponseRunner | None = None
    """Made when the plan is complete; None while the prompt is being prepared."""
    cancel_reason: str | None = None
    citations: str = ""
    preemption: PreemptiveAnswer | None = None
    """The speculative answer this response took over (or turned down): ended with the response."""

    @property
    def outcome(self) -> ResponseOutcome:
        return self.runner.outcome if self.runner is not None else _NOTHING_SAID

    def played_ms(self) -> float:
        clock = self.outcome.clock
        return clock.played_ms() if clock is not None else 0.0


_NOTHING_SAID = ResponseOutcome()


class Responder:
    def __init__(self, host: ResponseHost, *, tools: ToolRegistry | None = None,
                 capture: TurnCapture | None = None) -> None:
        """``tools``: the server's tool registry (``assistant.server_tools`` names those offered).
        ``capture``: told of every response's end, to keep the turn for training (``data.record``)."""
        self._host = host
        self._tools = tools
        self._capture = capture
        self._gate = GenerationGate()
        self._valve = OutputValve()
        """Held while speech over an answer is judged: the answer's sender sends nothing."""
        self._current: AssistantResponse | None = None
        self.playing_out: AssistantResponse | None = None
        """Its audio is all sent; the client may still be playing it."""
        self._starting = 0
        """Responses waiting in ``create`` for the one before them to end (graceful shutdown waits for them)."""
        self._creating = asyncio.Lock()
        self._by_item: dict[str, AssistantResponse] = {}
        """Spoken responses by item id, for ``conversation.item.truncate``."""
        self.ahead = AnswerAhead(host, answering=lambda: self.answering, audible=lambda: self.audible,
                                 prompt_for=self._prompt, tool_choice=self._tool_choice, language=self._language)
        """Work on the next answer before it is asked for (server/answer_ahead.py)."""

    # -- state ------------------------------------------------------------------------
    @property
    def answering(self) -> bool:
        """A response is being started or generated, or its audio is still being sent."""
        return self._current is not None or self._starting > 0

    @property
    def audible(self) -> bool:
        return self._current is not None or self.playing_out is not None

    @property
    def current(self) -> AssistantResponse | None:
        return self._current

    def spoken(self, item_id: str) -> AssistantResponse | None:
        return self._by_item.get(item_id)

    def forget(self, item_id: str) -> None:
        self._by_item.pop(item_id, None)

    # -- starting ---------------------------------------------------------------------
    async def create(self, timeline: TurnTimeline, *, overrides: dict[str, Any] | None = None,
                     after: Sequence[asyncio.Task[Any]] = (), fixed_text: str | None = None,
                     replace_reason: str | None = None) -> None:
        """Starts a response: ``response.created`` goes out now; the prompt is built once the
        transcriptions in ``after`` have finished, so it holds the user's latest words.

        A response still running is interrupted (for ``replace_reason``: a new user turn) and its
        ``response.done`` sent first; the wait is bounded, since its cleanup never blocks.
        """
        self._starting += 1
        try:
            async with self._creating:  # two turns ending together must not start two answers
                previous = self._current
                if previous is not None:
                    self.interrupt(replace_reason or "turn_detected")
                    await previous.handle.wait_for_done()
                await self._begin(timeline, overrides or {}, after, fixed_text)
        finally:
            self._starting -= 1

    async def _begin(self, timeline: TurnTimeline, overrides: dict[str, Any], after: Sequence[asyncio.Task[Any]],
                     fixed_text: str | None) -> None:
        host = self._host
        request = ResponseRequest.from_settings(host.settings, overrides, host.config)
        item = ConversationItem(id=request.item_id, role="assistant",
                                content_type="output_audio" if request.speaks else "output_text",
                                status="in_progress")
        previous = await host.add_item(item)
        response = AssistantResponse(request=request, handle=SpeechHandle(response_id=request.response_id),
                                     item=item, previous_item_id=previous, timeline=timeline,
                                     tool_calls=ResponseToolCalls(
                                         response_id=request.response_id, message_item_id=request.item_id,
                                         registry=self._tools, add_item=host.add_item, send=host.send))
        self._gate.open(response.handle.generation)
        self._current = response  # from now on a barge-in interrupts this one, even before it runs
        if request.speaks:
            self._by_item[item.id] = response
        await host.send(events.response_created(request.to_wire(
            status="in_progress", conversation_id="conv_" + host.settings.id, output=[])))
        await host.send(events.output_item_added(response_id=request.response_id, item=item.to_wire()))
        await host.send(events.item_added(item.to_wire(), previous_item_id=previous))
        await host.send(events.content_part_added(response_id=request.response_id, item_id=item.id,
                                                  part_type="audio" if request.speaks else "text"))
        if request.speaks:
            host.input.set_interrupt_guard(host.config.audio.barge_in_min_speech_ms)
        self.playing_out = None
        task = host.spawn(self._drive(response, after=list(after), fixed_text=fixed_text),
                          name=f"response-{request.response_id}")
        if task is None:  # the session is closing
            self._current = None
            response.handle.mark_done()

    # -- stopping ---------------------------------------------------------------------
    def interrupt(self, reason: str) -> bool:
        """Stops the current response now and returns at once; its task sends ``response.done``."""
        response = self._current
        if response is None or response.handle.interrupted:
            return False
        response.cancel_reason = reason
        self._gate.close(response.handle.generation)  # frames already queued are stale from this instant
        response.handle.interrupt()
        return True

    @property
    def paused(self) -> bool:
        return self._valve.held

    def pause(self) -> None:
        """Speech may be starting over the answer: send nothing more until :meth:`resume` or
        :meth:`barge_in`. Synchronous: the input pipeline calls it on the first voiced frame."""
        self._valve.hold()

    def resume(self) -> None:
        """It was not an interruption: the answer goes on where it paused."""
        self._valve.release()

    def barge_in(self) -> dict[str, Any] | None:
        """The user interrupts the assistant: stop the answer, or cut one still playing on the
        client at what was heard. Synchronous: the response's own task sends its ``response.done``;
        the ``conversation.item.truncated`` of an answer cut while playing out is returned, to be
        sent in order with the user's turn events."""
        interrupted = self.interrupt("turn_detected")
        self._valve.release()  # the interrupted answer's frames are stale already (gate closed)
        self._host.input.set_interrupt_guard(None)
        if interrupted or (playing := self.playing_out) is None:
            return None
        self.playing_out = None
        played = playing.played_ms()
        truncate(playing, played)
        return events.item_truncated(item_id=playing.item.id, audio_end_ms=int(played))

    # -- running ----------------------------------------------------------------------
    async def _prepare_and_run(self, response: AssistantResponse, after: list[asyncio.Task[Any]],
                               fixed_text: str | None) -> None:
        host = self._host
        request = response.request
        if after:  # cancelling this wait (a barge-in) leaves the transcriptions running
            await asyncio.wait(after)
        confirmation = host.thinking.take_confirmation() if fixed_text is None else None
        tools = self._tool_choice()
        messages = []
        if confirmation is not None:  # a memory request: its fixed reply, no LLM
            fixed_text = confirmation
        elif fixed_text is None:
            messages, response.citations = await self._prompt(request, tools, host.conversation.chat_history(),
                                                              self._language())
        plan = plan_response(request, config=host.config, tools=tools, messages=messages, fixed_text=fixed_text,
                             filler_text=filler(self._language()))
        preemption = self.ahead.take()
        first_stream = None
        if preemption is not None:
            response.preemption = preemption
            if plan.fixed_text is None and preemption.matches(PreparedRequest(plan.messages, plan.generation)):
                first_stream = preemption.adopt()
                log.info("response %s adopts the answer started on %r", request.response_id, preemption.user_text)
            else:
                preemption.discard()
        response.runner = ResponseRunner(plan=plan, engines=host.engines, handle=response.handle, gate=self._gate,
                                         send_event=host.send, send_audio=host.send_audio_bytes,
                                         timeline=response.timeline, tools=response.tool_calls,
                                         valve=self._valve, first_stream=first_stream,
                                         keep_audio=self._capture is not None and self._capture.wants_audio)
        response.timeline.mark("prompt_ready")
        await response.runner.run()

    async def _prompt(self, request: ResponseRequest, tools: ToolChoice, history: list[ChatMessage],
                      language: str | None) -> tuple[list[ChatMessage], str]:
        """The LLM's messages for an answer to ``history``, and the citations line."""
        query = next((m.content for m in reversed(history) if m.role == "user"), "")
        prepared = await self._host.thinking.prepare(instructions=instructions_for(request, tools, self._host.config),
                                                     history=history, query=query, language=language)
        return prepared.messages, prepared.citations

    def offered_tools(self) -> tuple[ToolSpec, ...]:
        """The tools the model is offered now: the server's named in ``assistant.server_tools``, the client's."""
        choice = self._tool_choice()
        return (*choice.server_tools, *choice.client_tools)

    def _tool_choice(self) -> ToolChoice:
        settings = self._host.settings
        wanted = {n.strip() for n in self._host.config.assistant.server_tools.split(",") if n.strip()}
        server_tools = tuple(s for s in self._tools.specs() if s.name in wanted) if self._tools is not None else ()
        client_tools = tuple(settings.tools) if settings.tool_choice != "none" else ()
        return ToolChoice(server_tools=server_tools, client_tools=client_tools, tool_choice=settings.tool_choice)

    def _language(self) -> str | None:
        persona = self._host.settings.persona
        return self._host.user_language() or (persona.language if persona else None)

    async def _drive(self, response: AssistantResponse, *, after: list[asyncio.Task[Any]],
                     fixed_text: str | None) -> None:
        host = self._host
        work = asyncio.create_task(self._prepare_and_run(response, after, fixed_text),
                                   name=f"run-{response.request.response_id}")
        try:
            finished = await response.handle.wait_if_not_interrupted(work)
        except asyncio.CancelledError:  # the session is closing
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            raise
        status, reason = "completed", None
        if not finished:
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)  # bounded: the runner's cleanup never blocks
            status, reason = "cancelled", response.cancel_reason
        elif response.handle.interrupted:  # all sent as the user started talking: cut at what was heard
            status, reason = "cancelled", response.cancel_reason
        elif (exc := _failure(work)) is not None:
            log.error("response %s failed", response.request.response_id, exc_info=exc)
            status = "failed"
            host.metrics.errors.labels(code="response_failed").inc()
            await host.send(events.error(f"response failed: {exc}", code="response_failed", type_="server_error"))
        await self._end(response, status, reason)

    async def _end(self, response: AssistantResponse, status: str, reason: str | None) -> None:
        host = self._host
        if response.preemption is not None:
            response.preemption.discard()  # an adopted stream the runner never opened stops here
        self._gate.close(response.handle.generation)
        outcome, item = response.outcome, response.item
        speaks = response.request.speaks
        if status == "completed":
            item.text = outcome.spoken.full_text() if speaks else outcome.full_text
            item.status = "completed"
            if response.citations and item.text.strip():
                item.citations = response.citations
                await send_citations(host.send, response)
        else:
            item.text = outcome.spoken.heard_text(response.played_ms()) if speaks else outcome.full_text
            item.status = "incomplete"
        item.audio_ms = outcome.spoken.total_audio_ms
        await send_done(host.send, host.metrics, response, status=status, reason=reason,
                        conversation_id="conv_" + host.settings.id)
        if self._current is response:
            self._current = None
        response.handle.mark_done()
        if status == "completed":
            host.thinking.after_answer()
            if response.runner is not None and response.runner.plan.fixed_text is None:
                self.ahead.warm_next_prompt()
        apologised = await self._apologise_for(response) if status == "failed" else False
        if status == "completed" and speaks and response.runner is not None:
            self.playing_out = response
            try:
                await response.runner.wait_for_playout()
            finally:  # kept as heard: a barge-in while it played has cut its item already
                self._keep(response, status)
            if self.playing_out is response:
                self.playing_out = None
                host.input.set_interrupt_guard(None)
        else:
            self._keep(response, status, apologised=apologised)
            if self._current is None:
                host.input.set_interrupt_guard(None)

    def _keep(self, response: AssistantResponse, status: str, *, apologised: bool = False) -> None:
        """Hands the finished turn to the recorder: synchronous, never blocks, never raises."""
        if self._capture is None:
            return
        try:
            self._capture.response_finished(response, status, apologised=apologised)
        except Exception:  # noqa: BLE001 (recording must never cost the conversation a turn)
            log.exception("response %s: the turn could not be kept for recording", response.request.response_id)

    async def _apologise_for(self, failed: AssistantResponse) -> bool:
        """After a failed answer the user heard nothing of, say sorry: aloud when only the LLM
        failed, as text when the TTS did. An apology that fails itself is not apologised for.
        True when an apology was started."""
        host = self._host
        outcome = failed.outcome
        plan = failed.runner.plan if failed.runner is not None else None
        if (plan is not None and plan.fixed_text is not None) or host.closed or self.answering:
            return False
        if outcome.spoken.total_audio_ms > 0 or (not failed.request.speaks and outcome.full_text):
            return False  # part of the answer got through; the error event says the rest failed
        modalities = ["text"] if outcome.failed_stage == "tts" else list(failed.request.modalities)
        await self.create(TurnTimeline(), overrides={"output_modalities": modalities},
                          fixed_text=apology("answer", host.user_language()))
        return True

    def close(self) -> None:
        self._gate.close()
        self.ahead.discard()
        self._valve.release()


def truncate(response: AssistantResponse, played_ms: float) -> None:
    """The conversation keeps what the user heard of a spoken answer."""
    response.item.text = response.outcome.spoken.heard_text(played_ms)
    response.item.status = "incomplete"


def _failure(work: asyncio.Task[Any]) -> BaseException | None:
    """The exception that ended ``work``; a CancelledError here came from below (a job cancelled
    at shutdown), since neither the interrupt nor the session cancelled it."""
    if work.cancelled():
        return RuntimeError("the response was cancelled by the server")
    return work.exception()

