"""User memory in PostgreSQL, so a fact remembered through one worker is recalled through any.

The same blocking API as :class:`thinking.user_memory.UserMemory` (sessions call it on the
thinking executor, with a deadline), over asyncpg on a loop thread of its own. Every failure
(the server down, a timeout, a query error) is a ``MemoryStoreError``: the session sends its
``memory_unavailable`` error event and goes on, as with a locked SQLite file, and the next call
tries again, so memory comes back with the server. asyncpg's pool replaces a connection the
server closed on its next acquire.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from server.shared_state.loop_thread import LoopThread
from server.shared_state.postgres_migrations import SchemaTooNew, migrate
from server.shared_state.state_errors import redacted_url
from thinking.user_memory import (Fact, FactRecall, MemoryParams, MemoryStoreError, Summary, _clip, _fact_key,
                                  validate_user_id)

T = TypeVar("T")
POOL_SIZE = 4
"""The thinking executor's threads share these; a call waits for one at most ``call_timeout_s``."""


class PostgresUserMemory(FactRecall):
    """Blocking; call from an executor. :meth:`open` connects and migrates (at start: it raises
    ``MemoryStoreError`` naming the server, and ``tingshuo serve`` stops)."""

    def __init__(self, *, url: str, params: MemoryParams = MemoryParams(), call_timeout_s: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._url = url
        self._params = params
        self._timeout = call_timeout_s
        self._clock = clock
        self._loop = LoopThread("postgres-memory")
        self._pool: Any = None

    @property
    def where(self) -> str:
        return f"PostgreSQL at {redacted_url(self._url)}"

    def open(self, *, timeout_s: float = 10.0) -> list[int]:
        """Connects and applies missing migrations; returns the migrations applied."""
        import asyncpg

        async def start() -> list[int]:
            self._pool = await asyncpg.create_pool(self._url, min_size=1, max_size=POOL_SIZE,
                                                   timeout=timeout_s, command_timeout=max(self._timeout, 5.0))
            async with self._pool.acquire() as conn:
                return await migrate(conn)

        try:
            return self._loop.run(start, timeout_s)
        except SchemaTooNew as exc:
            raise MemoryStoreError(f"{self.where}: {exc}") from exc
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise MemoryStoreError(f"{self.where} is unavailable: {exc or type(exc).__name__}") from exc

    def remember(self, user_id: str, text: str) -> Fact:
        validate_user_id(user_id)
        text = _clip(text, self._params.max_fact_chars)
        now = self._clock()

        async def run(conn: Any) -> Fact:
            async with conn.transaction():
                fact_id = await conn.fetchval(
                    "INSERT INTO memory_facts (user_id, text, norm, created_at) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (user_id, norm) DO UPDATE SET text = excluded.text, created_at = excluded.created_at "
                    "RETURNING id", user_id, text, _fact_key(text), now)
                await conn.execute(
                    "DELETE FROM memory_facts WHERE user_id = $1 AND id NOT IN (SELECT id FROM memory_facts "
                    "WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)",
                    user_id, self._params.max_facts_per_user)
            return Fact(id=fact_id, text=text, created_at=now)

        return self._call(run)

    def add_summary(self, user_id: str, text: str, session_id: str) -> Summary:
        validate_user_id(user_id)
        if not session_id:
            raise ValueError("empty session id")
        text = _clip(text, self._params.max_summary_chars)
        now = self._clock()

        async def run(conn: Any) -> Summary:
            async with conn.transaction():
                summary_id = await conn.fetchval(
                    "INSERT INTO memory_summaries (user_id, session_id, text, created_at) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (user_id, session_id) DO UPDATE SET text = excluded.text, "
                    "created_at = excluded.created_at RETURNING id", user_id, session_id, text, now)
                await conn.execute(
                    "DELETE FROM memory_summaries WHERE user_id = $1 AND id NOT IN (SELECT id FROM memory_summaries "
                    "WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)",
                    user_id, self._params.max_summaries_per_user)
            return Summary(id=summary_id, session_id=session_id, text=text, created_at=now)

        return self._call(run)

    def facts(self, user_id: str) -> list[Fact]:
        validate_user_id(user_id)

        async def run(conn: Any) -> list[Fact]:
            rows = await conn.fetch("SELECT id, text, created_at FROM memory_facts WHERE user_id = $1 "
                                    "ORDER BY created_at DESC, id DESC", user_id)
            return [Fact(id=r["id"], text=r["text"], created_at=r["created_at"]) for r in rows]

        return self._call(run)

    def summaries(self, user_id: str, *, limit: int | None = None) -> list[Summary]:
        validate_user_id(user_id)

        async def run(conn: Any) -> list[Summary]:
            rows = await conn.fetch("SELECT id, session_id, text, created_at FROM memory_summaries WHERE user_id = $1 "
                                    "ORDER BY created_at DESC, id DESC LIMIT $2", user_id, limit)
            return [Summary(id=r["id"], session_id=r["session_id"], text=r["text"], created_at=r["created_at"])
                    for r in reversed(rows)]

        return self._call(run)

    def _delete(self, user_id: str, fact_ids: list[int], summary_ids: list[int]) -> int:
        async def run(conn: Any) -> int:
            async with conn.transaction():
                facts = await conn.fetchval("WITH d AS (DELETE FROM memory_facts WHERE user_id = $1 "
                                            "AND id = ANY($2::bigint[]) RETURNING 1) SELECT count(*) FROM d",
                                            user_id, fact_ids)
                summaries = await conn.fetchval("WITH d AS (DELETE FROM memory_summaries WHERE user_id = $1 "
                                                "AND id = ANY($2::bigint[]) RETURNING 1) SELECT count(*) FROM d",
                                                user_id, summary_ids)
            return int(facts) + int(summaries)

        return self._call(run)

    def delete_user(self, user_id: str) -> int:
        validate_user_id(user_id)

        async def run(conn: Any) -> int:
            async with conn.transaction():
                facts = await conn.fetchval("WITH d AS (DELETE FROM memory_facts WHERE user_id = $1 RETURNING 1) "
                                            "SELECT count(*) FROM d", user_id)
                summaries = await conn.fetchval("WITH d AS (DELETE FROM memory_summaries WHERE user_id = $1 "
                                                "RETURNING 1) SELECT count(*) FROM d", user_id)
            return int(facts) + int(summaries)

        return self._call(run)

    def close(self) -> None:
        pool, self._pool = self._pool, None

        async def stop() -> None:
            if pool is not None:
                await pool.close()

        self._loop.close(stop)

    def _call(self, run: Callable[[Any], Awaitable[T]]) -> T:
        import asyncpg

        if self._pool is None:
            raise MemoryStoreError(f"{self.where} is not open")

        async def with_connection() -> T:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                return await run(conn)

        try:
            return self._loop.run(with_connection, self._timeout)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise MemoryStoreError(f"{self.where} is unavailable: {exc or type(exc).__name__}") from exc
