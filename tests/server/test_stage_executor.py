"""A model call that hangs gets its stage a fresh worker; later calls go on."""

from __future__ import annotations

import asyncio
import threading

import pytest

from server.stage_executor import StageExecutor, StageTimeout, run_with_deadline


async def test_a_hung_call_times_out_and_the_next_call_runs_on_a_fresh_worker():
    executor = StageExecutor("asr")
    release = threading.Event()
    try:
        with pytest.raises(StageTimeout, match="the asr model did not answer within 0.2 s"):
            await run_with_deadline(executor, release.wait, 30, timeout_s=0.2)
        assert executor.replacements == 1
        assert await run_with_deadline(executor, lambda: threading.current_thread().name, timeout_s=2) != ""
        assert await run_with_deadline(executor, sum, [1, 2, 3], timeout_s=2) == 6
    finally:
        release.set()
        executor.shutdown()


async def test_a_call_that_only_waits_in_the_queue_neither_times_out_nor_replaces_the_worker():
    executor = StageExecutor("tts")
    release = threading.Event()
    try:
        busy = executor.submit(release.wait, 30)  # a long job with no deadline: busy, not stuck
        queued = asyncio.ensure_future(run_with_deadline(executor, sum, [1], timeout_s=0.1))
        await asyncio.sleep(0.4)  # four of its deadlines spent waiting in the queue
        assert not queued.done()
        assert executor.replacements == 0
        release.set()
        assert await asyncio.wait_for(queued, 5) == 1
        assert busy.result(timeout=5) is True
    finally:
        release.set()
        executor.shutdown()


async def test_jobs_queued_behind_a_stuck_call_move_to_the_fresh_worker_and_finish():
    """One session's hung call must cost the others nothing: their queued jobs are neither
    cancelled nor failed, they run on the replacement worker."""
    executor = StageExecutor("turn")
    release = threading.Event()
    try:
        stuck = asyncio.ensure_future(run_with_deadline(executor, release.wait, 30, timeout_s=0.3))
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(run_with_deadline(executor, sum, [i, 1], timeout_s=0.3)) for i in range(5)]
        with pytest.raises(StageTimeout):
            await stuck
        assert await asyncio.wait_for(asyncio.gather(*queued), 5) == [1, 2, 3, 4, 5]
        assert executor.replacements == 1
    finally:
        release.set()
        executor.shutdown()


async def test_a_stuck_job_whose_waiter_left_is_replaced_by_the_next_waiter():
    """The waiter of the hung call was cancelled (its session closed): the job queued behind it
    notices the call is past its own deadline and gets the stage a fresh worker."""
    executor = StageExecutor("vad")
    release = threading.Event()
    try:
        stuck = asyncio.ensure_future(run_with_deadline(executor, release.wait, 30, timeout_s=0.2))
        await asyncio.sleep(0.05)
        stuck.cancel()
        assert await asyncio.wait_for(run_with_deadline(executor, sum, [2, 2], timeout_s=0.2), 5) == 4
        assert executor.replacements == 1
    finally:
        release.set()
        executor.shutdown()


async def test_idle_is_false_while_a_job_runs_or_waits_and_true_once_all_are_done():
    executor = StageExecutor("asr")
    running, release = threading.Event(), threading.Event()

    def job() -> None:
        running.set()
        release.wait(10)

    try:
        assert executor.idle
        first = asyncio.ensure_future(run_with_deadline(executor, job, timeout_s=10))
        second = asyncio.ensure_future(run_with_deadline(executor, job, timeout_s=10))
        await asyncio.get_running_loop().run_in_executor(None, running.wait, 10)
        assert not executor.idle  # one running, one queued
        release.set()
        await asyncio.gather(first, second)
        assert executor.idle
    finally:
        release.set()
        executor.shutdown()
