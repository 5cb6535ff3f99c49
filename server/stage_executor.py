"""A single-thread inference executor per pipeline stage that survives a hung model call.

Python cannot kill a thread, so a model call that never returns (a wedged ONNX
session, a driver stuck in a GPU call) would hold its stage's only worker and
every later call of every session would queue behind it forever. When a call
runs past its deadline, :func:`run_with_deadline` gives the stage a fresh
worker thread and abandons the stuck one: later calls go on, and the abandoned
thread is counted so an operator can see it (``tingshuo_executor_replacements_total``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class StageTimeout(TimeoutError):
    """A model call ran past its deadline (its stage now has a fresh worker)."""

    def __init__(self, stage: str, seconds: float) -> None:
        super().__init__(f"the {stage} model did not answer within {seconds:g} s")
        self.stage = stage
        self.seconds = seconds


class StageExecutor(Executor):
    """An ``Executor`` (so ``run_in_executor`` and the engine adapters take it as it is) whose
    one worker thread can be replaced."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.replacements = 0
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(1, thread_name_prefix=self.stage)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        with self._lock:
            return self._pool.submit(fn, *args, **kwargs)

    def replace_worker(self) -> None:
        """Abandon the current worker (and its queue) for a fresh one."""
        with self._lock:
            old, self._pool = self._pool, self._new_pool()
            self.replacements += 1
        old.shutdown(wait=False, cancel_futures=True)
        log.error("the %s worker was stuck; replaced it (%d so far)", self.stage, self.replacements)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


async def run_with_deadline(executor: Executor, fn: Callable[..., T], *args: Any, timeout_s: float) -> T:
    """``fn(*args)`` on the stage's worker; past ``timeout_s`` raises :class:`StageTimeout`.

    A job still waiting in the queue is just cancelled; a job that is running is the
    stuck one, and only then is the worker replaced.
    """
    job = executor.submit(fn, *args)
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for makes a task per call, and the
        # VAD calls this for every append of every session.
        async with asyncio.timeout(timeout_s):
            return await asyncio.wrap_future(job)
    except TimeoutError:
        stage = executor.stage if isinstance(executor, StageExecutor) else "inference"
        if (job.running() or not job.cancel()) and isinstance(executor, StageExecutor):
            executor.replace_worker()
        raise StageTimeout(stage, timeout_s) from None
