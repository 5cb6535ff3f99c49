"""A small owner for background tasks: everything spawned here is tracked, logged if it fails,
and cancelled when the owner closes.

asyncio keeps only weak references to tasks, and a task nobody awaits hides its
exception; so every task a session or the server starts goes through one of these.
Unlike ``asyncio.TaskGroup`` a failing task does not cancel its siblings: one
failed turn must not end the conversation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class OwnedTasks:
    def __init__(self, *, name: str, limit: int | None = None) -> None:
        """``limit``: at most this many at once; :meth:`spawn` refuses (None) beyond it."""
        self.name = name
        self.limit = limit
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def pending(self) -> tuple[asyncio.Task[Any], ...]:
        return tuple(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T] | None:
        """Starts ``coro`` as an owned task; None (and the coroutine closed) when closed or full."""
        if self._closed or (self.limit is not None and len(self._tasks) >= self.limit):
            log.warning("%s: %s not started (%s)", self.name, name, "closed" if self._closed else "too many tasks")
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s: task %s failed", self.name, task.get_name(), exc_info=exc)

    async def aclose(self, grace_s: float = 0.0) -> None:
        """Lets the tasks finish for up to ``grace_s``, then cancels the rest and waits for them."""
        self._closed = True
        if grace_s > 0 and self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_s)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
