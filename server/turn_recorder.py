"""Keeps finished turns for training (``data.record``) without ever costing the conversation one.

A session hands each finished turn to :meth:`TurnRecorder.offer`, which only appends to a
bounded queue: it never blocks and never raises. When the queue is full the turn is dropped
(logged, counted in ``tingshuo_recorded_turns_total{outcome="dropped"}``): a slow disk loses
training data, never latency. One writer thread of its own, not the model executors whose
queues the answers wait on, does every file and SQLite operation: the audio's conversion to
PCM16 and its WAVs, the rows, the retention purge (at start, then daily), and the HTTP
requests' erase and correction, in the order they came, so an erase also takes the turns
queued before it. A write that fails (a full disk, a read-only directory, a foreign file) is
logged and counted; the sessions never hear of it.

Nothing is created on disk until a turn is written: a server that records nothing leaves no
store behind, and the purge, the erase and the correction skip a store that does not exist.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from models.interfaces import MODEL_SAMPLE_RATE_HZ
from streaming.audio_frames import float_to_int16, int16_to_bytes
from thinking.training_data.data_store import DataStoreError, PurgeReport, TrainingDataStore
from thinking.training_data.dataset_records import RecordedTurn, StoredConversation

if TYPE_CHECKING:
    from server.shared_state.postgres_training_data import PostgresTrainingDataStore

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CAPACITY = 32
"""Turns waiting for the writer (with their audio: a few MB each at most); at a few turns a minute
per session, only a stalled disk fills it."""
MAX_COMMANDS = 64
PURGE_EVERY_S = 24 * 3600.0
STORE_FILE = "data.sqlite"


class RecorderClosed(RuntimeError):
    """The recorder is shutting down: the erase or correction was not run."""


@dataclass(frozen=True, slots=True)
class TurnToKeep:
    """One finished turn as the session knew it: references only, converted on the writer thread."""

    conversation: StoredConversation
    turn: RecordedTurn
    user_audio: np.ndarray | None = None
    """The utterance as the recogniser heard it: float32 at 16 kHz."""
    assistant_audio: Sequence[np.ndarray] = ()
    """The answer's int16 frames as they were sent, at ``assistant_rate_hz``."""
    assistant_rate_hz: int = 24_000


@dataclass(slots=True)
class _Command:
    run: Callable[[TrainingDataStore], Any]
    future: concurrent.futures.Future[Any]


