"""Bridges a blocking token generator in a worker thread to an async iterator.

The worker checks a stop flag between tokens, so closing the async iterator
(barge-in) ends the generation within one token instead of letting a thread
burn the CPU the next turn needs. Closing never waits for the worker: the
executor runs generations in order anyway, and a close that waited would hold
a barge-in behind every generation other sessions had queued on the LLM.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import TypeVar

_END = object()
T = TypeVar("T")


async def stream_from_thread(
    produce: Callable[[threading.Event], Iterator[T]], *, executor: Executor | None = None
) -> AsyncIterator[T]:
    loop = asyncio.get_running_loop()
    # Unbounded on purpose: the producer is a thread that must never block on the
    # loop, and its output is bounded by the generation's max_tokens.
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def run() -> None:
        try:
            for token in produce(stop):
                if stop.is_set():
                    break
                loop.call_soon_threadsafe(queue.put_nowait, token)
        except BaseException as exc:  # handed to the consumer, re-raised there
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    worker = loop.run_in_executor(executor, run)
    try:
        while True:
            item = await queue.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        # A job still queued is dropped; a running one stops within one token.
        worker.cancel()
