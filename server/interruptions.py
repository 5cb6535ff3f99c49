"""Speech over an audible answer: pause it at once, then confirm the interruption or resume.

LiveKit calls this ``resume_false_interruption``. The stages, and what the client sees:

1. **Onset** (the VAD's first voiced frame, long before ``audio.barge_in_min_speech_ms``
   confirms speech): the answer's sender holds its frames (:meth:`Responder.pause`). The
   client runs out of audio within the play-out lead (``audio.max_lead_ms``) and falls silent.
   Nothing is sent to it.
2. **Held turn**: if the speech becomes a turn, its ``input_audio_buffer.speech_started`` and
   ``speech_stopped`` are held back here. Clients stop playback on ``speech_started`` (the
   web page does, and so do most Realtime clients), so sending it now would make an
   unmodified client drop the answer that may yet resume.
3. **Verdict** (:meth:`BargeInPolicy.judge`): enough speech or real words (the speculative
   transcript at the speech stop, or the turn's own) **confirm**:
   the held events go out in their order, then the answer is cancelled and cut at what was
   heard, exactly as before (``response.done`` ``cancelled``). A click, a turn with no words
   or a backchannel **resume** the answer where it paused; the held turn is dropped without a
   trace (no user item: "uh-huh" is not a question, and keeping it would split the answer
   from the user's next words in the history), and the answer's transcript stays whole.
   At the pause's time limit a short sound's answer plays on; its late words still judge it.

Every method that the input pipeline calls is synchronous or returns at once; the only
tasks are the ordered send of released events and the time limit (a timer handle).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.metrics import ServerMetrics
from server.responder import Responder
from server.session_thinking import SessionThinking
from streaming.barge_in import BargeInPolicy, Evidence, OnsetWithdrawn, PauseExpired, SpeechLasted, Verdict, WordsHeard

log = logging.getLogger(__name__)


class InterruptionHost(Protocol):
    responses: Responder
    thinking: SessionThinking
    metrics: ServerMetrics

    async def send(self, event: dict[str, Any]) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any] | None: ...


@dataclass(eq=False)
class _Hold:
    """One stretch of speech over an answer, not judged yet."""

    item_id: str | None = None
    """The held user turn's item, once the speech became a turn."""
    held: list[dict[str, Any]] = field(default_factory=list)
    words_pending: bool = False
    """The turn has stopped and its words are awaited: a click meanwhile must not resume."""
    timer: asyncio.TimerHandle | None = None
    """The pause's time limit; None while the answer plays (resumed before the turn's end)."""
    speech_ms: int = 0
    """The longest speech run heard in this hold."""


