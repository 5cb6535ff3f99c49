"""Live preview transcripts of one session's user turn, sent as append-only transcription deltas.

The session starts an utterance at speech start, hands over each piece of turn
audio, and finishes the utterance when the turn is committed. Decoding runs in
the shared single-thread ``partials`` executor with at most one job in flight
per session: audio that arrives meanwhile is merged into the next job, and if
the decoder falls more than ``max_backlog_ms`` behind, previews stop for the
rest of that utterance rather than queue (Whisper's final transcript still
comes); a recogniser that reads the whole turn again at each decode
(``rereads_turn``, Whisper's window) has no backlog to fall behind on. The decoder stream is opened lazily, reset per utterance and closed
in the executor, after any job still running there.

When the preview recogniser is the session's streaming ASR (sherpa-onnx), its
stream has already decoded the turn by the time the turn ends: the final
transcript then comes from that same stream (:meth:`finish` with
``want_final``), flushing only the audio not yet decoded, instead of decoding
the whole utterance a second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.interfaces import MODEL_SAMPLE_RATE_HZ, PartialRecognizer, PartialStream, Transcript
from server import events
from server.stage_executor import run_with_deadline
from streaming.stable_partials import StablePartials

log = logging.getLogger(__name__)

MIN_JOB_MS = 100
"""Smallest audio block decoded at once: each decode also pays for a hypothesis backtrace."""
PARTIAL_JOB_TIMEOUT_S = 10.0
"""A preview decode past this is abandoned (its worker replaced): previews stop for that turn."""
MAX_BACKLOG_MS = 3_000
"""Undecoded audio beyond which a turn's preview is abandoned: it would arrive too late to be live."""


@dataclass
class _Utterance:
    item_id: str
    stable: StablePartials = field(default_factory=StablePartials)
    pending: list[np.ndarray] = field(default_factory=list)
    pending_samples: int = 0
    started: bool = False
    """Whether a decode of this utterance was submitted: the first one resets the stream."""
    sent_deltas: bool = False
    gave_up: bool = False
    held: bool = False
    """The user is silent (:meth:`PartialTranscripts.hold`): audio is kept, not decoded."""


@dataclass
class FinishedPreview:
    sent_deltas: bool
    """Whether any preview delta was sent for the item (then no full-text delta should follow)."""
    transcript: asyncio.Task[Transcript] | None = None
    """The final transcript from the preview's own stream, when its recogniser gives one."""


