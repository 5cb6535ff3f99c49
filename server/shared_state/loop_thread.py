"""An event loop on a thread of its own, for blocking callers of an asyncio driver (asyncpg).

The memory API is blocking: sessions call it on the thinking executor, as they call the SQLite
store. asyncpg's connections belong to one event loop; this is that loop, so the pool is shared
by every executor thread and never touches the server's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, make: Callable[[], Awaitable[T]], timeout_s: float) -> T:
        """Runs ``make()`` on the loop and waits at most ``timeout_s``; past it the coroutine is
        cancelled and ``TimeoutError`` raised, so a dead service never holds the calling thread."""
        future = asyncio.run_coroutine_threadsafe(_call(make), self._loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer within {timeout_s:g} s") from None

    def close(self, make_cleanup: Callable[[], Awaitable[object]] | None = None, timeout_s: float = 5.0) -> None:
        if not self._loop.is_running():
            return
        if make_cleanup is not None:
            try:
                self.run(make_cleanup, timeout_s)
            except Exception:  # noqa: BLE001 (closing: a dead service's pool cannot close cleanly)
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._loop.close()


async def _call(make: Callable[[], Awaitable[T]]) -> T:
    return await make()