class TurnRecorder:
    def __init__(self, root: Path | str, *, retention_days: float = 0.0, capacity: int = DEFAULT_CAPACITY,
                 counter: Any | None = None,
                 store: TrainingDataStore | PostgresTrainingDataStore | None = None) -> None:
        """``counter``: a Prometheus counter labelled ``outcome``; ``store``: a ready store (PostgreSQL's,
        opened: ``server.training_store.open_training_store``) or a stand-in for tests; default: the
        SQLite store at ``root``. The recorder closes it."""
        self._store = store if store is not None else TrainingDataStore(root)
        self._retention_days = retention_days
        self._capacity = capacity
        self._counter = counter
        self._cond = threading.Condition()
        self._jobs: deque[TurnToKeep | _Command] = deque()
        self._queued_turns = 0
        self._queued_commands = 0
        self._closing = False
        self._thread: threading.Thread | None = None
        self._counts = threading.Lock()
        self.outcomes: dict[str, int] = {"written": 0, "dropped": 0, "failed": 0}
        """The same counts as the metric, for this recorder alone."""

    @property
    def root(self) -> Path:
        return self._store.root

    def start(self) -> None:
        """Starts the writer thread (at server start, so no session ever pays for it)."""
        with self._cond:
            if self._thread is not None or self._closing:
                return
            self._thread = threading.Thread(target=self._run, name="turn-recorder", daemon=True)
        self._thread.start()

    # -- the sessions' side ------------------------------------------------------------
    def offer(self, turn: TurnToKeep) -> bool:
        """Queues a turn for the writer; False (logged, counted) when the queue is full. Never blocks
        beyond a lock held for a few instructions, never raises."""
        try:
            with self._cond:
                accepted = not self._closing and self._queued_turns < self._capacity
                if accepted:
                    self._jobs.append(turn)
                    self._queued_turns += 1
                    self._cond.notify()
            if not accepted:
                log.warning("recording queue full (%d turns): turn %s not kept", self._capacity, turn.turn.item_id)
                self._count("dropped")
            return accepted
        except Exception:  # noqa: BLE001 (recording must never cost the session its turn)
            log.exception("a turn could not be queued for recording")
            return False

    # -- the HTTP endpoints' side ------------------------------------------------------
    def erase_user(self, user_id: str) -> concurrent.futures.Future[PurgeReport]:
        """Deletes every conversation recorded for ``user_id`` (with its audio), after the turns already queued."""
        def erase(store: TrainingDataStore) -> PurgeReport:
            if not self._store_exists():
                return PurgeReport(0, 0, 0)
            return store.purge(user_id=user_id)
        return self._submit(erase)

    def correct(self, item_id: str, text: str) -> concurrent.futures.Future[bool]:
        """A person's transcript for a recorded user utterance; resolves False when there is no such item."""
        def correct(store: TrainingDataStore) -> bool:
            return self._store_exists() and store.correct(item_id, text)
        return self._submit(correct)

    def _submit(self, run: Callable[[TrainingDataStore], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._cond:
            if self._closing or self._thread is None:
                future.set_exception(RecorderClosed("the recorder is not running"))
            elif self._queued_commands >= MAX_COMMANDS:
                future.set_exception(RecorderClosed(f"{MAX_COMMANDS} data requests are already waiting"))
            else:
                self._jobs.append(_Command(run, future))
                self._queued_commands += 1
                self._cond.notify()
        return future

    # -- closing -----------------------------------------------------------------------
    def _begin_close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
            started = self._thread is not None
        if not started:
            self._store.close()

    def close(self, timeout_s: float = 5.0) -> bool:
        """Blocking: the writer finishes what is queued, for at most ``timeout_s``; True when it did."""
        self._begin_close()
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self._finished()

    async def aclose(self, grace_s: float = 5.0) -> None:
        """At server shutdown, after the sessions: waits (without blocking the loop) for the queued
        turns to be written, at most ``grace_s``; a writer stuck on a dead disk is left behind (a
        daemon thread) with what it still held counted as dropped."""
        self._begin_close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self._thread is not None and self._thread.is_alive() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if not self._finished():
            with self._cond:
                left = self._queued_turns
            log.warning("the recorder did not finish in %g s; %d queued turns are lost", grace_s, left)
            for _ in range(left):
                self._count("dropped")

    def _finished(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    # -- the writer thread -------------------------------------------------------------
    def _run(self) -> None:
        purge_at = time.monotonic() if self._retention_days > 0 else float("inf")
        try:
            while True:
                if time.monotonic() >= purge_at:
                    self._purge_expired()
                    purge_at = time.monotonic() + PURGE_EVERY_S
                with self._cond:
                    while not self._jobs and not self._closing and (left := purge_at - time.monotonic()) > 0:
                        self._cond.wait(None if left == float("inf") else left)
                    if not self._jobs:
                        if self._closing:
                            return
                        continue  # time for the daily purge
                    job = self._jobs.popleft()
                    if isinstance(job, TurnToKeep):
                        self._queued_turns -= 1
                    else:
                        self._queued_commands -= 1
                if isinstance(job, TurnToKeep):
                    self._write(job)
                else:
                    self._run_command(job)
        finally:
            with self._cond:
                orphans = [job for job in self._jobs if isinstance(job, _Command)]
            for command in orphans:
                command.future.set_exception(RecorderClosed("the recorder stopped"))
            self._store.close()

    def _write(self, job: TurnToKeep) -> None:
        conversation, turn = job.conversation, job.turn
        written: list[str] = []
        try:
            if job.user_audio is not None and len(job.user_audio):
                turn.user_audio = self._store.write_wav(conversation.id, turn.item_id, "user",
                                                        int16_to_bytes(float_to_int16(job.user_audio)),
                                                        MODEL_SAMPLE_RATE_HZ)
                written.append(turn.user_audio)
            if job.assistant_audio:
                turn.assistant_audio = self._store.write_wav(conversation.id, turn.item_id, "assistant",
                                                             int16_to_bytes(np.concatenate(job.assistant_audio)),
                                                             job.assistant_rate_hz)
                written.append(turn.assistant_audio)
            self._store.record_turn(conversation, turn)
        except (DataStoreError, OSError) as exc:
            log.warning("a recorded turn (%s) was not kept: %s", turn.item_id, exc)
            self._forget_files(written)
            self._count("failed")
        except Exception:  # noqa: BLE001 (the writer outlives any one turn)
            log.exception("a recorded turn (%s) was not kept", turn.item_id)
            self._forget_files(written)
            self._count("failed")
        else:
            self._count("written")

    def _run_command(self, command: _Command) -> None:
        if not command.future.set_running_or_notify_cancel():
            return
        try:
            command.future.set_result(command.run(self._store))
        except Exception as exc:  # noqa: BLE001 (handed to the request that asked)
            command.future.set_exception(exc)

    def _purge_expired(self) -> None:
        if not self._store_exists():
            return
        try:
            report = self._store.purge(older_than_days=self._retention_days)
        except (DataStoreError, OSError) as exc:
            log.warning("the retention purge of %s failed: %s", self.root, exc)
            return
        if report.conversations:
            log.info("retention: deleted %d recorded conversations (%d turns, %d audio files) older than %g days",
                     report.conversations, report.turns, report.audio_files, self._retention_days)

    def _store_exists(self) -> bool:
        """False for a local store never written (nothing to purge, erase or correct); a store with
        an ``exists()`` of its own (PostgreSQL's, always there) answers itself."""
        exists = getattr(self._store, "exists", None)
        if callable(exists):
            return bool(exists())
        return (self.root / STORE_FILE).is_file()

    def _forget_files(self, relative: list[str]) -> None:
        """The WAVs of a turn whose row could not be written: no file without its row."""
        discard = getattr(self._store, "discard_audio", None)
        if callable(discard):  # PostgreSQL's: the audio still waiting for its turn
            discard(relative)
            return
        for path in relative:
            try:
                (self.root / path).unlink(missing_ok=True)
            except OSError:
                pass

    def _count(self, outcome: str) -> None:
        with self._counts:
            self.outcomes[outcome] += 1
        if self._counter is not None:
            self._counter.labels(outcome=outcome).inc()