class PartialTranscripts:
    def __init__(self, *, recognizer: PartialRecognizer, executor: Executor,
                 spawn: Callable[[Awaitable[Any], str], asyncio.Task[Any]],
                 send: Callable[[dict[str, Any]], Awaitable[None]], max_backlog_ms: int = MAX_BACKLOG_MS) -> None:
        self._recognizer = recognizer
        self._executor = executor
        self._spawn = spawn
        self._send = send
        self._max_backlog_samples = max_backlog_ms * MODEL_SAMPLE_RATE_HZ // 1000
        self._stream: PartialStream | None = None
        self._utterance: _Utterance | None = None
        self._job: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def language(self) -> str:
        return self._recognizer.language

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language its recogniser previews: a bilingual sherpa model previews zh and en."""
        return tuple(getattr(self._recognizer, "languages", None) or (self._recognizer.language,))

    @property
    def gives_final(self) -> bool:
        """Its streams' ``finish()`` is the turn's final transcript (a streaming ASR, not a preview-only model)."""
        return bool(getattr(self._recognizer, "final_transcripts", False))

    def will_give_final(self, item_id: str | None) -> bool:
        """Whether :meth:`finish` will give ``item_id``'s final transcript (so nothing else need decode it)."""
        utt = self._utterance
        return self.gives_final and utt is not None and utt.item_id == item_id and not utt.gave_up

    def start(self, item_id: str) -> None:
        """A new user turn: previews go to ``item_id`` (the id of its speech_started and committed item)."""
        if not self._closed:
            rec = self._recognizer
            self._utterance = _Utterance(item_id=item_id, stable=StablePartials(
                agreement=getattr(rec, "preview_agreement", StablePartials.agreement),
                hold_back_words=getattr(rec, "preview_hold_back", StablePartials.hold_back_words)))

    def feed(self, audio: np.ndarray) -> None:
        """Never blocks: buffers the audio and starts a decode job unless one is in flight."""
        utt = self._utterance
        if utt is None or utt.gave_up:
            return
        utt.pending.append(audio)
        utt.pending_samples += len(audio)
        if utt.pending_samples > self._max_backlog_samples and not getattr(self._recognizer, "rereads_turn", False):
            log.warning("partial transcripts %d ms behind; none more for item %s",
                        utt.pending_samples * 1000 // MODEL_SAMPLE_RATE_HZ, utt.item_id)
            utt.gave_up, utt.pending, utt.pending_samples = True, [], 0
            return
        if self._job is None and self._ready() is not None:
            self._job = self._spawn(self._drain(), "partials")

    async def offer(self, item_id: str, transcript: Transcript) -> None:
        """A transcript of the turn so far, made elsewhere (Whisper at a pause), taken as one more
        hypothesis when the recogniser's own hypotheses are whole-turn decodes of that model."""
        utt = self._utterance
        read = getattr(self._recognizer, "hypothesis_from_transcript", None)
        if utt is None or utt.item_id != item_id or utt.gave_up or read is None:
            return
        hypothesis = read(transcript.text, transcript.language)
        if hypothesis is not None:
            await self._show(utt, hypothesis)

    async def _show(self, utt: _Utterance, hypothesis: str | None) -> None:
        delta = utt.stable.update(hypothesis)
        if delta:
            utt.sent_deltas = True
            await self._send(events.transcription_delta(item_id=utt.item_id, delta=delta))

    def hold(self) -> None:
        """The user went silent (a pause, or the VAD's stop). A recogniser that reads the whole
        turn again would only decode silence, holding the model that the pause's own transcript
        needs (and the Mandarin judge after it): its decodes wait for speech again."""
        utt = self._utterance
        if utt is not None and getattr(self._recognizer, "rereads_turn", False):
            utt.held = True

    def release(self) -> None:
        """Speech again after :meth:`hold`: what came meanwhile is decoded with what follows."""
        utt = self._utterance
        if utt is not None and utt.held:
            utt.held = False
            if self._job is None and self._ready() is not None:
                self._job = self._spawn(self._drain(), "partials")

    def finish(self, item_id: str, *, want_final: bool = False) -> FinishedPreview:
        """The turn is committed: stop previewing it. With ``want_final``, and a recogniser whose
        streams give the final transcript, that transcript comes from the stream that made the
        previews, after the decode already in flight (the executor keeps the order)."""
        utt = self._utterance
        if utt is None or utt.item_id != item_id:
            return FinishedPreview(sent_deltas=False)
        transcript = None
        if want_final and self.will_give_final(item_id):
            transcript = self._spawn(self._final(utt), "final-asr")
        self._utterance = None
        return FinishedPreview(sent_deltas=utt.sent_deltas, transcript=transcript)

    async def _final(self, utt: _Utterance) -> Transcript:
        audio = np.concatenate(utt.pending) if utt.pending else None
        utt.pending, utt.pending_samples = [], 0
        fresh, utt.started = not utt.started, True
        return await run_with_deadline(self._executor, self._finish_stream, fresh, audio,
                                       timeout_s=PARTIAL_JOB_TIMEOUT_S)

    def _ready(self) -> _Utterance | None:
        utt = self._utterance
        if (utt is None or utt.gave_up or utt.held
                or utt.pending_samples < MIN_JOB_MS * MODEL_SAMPLE_RATE_HZ // 1000):
            return None
        return utt

    async def _drain(self) -> None:
        """The one job of this session: decodes whatever audio piled up, until too little is left."""
        try:
            while (utt := self._ready()) is not None:
                audio = np.concatenate(utt.pending)
                utt.pending, utt.pending_samples = [], 0
                fresh, utt.started = not utt.started, True
                try:
                    hypothesis = await run_with_deadline(self._executor, self._decode, fresh, audio,
                                                         timeout_s=PARTIAL_JOB_TIMEOUT_S)
                except Exception:
                    log.exception("partial transcript failed; none more for item %s", utt.item_id)
                    utt.gave_up = True
                    continue
                if utt is not self._utterance:
                    continue  # committed meanwhile: Whisper has the last word
                if hypothesis is None and getattr(self._recognizer, "none_means_no_decode", False):
                    continue
                await self._show(utt, hypothesis)
        finally:
            self._job = None

    def _decode(self, fresh: bool, audio: np.ndarray) -> str | None:
        """Runs in the executor: owns the stream, so no lock is needed."""
        if self._closed:
            return None
        if self._stream is None:
            self._stream = self._recognizer.open_stream()
        elif fresh:
            self._stream.reset()
        return self._stream.accept_audio(audio)

    def _finish_stream(self, fresh: bool, audio: np.ndarray | None) -> Transcript:
        """Runs in the executor: the rest of the turn's audio, then the stream's final transcript."""
        if self._closed:
            raise RuntimeError("the session closed before its transcript was finished")
        if self._stream is None:
            self._stream = self._recognizer.open_stream()
        elif fresh:
            self._stream.reset()
        return self._stream.finish(audio)  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        """Stops previews and closes the stream in the executor, after any job still running there."""
        if self._closed:
            return
        self._closed = True
        self._utterance = None
        if self._job is not None:
            self._job.cancel()
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close_stream)
        except RuntimeError:  # the executor is already shut down (server stopping)
            self._stream = None

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