class Interruptions:
    def __init__(self, host: InterruptionHost, *, policy: BargeInPolicy) -> None:
        self._host = host
        self.policy = policy
        self._hold: _Hold | None = None
        self._released: list[dict[str, Any]] = []
        """Events of a confirmed turn not sent yet; they go out before any later turn event."""
        self._sending = asyncio.Lock()

    # -- state ------------------------------------------------------------------------
    def holds_turn(self, item_id: str | None = None) -> bool:
        """A user turn (``item_id``, or any) is held: its events wait for the verdict."""
        hold = self._hold
        return hold is not None and hold.item_id is not None and (item_id is None or hold.item_id == item_id)

    # -- evidence ---------------------------------------------------------------------
    def onset(self) -> None:
        """Speech may be starting over the answer: pause it now."""
        if self._hold is None:
            if not self._host.responses.audible:
                return
            self._hold = _Hold()
        self._pause(self._hold)

    def hold_turn(self, item_id: str, event: dict[str, Any]) -> bool:
        """The speech became turn ``item_id``: hold its ``speech_started`` when the answer is
        paused for it. False when there is nothing to hold for (no answer was paused)."""
        hold = self._hold
        if hold is None:
            return False
        if hold.item_id is not None:  # the user goes on after a held turn ended: that is talk
            self.confirm("a second turn over the answer")
            return False
        hold.item_id = item_id
        hold.held.append(event)
        return True

    def hold_event(self, event: dict[str, Any], *, words_pending: bool) -> None:
        """A later event of the held turn (its ``speech_stopped``)."""
        assert self._hold is not None
        self._hold.held.append(event)
        self._hold.words_pending = words_pending
        if words_pending and self._hold.timer is None:
            self._pause(self._hold)  # resumed by an earlier "yeah": the next words are judged paused

    def heard(self, text: str) -> Verdict:
        """The held turn's words (so far): judged with how long its speech lasted."""
        return self.observe(WordsHeard(text, speech_ms=self._hold.speech_ms if self._hold else None))

    def observe(self, evidence: Evidence) -> Verdict:
        """Applies the policy's verdict on new evidence: confirm (cancel the answer), resume the
        answer, or wait. A turn judged a false interruption stays held until :meth:`drop_turn`."""
        hold = self._hold
        if hold is None:
            return Verdict.WAIT
        if isinstance(evidence, SpeechLasted):
            hold.speech_ms = max(hold.speech_ms, evidence.speech_ms)
        verdict = self.policy.judge(evidence, words_pending=hold.item_id is not None and hold.words_pending)
        if verdict is Verdict.CONFIRM:
            self.confirm(type(evidence).__name__)
        elif verdict is Verdict.RESUME:
            hold.words_pending = False
            self._resume_answer(hold)
            if hold.item_id is None:  # a click: nothing is left to judge
                self._hold = None
                self._host.metrics.barge_ins.labels(verdict="resumed").inc()
        return verdict

    # -- verdicts ---------------------------------------------------------------------
    def confirm(self, why: str) -> None:
        """A real interruption: the held events are released, the answer cancelled (synchronous)."""
        hold, self._hold = self._hold, None
        if hold is None:
            return
        log.info("barge-in confirmed (%s)", why)
        self._host.metrics.barge_ins.labels(verdict="confirmed").inc()
        self._stop_timer(hold)
        if hold.item_id is not None:
            self._host.thinking.user_started_speaking()
        self._released.extend(hold.held)
        if (truncated := self._host.responses.barge_in()) is not None:
            self._released.append(truncated)
        if self._released:
            self._host.spawn(self.send_released(), name="barge-in-events")

    def drop_turn(self) -> None:
        """The held turn was no interruption: its events never go out, and the answer goes on."""
        hold, self._hold = self._hold, None
        if hold is not None:
            log.info("false interruption: the answer resumes")
            self._host.metrics.barge_ins.labels(verdict="resumed").inc()
            self._resume_answer(hold)

    def _pause(self, hold: _Hold) -> None:
        self._host.responses.pause()
        if hold.timer is None:
            loop = asyncio.get_running_loop()
            hold.timer = loop.call_later(self.policy.params.max_pause_ms / 1000, self._expired, hold)

    def _resume_answer(self, hold: _Hold) -> None:
        self._stop_timer(hold)
        self._host.responses.resume()

    def _expired(self, hold: _Hold) -> None:
        hold.timer = None
        if self._hold is hold and self.observe(PauseExpired(speech_ms=hold.speech_ms)) is Verdict.RESUME:
            log.info("pause limit after %d ms of speech: the answer resumes while its words are judged",
                     hold.speech_ms)

    @staticmethod
    def _stop_timer(hold: _Hold) -> None:
        if hold.timer is not None:
            hold.timer.cancel()
            hold.timer = None

    def withdrawn(self) -> None:
        self.observe(OnsetWithdrawn())

    # -- ordered sending --------------------------------------------------------------
    async def send(self, event: dict[str, Any]) -> None:
        """A user-turn event, after any released event still unsent (their order is the turn's)."""
        async with self._sending:
            await self._send_released_locked()
            await self._host.send(event)

    async def send_released(self) -> None:
        async with self._sending:
            await self._send_released_locked()

    async def _send_released_locked(self) -> None:
        while self._released:
            await self._host.send(self._released.pop(0))

    def close(self) -> None:
        """The session ends: no timer outlives it."""
        hold, self._hold = self._hold, None
        if hold is not None:
            self._stop_timer(hold)
