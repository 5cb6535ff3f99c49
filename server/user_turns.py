"""The user's side of one session: speech start and stop, live previews, recognition, the turn's answer.

:class:`AudioInput` calls these hooks as the VAD and the turn detector decide:

- ``on_speech_onset`` / ``on_onset_withdrawn``: speech may be starting over an
  answer: pause it now, and judge later (:mod:`server.interruptions`);
- ``on_speech_started``: a new user item; over an answer, a turn held until it is
  judged an interruption (then the answer is cancelled: :meth:`Responder.barge_in`,
  which never waits) or not (then the answer resumes and the turn is dropped);
- ``on_speech_stopped``: speculative recognition starts on the turn so far, so
  Whisper overlaps the end-of-turn decision;
- ``on_utterance``: the turn is over: commit it, take the transcript (the
  speculative one when the audio did not change), then answer unless it was
  only a backchannel ("uh-huh", "嗯") said over the answer. A held turn is
  judged on its transcript before it becomes an item at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

import numpy as np

from models.interfaces import MODEL_SAMPLE_RATE_HZ, Transcript
from models.language_router import detect_language
from server import events
from server.apologies import apology
from server.audio_input import AudioInput, Utterance
from server.config import Config
from server.conversation import ConversationItem
from server.early_decode import EarlyDecode
from server.engines import Engines
from server.ids import new_id
from server.interruptions import Interruptions
from server.latency import TurnTimeline
from server.metrics import ServerMetrics
from server.partial_transcripts import PartialTranscripts
from server.pause_words import PauseWords
from server.responder import Responder
from server.session_settings import SessionSettings
from server.session_thinking import SessionThinking
from server.stage_executor import run_with_deadline
from server.turn_capture import TurnCapture
from server.turn_previews import TurnPreviews
from streaming.barge_in import BargeInPolicy, InterruptionParams, SpeechLasted, Verdict

log = logging.getLogger(__name__)

class TurnHost(Protocol):
    """What the user's turns need of their session."""

    config: Config
    engines: Engines
    settings: SessionSettings
    thinking: SessionThinking
    responses: Responder
    input: AudioInput
    metrics: ServerMetrics

    @property
    def closed(self) -> bool: ...

    async def send(self, event: dict[str, Any]) -> None: ...

    async def add_item(self, item: ConversationItem, *, after: str | None = None) -> str | None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any] | None: ...


