"""A model call that hangs gets its stage a fresh worker; later calls go on."""

from __future__ import annotations

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


async def test_a_call_that_only_waited_in_the_queue_does_not_replace_the_worker():
    executor = StageExecutor("tts")
    release = threading.Event()
    try:
        busy = executor.submit(release.wait, 30)
        with pytest.raises(StageTimeout):
            await run_with_deadline(executor, sum, [1], timeout_s=0.1)  # queued behind `busy`
        assert executor.replacements == 0
        release.set()
        assert busy.result(timeout=5) is True
        assert await run_with_deadline(executor, sum, [1, 1], timeout_s=2) == 2
    finally:
        release.set()
        executor.shutdown()
