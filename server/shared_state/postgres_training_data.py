"""The data stage's store in PostgreSQL, so the turns every worker records land in one place.

The same blocking API and semantics as :class:`thinking.training_data.data_store.TrainingDataStore`
(the recorder's writer thread and the ``tingshuo data`` commands call it), over asyncpg on a loop
thread of its own, as :class:`server.shared_state.postgres_memory.PostgresUserMemory`. Every
failure (the server down, a timeout, a query error, a local file for an export) is a
``DataStoreError`` naming the server with its password hidden, so the recorder counts the turn
failed and goes on; the next call tries again, and recording comes back with the server.

Tables (migration 2): ``data_conversations`` and ``data_turns`` mirror the SQLite schema (tools,
tool calls and latencies as the same JSON text: ``jsonb`` would refuse a NaN latency), and
``data_audio`` holds each WAV file whole, keyed by the relative path the SQLite store would have
written it to (``audio/CONVERSATION/ITEM.WHO.wav``), deleted with its conversation.

A WAV written by :meth:`PostgresTrainingDataStore.write_wav` reaches the database with the turn
that refers to it: the audio table's rows need their conversation's row, which the turn's
:meth:`~PostgresTrainingDataStore.record_turn` creates, so the audio waits (in memory, a few turns
at most) and is written in the turn's transaction. A turn and its audio are kept together or not
at all, the recorder's rule "no file without its row" in one transaction. An export that reads
audio files (``--format asr``) first copies them under the local ``data.dir`` with
:meth:`~PostgresTrainingDataStore.materialise_audio`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
import time
import wave
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from server.shared_state.loop_thread import LoopThread
from server.shared_state.postgres_migrations import SchemaTooNew, migrate
from server.shared_state.state_errors import redacted_url
from thinking.training_data.data_store import _SAFE_NAME, DataStoreError, PurgeReport, _turn
from thinking.training_data.dataset_records import RecordedTurn, StoredConversation

T = TypeVar("T")
POOL_SIZE = 2
"""One writer thread (the recorder) or one command uses it; the second covers a reconnect."""
MAX_PENDING_AUDIO = 16
"""WAVs written but not yet recorded with their turn; beyond it the oldest are forgotten (a caller
that wrote audio and never recorded its turn)."""

_CONVERSATION_COLUMNS = ("id, source, started_at, user_id, persona_id, persona_version, instructions, adapter, "
                         "tools, title")
_TURN_COLUMNS = ("item_id, user_text, corrected_text, answer_generated, answer_heard, language, started_at, "
                 "interrupted, failure, tool_calls, latency_ms, user_audio, assistant_audio")


class PostgresTrainingDataStore:
    """Blocking and thread-safe. :meth:`open` connects and migrates; ``root`` is the local
    ``data.dir``, where :meth:`materialise_audio` puts audio for an export."""

    def __init__(self, *, url: str, root: Path | str, call_timeout_s: float = 5.0) -> None:
        self._url = url
        self._root = Path(root)
        self._timeout = call_timeout_s
        self._loop = LoopThread("postgres-training-data")
        self._pool: Any = None
        self._pending_lock = threading.Lock()
        self._pending: OrderedDict[str, tuple[str, int, bytes]] = OrderedDict()
        """relative path: (conversation id, rate, WAV bytes), waiting for their turn."""

    @property
    def root(self) -> Path:
        return self._root

    @property
    def where(self) -> str:
        return f"PostgreSQL at {redacted_url(self._url)}"

    def exists(self) -> bool:
        """The recorder skips a local store that was never created; this one always exists."""
        return True

    def open(self, *, timeout_s: float = 10.0) -> list[int]:
        """Connects and applies missing migrations; returns the migrations applied."""
        import asyncpg

        async def start() -> list[int]:
            pool = await asyncpg.create_pool(self._url, min_size=1, max_size=POOL_SIZE, timeout=timeout_s,
                                             command_timeout=max(self._timeout, 5.0))
            try:
                async with pool.acquire() as conn:
                    applied = await migrate(conn)
            except BaseException:
                await pool.close()
                raise
            self._pool = pool
            return applied

        try:
            return self._loop.run(start, timeout_s)
        except SchemaTooNew as exc:
            raise DataStoreError(f"{self.where}: {exc}") from exc
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DataStoreError(f"{self.where} is unavailable: {exc or type(exc).__name__}") from exc

    # --- writing -------------------------------------------------------------------------------

    def add_conversation(self, conversation: StoredConversation) -> None:
        """Store a whole conversation (an import), replacing one with the same id."""
        audio = self._take_pending(conversation.id)

        async def run(conn: Any) -> None:
            async with conn.transaction():
                await conn.execute("DELETE FROM data_conversations WHERE id = $1", conversation.id)
                await _upsert_conversation(conn, conversation)
                for idx, turn in enumerate(conversation.turns):
                    await _insert_turn(conn, conversation.id, idx, turn)
                await _insert_audio(conn, audio)

        self._call(run)

    def record_turn(self, conversation: StoredConversation, turn: RecordedTurn) -> None:
        """Append one finished turn to a live conversation (``conversation.turns`` is ignored),
        with the audio written for this conversation since its last turn."""
        audio = self._take_pending(conversation.id)

        async def run(conn: Any) -> None:
            async with conn.transaction():
                await _upsert_conversation(conn, conversation)  # locks the row: one turn at a time
                idx = await conn.fetchval("SELECT COUNT(*) FROM data_turns WHERE conversation_id = $1",
                                          conversation.id)
                await _insert_turn(conn, conversation.id, idx, turn)
                await _insert_audio(conn, audio)

        self._call(run)

    def write_wav(self, conversation_id: str, item_id: str, who: str, pcm16: bytes, rate: int) -> str:
        """Mono 16-bit PCM as a WAV file, stored with the next turn recorded for ``conversation_id``;
        returns the path relative to the root that the SQLite store would use (for ``RecordedTurn``)."""
        relative = (PurePosixPath("audio") / _SAFE_NAME.sub("_", conversation_id)
                    / f"{_SAFE_NAME.sub('_', item_id)}.{who}.wav").as_posix()
        buffer = io.BytesIO()
        try:
            with wave.open(buffer, "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(rate)
                out.writeframes(pcm16)
        except (wave.Error, ValueError, TypeError) as exc:
            raise DataStoreError(f"{relative}: {exc}") from exc
        with self._pending_lock:
            self._pending.pop(relative, None)
            self._pending[relative] = (conversation_id, rate, buffer.getvalue())
            while len(self._pending) > MAX_PENDING_AUDIO:
                self._pending.popitem(last=False)
        return relative

    def discard_audio(self, relative: Iterable[str]) -> None:
        """Forget WAVs whose turn will not be recorded (the recorder's "no file without its row")."""
        with self._pending_lock:
            for path in relative:
                self._pending.pop(path, None)

    def correct(self, item_id: str, text: str) -> bool:
        """A person's transcript for a user utterance; False when no turn has that item id."""
        text = text.strip()
        if not text:
            raise ValueError("a corrected transcript cannot be empty")

        async def run(conn: Any) -> bool:
            status = await conn.execute("UPDATE data_turns SET corrected_text = $1 WHERE item_id = $2",
                                        text, item_id)
            return int(status.split()[-1]) > 0

        return self._call(run)

    def purge(self, *, older_than_days: float | None = None, user_id: str | None = None,
              everything: bool = False) -> PurgeReport:
        """Delete conversations (with their audio) that started before the cutoff, of one user, or all.
        Copies of their audio that :meth:`materialise_audio` put under this machine's root go too."""
        if older_than_days is None and user_id is None and not everything:
            raise ValueError("purge what? give older_than_days, user_id or everything")
        where, args = [], []
        if older_than_days is not None:
            args.append(time.time() - older_than_days * 86400)
            where.append(f"started_at < ${len(args)}")
        if user_id is not None:
            args.append(user_id)
            where.append(f"user_id = ${len(args)}")
        clause = " AND ".join(where) if where else "TRUE"

        async def run(conn: Any) -> tuple[list[str], int, int]:
            async with conn.transaction():
                ids = [r["id"] for r in await conn.fetch(
                    f"SELECT id FROM data_conversations WHERE {clause} FOR UPDATE", *args)]
                if not ids:
                    return [], 0, 0
                turns = await conn.fetchval("SELECT COUNT(*) FROM data_turns WHERE conversation_id = ANY($1)", ids)
                audio = await conn.fetchval("SELECT COUNT(*) FROM data_audio WHERE conversation_id = ANY($1)", ids)
                await conn.execute("DELETE FROM data_conversations WHERE id = ANY($1)", ids)
            return ids, int(turns), int(audio)

        ids, turns, audio = self._call(run)
        for conversation_id in ids:
            shutil.rmtree(self._root / "audio" / _SAFE_NAME.sub("_", conversation_id), ignore_errors=True)
        gone = set(ids)
        with self._pending_lock:
            for path in [path for path, (cid, _, _) in self._pending.items() if cid in gone]:
                del self._pending[path]
        return PurgeReport(len(ids), turns, audio)

    # --- reading -------------------------------------------------------------------------------

    def conversations(self, *, sources: tuple[str, ...] | None = None) -> list[StoredConversation]:
        """Every conversation with its turns, oldest first."""
        source_list = list(sources) if sources is not None else None

        async def run(conn: Any) -> list[StoredConversation]:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                rows = await conn.fetch(
                    f"SELECT {_CONVERSATION_COLUMNS} FROM data_conversations WHERE $1::text[] IS NULL "
                    f"OR source = ANY($1::text[]) ORDER BY started_at, id COLLATE \"C\"", source_list)
                turns = await conn.fetch(
                    f"SELECT t.conversation_id, {', '.join('t.' + c for c in _TURN_COLUMNS.split(', '))} "
                    "FROM data_turns t JOIN data_conversations c ON c.id = t.conversation_id "
                    "WHERE $1::text[] IS NULL OR c.source = ANY($1::text[]) ORDER BY t.idx",
                    source_list)
            by_conversation: dict[str, list[RecordedTurn]] = {}
            for r in turns:
                by_conversation.setdefault(r[0], []).append(_turn(tuple(r[1:])))
            out = []
            for row in rows:
                conversation = StoredConversation(
                    id=row[0], source=row[1], started_at=row[2], user_id=row[3], persona_id=row[4],
                    persona_version=row[5], instructions=row[6], adapter=row[7], tools=json.loads(row[8]),
                    title=row[9])
                conversation.turns = by_conversation.get(row[0], [])
                out.append(conversation)
            return out

        return self._call(run)

    def turn_count(self) -> int:
        async def run(conn: Any) -> int:
            return int(await conn.fetchval("SELECT COUNT(*) FROM data_turns"))

        return self._call(run)

    def materialise_audio(self, conversations: Iterable[StoredConversation], root: Path | str) -> int:
        """Writes the WAVs these conversations' turns refer to from the database to ``root / relative``
        (a file already there with the same size is left alone); returns how many were written.
        Before an export that reads audio files (``--format asr``)."""
        root = Path(root)
        wanted = sorted({path for c in conversations for t in c.turns
                         for path in (t.user_audio, t.assistant_audio) if path})
        for path in wanted:
            parts = PurePosixPath(path).parts
            if PurePosixPath(path).is_absolute() or ".." in parts:
                raise DataStoreError(f"{self.where}: audio path {path!r} leaves the data directory")

        async def sizes(conn: Any) -> dict[str, int]:
            rows = await conn.fetch("SELECT path, octet_length(wav) FROM data_audio WHERE path = ANY($1)", wanted)
            return {r[0]: r[1] for r in rows}

        stored = self._call(sizes) if wanted else {}
        written = 0
        for path, size in stored.items():
            target = root / path
            try:
                if target.is_file() and target.stat().st_size == size:
                    continue
            except OSError:
                pass

            async def fetch(conn: Any, path: str = path) -> bytes | None:
                return await conn.fetchval("SELECT wav FROM data_audio WHERE path = $1", path)

            data = self._call(fetch)
            if data is None:  # purged meanwhile
                continue
            partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                partial.write_bytes(data)
                os.replace(partial, target)
            except OSError as exc:
                try:
                    partial.unlink(missing_ok=True)
                except OSError:
                    pass
                raise DataStoreError(f"{target}: {exc}") from exc
            written += 1
        return written

    def close(self) -> None:
        pool, self._pool = self._pool, None

        async def stop() -> None:
            if pool is not None:
                await pool.close()

        self._loop.close(stop)

    def __enter__(self) -> PostgresTrainingDataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------------

    def _take_pending(self, conversation_id: str) -> list[tuple[str, str, int, bytes]]:
        """The audio waiting for this conversation's next row, taken whether or not the write succeeds
        (a failed turn loses its audio, as the SQLite recorder deletes its files)."""
        with self._pending_lock:
            paths = [path for path, (cid, _, _) in self._pending.items() if cid == conversation_id]
            return [(path, *self._pending.pop(path)) for path in paths]

    def _call(self, run: Callable[[Any], Awaitable[T]]) -> T:
        import asyncpg

        if self._pool is None:
            raise DataStoreError(f"{self.where} is not open")

        async def with_connection() -> T:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                return await run(conn)

        try:
            return self._loop.run(with_connection, self._timeout)
        except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                asyncpg.CannotConnectNowError) as exc:
            raise DataStoreError(f"{self.where} is unavailable: {exc or type(exc).__name__}") from exc
        except (asyncpg.PostgresError, json.JSONDecodeError, TypeError, KeyError) as exc:
            raise DataStoreError(f"{self.where}: {exc or type(exc).__name__}") from exc