class UserTurns:
    def __init__(self, host: TurnHost, *, previews: Sequence[PartialTranscripts] = (),
                 capture: TurnCapture | None = None) -> None:
        """``capture``: told of each turn's final words (and its audio), to keep them for training."""
        self._host = host
        self._capture = capture
        self._previews = TurnPreviews(previews, settings=lambda: host.settings, last_language=lambda: self.last_language)
        audio = host.config.audio
        self._barge_in = BargeInPolicy(params=InterruptionParams(
            confirm_speech_ms=audio.barge_in_confirm_speech_ms, max_pause_ms=audio.barge_in_max_pause_ms))
        self._interruptions = Interruptions(host, policy=self._barge_in)
        self._speech_item_id: str | None = None
        self._spoke_over_answer = False
        self._early: EarlyDecode | None = None
        self._pause_words = PauseWords(host, barge_in=self._barge_in)
        self._transcribing: dict[str, asyncio.Task[Any]] = {}
        self._uncommitted: TurnTimeline | None = None
        """The timeline of a turn committed without an answer (push-to-talk), for response.create."""
        self.last_language: str | None = None
        """Whisper's language of the last user turn with words: auto-detect sessions preview only its language."""

    # -- languages --------------------------------------------------------------------
    def user_language(self) -> str | None:
        return self._host.settings.transcription_language or self.last_language

    def text_language(self, text: str) -> str | None:
        return "zh" if detect_language(text) == "zh" else self.user_language() or "en"

    # -- InputHooks -------------------------------------------------------------------
    def _interrupts(self) -> bool:
        td = self._host.settings.turn_detection
        return td is not None and td.interrupt_response

    def on_speech_onset(self) -> None:
        if self._interrupts():
            self._interruptions.onset()

    def on_onset_withdrawn(self) -> None:
        self._interruptions.withdrawn()

    async def on_speech_started(self, audio_start_ms: int) -> None:
        host = self._host
        self._speech_item_id = new_id("item")
        self._spoke_over_answer = host.responses.audible
        started = events.speech_started(audio_start_ms=audio_start_ms, item_id=self._speech_item_id)
        if self._interrupts():
            self._interruptions.onset()  # an answer that became audible since the onset pauses too
            if self._interruptions.hold_turn(self._speech_item_id, started):
                return  # over an answer: judged before the client hears of it (server/interruptions.py)
        host.thinking.user_started_speaking()
        await self._interruptions.send(started)
        self._previews.start(self._speech_item_id)
        if self._interrupts() and (truncated := host.responses.barge_in()) is not None:
            await self._interruptions.send(truncated)

    def on_turn_audio(self, audio: np.ndarray) -> None:
        self._previews.feed(audio)
        if self._interruptions.holds_turn():
            self._interruptions.observe(SpeechLasted(self._host.input.speech_ms))

    async def on_speech_stopped(self, audio_end_ms: int, audio: np.ndarray) -> None:
        item_id = self._speech_item_id or new_id("item")
        stopped = events.speech_stopped(audio_end_ms=audio_end_ms, item_id=item_id)
        held = self._interruptions.holds_turn(item_id)
        self._previews.hold()
        if not held:
            await self._interruptions.send(stopped)
        # The turn usually ends on exactly this audio, so decoding it now overlaps Whisper with the
        # end-of-turn decision. If the user goes on, the result is dropped. A streaming ASR that
        # made the previews already has the turn decoded: nothing to start.
        early = self._early
        if early is not None and early.at_pause and not held:
            # Decoded from the pause on: what came since is the stop's silence. The turn ends on
            # this audio as on that, so the transcript stands for it.
            early.samples, early.at_pause = len(audio), False
            self._pause_words.expect_judged(self.user_language())
            early.task.add_done_callback(lambda done: self._read_pause(early, done))
            return
        self._discard_early()
        if self._previews.will_give_final(self._speech_item_id):
            return
        task = self._host.spawn(self._recognise(audio, preview=True), name="early-asr")
        if task is not None:
            early = self._early = EarlyDecode(samples=len(audio), task=task)
            task.add_done_callback(early.finished)
            if not held:
                self._pause_words.expect_judged(self.user_language())
                task.add_done_callback(lambda done: self._read_pause(early, done))
        if held:  # its words, known before the turn end, judge the paused answer
            self._interruptions.hold_event(stopped, words_pending=task is not None)
            if task is not None:
                task.add_done_callback(lambda done: self._judge_early_words(item_id, done))

    def on_speech_paused(self, audio: np.ndarray) -> None:
        """A short pause: the turn so far is recognised now if the recogniser is free, so that
        at the stop its transcript is (nearly) ready. Never when it would queue: then it would
        delay the decode of a turn that did end, another session's or this one's."""
        host = self._host
        self._previews.hold()
        if (self._early is not None or self._interruptions.holds_turn(self._speech_item_id)
                or not host.engines.executors.asr.idle
                or (self._previews.will_give_final(self._speech_item_id))):
            return
        task = host.spawn(self._recognise(audio, preview=True), name="pause-asr")
        if task is not None:
            early = self._early = EarlyDecode(samples=len(audio), task=task, at_pause=True)
            task.add_done_callback(early.finished)

    def on_pause_resumed(self) -> None:
        """The user went on after the short pause: its decode is stale."""
        self._previews.release()
        if self._early is not None and self._early.at_pause:
            self._discard_early()

    def _judge_early_words(self, item_id: str, task: asyncio.Task[Transcript]) -> None:
        if task.cancelled() or task.exception() is not None or not self._interruptions.holds_turn(item_id):
            return  # a failed decode leaves the verdict to the turn's own transcript
        self._interruptions.heard(task.result().text)

    async def on_utterance(self, utterance: Utterance) -> None:
        td = self._host.settings.turn_detection
        respond = td is not None and td.create_response
        if self._interruptions.holds_turn(self._speech_item_id):
            item_id, self._speech_item_id = self._speech_item_id, None
            assert item_id is not None
            self._host.spawn(self._judge_held_turn(item_id, utterance, respond=respond), name=f"judge-{item_id}")
            return
        await self.commit(utterance, respond=respond)

    async def _judge_held_turn(self, item_id: str, utterance: Utterance, *, respond: bool) -> None:
        """A turn said over an answer ended before it was judged: its words decide. A backchannel
        or no words at all: the answer resumes and the turn leaves no trace. Words: the answer
        is cancelled and the turn goes on as any other, with the transcript already known."""
        try:
            transcript: Transcript | None = await self._transcript_of(utterance, None)
        except Exception:  # noqa: BLE001 (the commit below reports the failure)
            log.exception("transcription of a turn said over the answer failed")
            transcript = None
        if self._interruptions.holds_turn(item_id):
            if transcript is None:
                self._interruptions.confirm("no transcript")
            elif self._interruptions.heard(transcript.text) is Verdict.RESUME:
                log.info("%r said over the answer: not an interruption", transcript.text)
                self._interruptions.drop_turn()
                return
        await self.commit(utterance, respond=respond, item_id=item_id, transcript=transcript)

    # -- turns ------------------------------------------------------------------------
    def clear(self) -> None:
        """``input_audio_buffer.clear``: the turn in progress is dropped."""
        self._interruptions.drop_turn()
        self._discard_early()
        if self._speech_item_id is not None:
            self._previews.finish(self._speech_item_id)
        self._speech_item_id = None

    def pending_transcriptions(self) -> list[asyncio.Task[Any]]:
        return [task for task in self._transcribing.values() if not task.done()]

    def take_uncommitted_timeline(self) -> TurnTimeline | None:
        timeline, self._uncommitted = self._uncommitted, None
        return timeline

    async def commit(self, utterance: Utterance, *, respond: bool, item_id: str | None = None,
                     transcript: Transcript | None = None) -> None:
        """The utterance becomes a user item now; its transcript and answer follow in a task.

        ``item_id`` and ``transcript``: a held turn's, judged after its end (a new turn may have begun)."""
        host = self._host
        self._pause_words.preemptions = 0  # the next turn may preempt again
        if item_id is None:
            if self._interruptions.holds_turn(self._speech_item_id):  # a client commit: the user means it
                self._interruptions.confirm("input_audio_buffer.commit")
            item_id, self._speech_item_id = self._speech_item_id or new_id("item"), None
        item = ConversationItem(id=item_id, role="user", content_type="input_audio", text=None, status="completed")
        if transcript is None:
            during_answer, self._spoke_over_answer = self._spoke_over_answer, False
        else:
            during_answer = True  # a held turn: said over an answer (the flag may be a newer turn's)
        preview = self._previews.finish(item.id, want_final=True)
        previous = await host.add_item(item)
        await self._interruptions.send(events.buffer_committed(item_id=item.id, previous_item_id=previous))
        await self._interruptions.send(events.item_added(item.to_wire(), previous_item_id=previous))
        timeline = TurnTimeline()
        if utterance.speech_end_at is not None:
            timeline.mark("speech_end", utterance.speech_end_at)
        timeline.mark("turn_end", utterance.turn_end_at)
        task = host.spawn(self._transcribe_and_answer(item, previous, utterance, timeline, respond=respond,
                                                      during_answer=during_answer, known=transcript,
                                                      previewed=preview is not None and preview.sent_deltas,
                                                      streamed=preview.transcript if preview else None),
                          name=f"turn-{item.id}")
        if task is not None:
            self._transcribing[item.id] = task
            task.add_done_callback(lambda _: self._transcribing.pop(item.id, None))
        self._uncommitted = None if respond else timeline

    def _discard_early(self) -> None:
        """The turn went on past the audio decoded early: the decode and any answer started on it go."""
        early, self._early = self._early, None
        if early is not None:
            early.task.cancel()
            self._pause_words.count_speculation("asr", "discarded", early.seconds())
        self._host.responses.ahead.discard()

    def on_speech_resumed(self) -> None:
        """The user went on after a pause within the turn: the answer started on it is aborted now."""
        self._previews.release()
        self._host.responses.ahead.discard()

    def _read_pause(self, early: EarlyDecode, task: asyncio.Task[Transcript]) -> None:
        """The pause's transcript is ready while the turn detector may still wait: words that read
        finished shorten the wait, and an answer may start on them (server/pause_words.py)."""
        if self._early is not early or task.cancelled() or task.exception() is not None:
            self._host.input.note_text_verdict(early.samples, unfinished=False)
            return
        self._pause_words.read(early.samples, task.result(), current=lambda: self._early is early)

    async def _recognise(self, audio: np.ndarray, *, preview: bool = False) -> Transcript:
        """``preview``: the turn so far, decoded early, is shown live too, even when the user went
        on and the decode is no longer awaited. On a loaded machine the previews' own Whisper
        decodes skip while this one holds the model, and the page showed nothing."""
        host = self._host
        language = host.settings.transcription_language
        item_id, loop = self._speech_item_id, asyncio.get_running_loop()

        def show(transcript: Transcript) -> None:
            if item_id is not None and not host.closed:
                host.spawn(self._previews.offer(item_id, transcript), name="preview-offer")

        def recognise() -> Transcript:
            stream = host.engines.asr.open_stream(language=language)
            stream.accept_audio(audio)
            transcript = stream.finish()
            if preview:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody to show it to
                    loop.call_soon_threadsafe(show, transcript)
            return transcript

        return await run_with_deadline(host.engines.executors.asr, recognise,
                                       timeout_s=host.config.assistant.asr_timeout_s)

    async def _transcript_of(self, utterance: Utterance, streamed: asyncio.Task[Transcript] | None) -> Transcript:
        """The streaming ASR's own final text when it made the previews; else the speculative
        decode when the turn ended on the audio it had; else a decode of the utterance now."""
        if streamed is not None:
            self._discard_early()
            try:
                return await streamed
            except Exception:  # noqa: BLE001 (the whole utterance is decoded instead)
                log.exception("the streaming transcript failed; decoding the turn again")
        early, self._early = self._early, None
        if early is not None and early.samples == len(utterance.audio):
            transcript = await early.task
            self._pause_words.count_speculation("asr", "kept", early.seconds())
            return transcript
        if early is not None:
            early.task.cancel()
            self._pause_words.count_speculation("asr", "discarded", early.seconds())
            self._host.responses.ahead.discard()
        return await self._recognise(utterance.audio)

    async def _transcribe_and_answer(self, item: ConversationItem, previous: str | None, utterance: Utterance,
                                     timeline: TurnTimeline, *, respond: bool, during_answer: bool,
                                     previewed: bool, streamed: asyncio.Task[Transcript] | None,
                                     known: Transcript | None = None) -> None:
        """Whisper's transcript is final: ``completed`` carries it and replaces any live preview.

        Clients concatenate deltas, so Whisper's text goes out as one more delta only when no
        preview delta was sent for the item (``previewed`` false: partials off, another
        language, push-to-talk); after a preview that delta would duplicate the words.
        """
        host = self._host
        try:
            transcript = known if known is not None else await self._transcript_of(utterance, streamed)
        except Exception as exc:  # the engine failed; the session goes on
            log.exception("transcription failed")
            await host.send(events.transcription_failed(item_id=item.id, message=str(exc)))
            if respond and not host.responses.answering and not host.closed:
                await host.responses.create(TurnTimeline(), fixed_text=apology("hearing", self.user_language()))
            return
        timeline.mark("transcript_final")
        text = transcript.text
        if text.strip():
            self.last_language = transcript.language
        item.text = text
        if self._capture is not None:
            self._capture.user_said(item.id, text, transcript.language or self.user_language(),
                                    audio=utterance.audio, ended_at=utterance.turn_end_at)
        if host.settings.transcription:
            if text and not previewed:
                await host.send(events.transcription_delta(item_id=item.id, delta=text))
            await host.send(events.transcription_completed(
                item_id=item.id, transcript=text, audio_secs=len(utterance.audio) / MODEL_SAMPLE_RATE_HZ))
        await host.send(events.item_done(item.to_wire(), previous_item_id=previous))
        if text.strip():
            await host.thinking.on_user_words(text, transcript.language or self.user_language())
        if not respond or not text.strip():
            return
        if during_answer and self._barge_in.is_backchannel(text):
            log.info("backchannel %r: no new response", text)
            return
        await host.responses.create(timeline, replace_reason="turn_detected")

    async def aclose(self) -> None:
        self._interruptions.close()
        self._discard_early()
        await self._previews.aclose()
