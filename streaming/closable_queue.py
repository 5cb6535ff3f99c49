"""A bounded queue between two pipeline stages that either side can close without waiting.

``asyncio.Queue`` ends a stream with a sentinel, and putting that sentinel into a
full queue waits for the consumer. When the consumer is gone (a barge-in
cancelled it), a cancelled producer's ``finally: await queue.put(None)`` waits
forever, and so does everyone who waits for that producer: that froze barge-in.
Here ending the stream is :meth:`close`, which is synchronous, so a cancelled
task's cleanup never awaits anything. A ``put`` after the close (the consumer
left) raises :class:`QueueClosed`, which tells the producer to stop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueClosed(Exception):
    """The queue was closed: whatever was being produced is no longer wanted."""


class ClosableQueue(Generic[T]):
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("a ClosableQueue needs room for at least one item")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._closed = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self.maxsize

    async def put(self, item: T) -> None:
        """Waits for room; raises :class:`QueueClosed` once the queue is closed."""
        while not self._closed and self.full():
            self._writable.clear()
            await self._writable.wait()
        if self._closed:
            raise QueueClosed
        self._items.append(item)
        self._readable.set()

    async def get(self) -> T | None:
        """The next item; None once the queue is closed and drained (the end of the stream)."""
        while not self._items:
            if self._closed:
                return None
            self._readable.clear()
            await self._readable.wait()
        item = self._items.popleft()
        self._writable.set()
        return item

    def close(self) -> None:
        """Ends the stream: the consumer still gets what was queued, then None. Never blocks."""
        self._closed = True
        self._readable.set()
        self._writable.set()

    def discard(self) -> None:
        """The consumer leaves: drop what is queued and refuse further puts."""
        self._items.clear()
        self.close()