async def _upsert_conversation(conn: Any, c: StoredConversation) -> None:
    await conn.execute(
        f"INSERT INTO data_conversations ({_CONVERSATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "ON CONFLICT (id) DO UPDATE SET persona_id = excluded.persona_id, persona_version = excluded.persona_version,"
        " instructions = excluded.instructions, adapter = excluded.adapter, tools = excluded.tools",
        c.id, c.source, float(c.started_at or time.time()), c.user_id, c.persona_id, c.persona_version,
        c.instructions, c.adapter, json.dumps(c.tools, ensure_ascii=False), c.title)


async def _insert_turn(conn: Any, conversation_id: str, idx: int, t: RecordedTurn) -> None:
    await conn.execute(
        f"INSERT INTO data_turns (conversation_id, idx, {_TURN_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        conversation_id, idx, t.item_id, t.user_text, t.corrected_text, t.answer_generated, t.answer_heard,
        t.language, float(t.started_at), bool(t.interrupted), t.failure,
        json.dumps([asdict(call) for call in t.tool_calls], ensure_ascii=False),
        json.dumps(t.latency_ms), t.user_audio, t.assistant_audio)


async def _insert_audio(conn: Any, audio: list[tuple[str, str, int, bytes]]) -> None:
    for path, conversation_id, rate, wav in audio:
        await conn.execute(
            "INSERT INTO data_audio (path, conversation_id, rate, wav) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (path) DO UPDATE SET conversation_id = excluded.conversation_id, rate = excluded.rate, "
            "wav = excluded.wav", path, conversation_id, rate, wav)
