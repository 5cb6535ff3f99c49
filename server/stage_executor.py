"""A single-thread inference executor per pipeline stage that survives a hung model call.

Python cannot kill a thread, so a model call that never returns (a wedged ONNX
session, a driver stuck in a GPU call) would hold its stage's only worker and
every later call of every session would queue behind it forever. When a call
runs past its deadline, :func:`run_with_deadline` gives the stage a fresh
worker thread and abandons the stuck one. The queue belongs to the executor,
not to the worker: jobs that other sessions had queued move to the fresh worker
and finish normally, nobody's job is cancelled because someone else's hung. The
abandoned thread is counted so an operator can see it
(``tingshuo_executor_replacements_total``).

A deadline covers a job's own run time, never its wait in the queue: a busy stage
is not a failing engine.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class StageTimeout(TimeoutError):
    """A model call ran past its deadline (its stage now has a fresh worker)."""

    def __init__(self, stage: str, seconds: float) -> None:
        super().__init__(f"the {stage} model did not answer within {seconds:g} s")
        self.stage = stage
        self.seconds = seconds


class StageClosed(RuntimeError):
    """The stage was shut down (the server is stopping) before this job ran."""


@dataclass
class _Job:
    future: Future
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    timeout_s: float | None = None


class StageExecutor(Executor):
    """An ``Executor`` (so ``run_in_executor`` and the engine adapters take it as it is) with one
    worker thread at a time, which can be replaced while the queue is kept."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.replacements = 0
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._worker: threading.Thread | None = None
        self._overdue_at: float | None = None
        self._running = False
        self._shutdown = False
        self._names = itertools.count()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self.submit_with_deadline(None, fn, *args, **kwargs)

    def submit_with_deadline(self, timeout_s: float | None, fn: Callable[..., T], /, *args: Any,
                             **kwargs: Any) -> Future[T]:
        """Like ``submit``; a job running past ``timeout_s`` counts as stuck (:meth:`overdue`)."""
        future: Future[T] = Future()
        with self._cond:
            if self._shutdown:
                raise RuntimeError(f"the {self.stage} executor is shut down")
            self._jobs.append(_Job(future, fn, args, kwargs, timeout_s))
            if self._worker is None:
                self._start_worker()
            self._cond.notify()
        return future

    def _start_worker(self) -> None:
        # Daemon: an abandoned, stuck thread must not keep the process alive at exit.
        worker = threading.Thread(target=self._work, name=f"{self.stage}_{next(self._names)}", daemon=True)
        self._worker = worker
        self._overdue_at = None
        worker.start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                while not self._jobs and self._worker is me and not self._shutdown:
                    self._cond.wait()
                if self._worker is not me or not self._jobs:
                    return  # replaced while it was stuck, or shut down with nothing left
                job = self._jobs.popleft()
                future = job.future
                if not future.set_running_or_notify_cancel():
                    continue
                self._running = True
                self._overdue_at = None if job.timeout_s is None else time.monotonic() + job.timeout_s
            error: BaseException | None = None
            result: Any = None
            try:
                result = job.fn(*job.args, **job.kwargs)
            except BaseException as exc:  # noqa: BLE001 (handed to whoever waits)
                error = exc
            # Idle before the waiter hears of the result: whoever it wakes may ask at once.
            with self._cond:
                if self._worker is me:
                    self._overdue_at = None
                    self._running = False
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
            del error, result

    @property
    def idle(self) -> bool:
        """Nothing running and nothing queued: work started now would start at once."""
        with self._cond:
            return not self._running and not self._jobs

    def overdue(self) -> bool:
        """Whether the running job has run past its own deadline (it is stuck)."""
        with self._cond:
            at = self._overdue_at
        return at is not None and time.monotonic() > at

    def replace_worker(self) -> None:
        """Abandon the current worker for a fresh one that takes over the queue."""
        with self._cond:
            if self._shutdown:
                return
            self.replacements += 1
            self._running = False
            self._start_worker()
            self._cond.notify_all()
        log.error("the %s worker was stuck; replaced it (%d so far)", self.stage, self.replacements)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False, timeout_s: float | None = None) -> None:
        """``wait`` joins the worker, for at most ``timeout_s`` (a stuck call would never end)."""
        with self._cond:
            self._shutdown = True
            if cancel_futures:
                while self._jobs:
                    self._jobs.popleft().future.cancel()
            worker = self._worker
            self._cond.notify_all()
        if wait and worker is not None and worker is not threading.current_thread():
            worker.join(timeout_s)


async def run_with_deadline(executor: Executor, fn: Callable[..., T], *args: Any, timeout_s: float) -> T:
    """``fn(*args)`` on the stage's worker; past ``timeout_s`` of running raises :class:`StageTimeout`.

    While the job waits in the queue it only checks that the job ahead is not stuck (running
    past its own deadline, its waiter perhaps gone): then that worker is replaced and the queue
    goes on.
    """
    loop = asyncio.get_running_loop()
    started = loop.create_future()

    def mark_started() -> None:
        if not started.done():
            started.set_result(None)

    def job() -> T:
        loop.call_soon_threadsafe(mark_started)
        return fn(*args)

    if isinstance(executor, StageExecutor):
        future = executor.submit_with_deadline(timeout_s, job)
    else:
        future = executor.submit(job)
    result = asyncio.wrap_future(future, loop=loop)
    stage = executor.stage if isinstance(executor, StageExecutor) else "inference"
    try:
        return await _await_job(executor, future, started, result, stage, timeout_s)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if future.cancelled() and task is not None and not task.cancelling():
            # Our job was cancelled underneath us (shutdown), not this coroutine.
            raise StageClosed(f"the {stage} stage is shut down") from None
        raise
    finally:
        started.cancel()
        if not result.done():
            result.cancel()  # cancels the job if it has not started; a running one finishes unheard


async def _await_job(executor: Executor, future: Future, started: asyncio.Future, result: asyncio.Future,
                     stage: str, timeout_s: float) -> Any:
    while not started.done() and not result.done():
        done, _ = await asyncio.wait((started, result), timeout=timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if not done and isinstance(executor, StageExecutor) and executor.overdue():
            executor.replace_worker()  # the job ahead of this one is stuck
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for makes a task per call, and the
        # VAD calls this for every append of every session.
        async with asyncio.timeout(timeout_s):
            return await result
    except TimeoutError:
        if isinstance(executor, StageExecutor) and future.running():
            executor.replace_worker()
        raise StageTimeout(stage, timeout_s) from None
