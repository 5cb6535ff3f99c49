"""The data stage's store: recorded and imported conversations in one SQLite file, audio beside it.

Like :mod:`thinking.user_memory` the API is blocking (SQLite and WAV files are file I/O): the
server calls it from its recording thread, the ``tingshuo data`` commands directly. Every failure
of the store (a full disk, a read-only or foreign file) is a :class:`DataStoreError`, so the
recorder can drop one turn and log it without touching the conversation.

Layout under ``root``: ``data.sqlite`` and ``audio/CONVERSATION/ITEM.user.wav`` (16 kHz) and
``ITEM.assistant.wav`` (the answer's audio as the client got it, at the session's output rate).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import threading
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from thinking.training_data.dataset_records import RecordedTurn, StoredConversation, ToolCallRecord

SCHEMA_VERSION = 1
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")

_SCHEMA = """
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    started_at REAL NOT NULL,
    user_id TEXT NOT NULL,
    persona_id TEXT NOT NULL,
    persona_version TEXT NOT NULL,
    instructions TEXT NOT NULL,
    adapter TEXT NOT NULL,
    tools TEXT NOT NULL,
    title TEXT NOT NULL
);
CREATE INDEX conversations_by_user ON conversations (user_id);
CREATE TABLE turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    user_text TEXT NOT NULL,
    corrected_text TEXT NOT NULL,
    answer_generated TEXT NOT NULL,
    answer_heard TEXT NOT NULL,
    language TEXT NOT NULL,
    started_at REAL NOT NULL,
    interrupted INTEGER NOT NULL,
    failure TEXT NOT NULL,
    tool_calls TEXT NOT NULL,
    latency_ms TEXT NOT NULL,
    user_audio TEXT NOT NULL,
    assistant_audio TEXT NOT NULL,
    PRIMARY KEY (conversation_id, idx)
);
CREATE INDEX turns_by_item ON turns (item_id);
"""


class DataStoreError(RuntimeError):
    """The store could not be read or written; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class PurgeReport:
    conversations: int
    turns: int
    audio_files: int


class TrainingDataStore:
    """One process's handle on the store; thread-safe (one connection behind a lock)."""

    def __init__(self, root: Path | str) -> None:
        self._root = Path(root)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @property
    def root(self) -> Path:
        return self._root

    # --- writing -------------------------------------------------------------------------------

    def add_conversation(self, conversation: StoredConversation) -> None:
        """Store a whole conversation (an import), replacing one with the same id."""
        with self._write() as conn:
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation.id,))
            self._upsert_conversation(conn, conversation)
            for idx, turn in enumerate(conversation.turns):
                self._insert_turn(conn, conversation.id, idx, turn)

    def record_turn(self, conversation: StoredConversation, turn: RecordedTurn) -> None:
        """Append one finished turn to a live conversation (``conversation.turns`` is ignored)."""
        with self._write() as conn:
            self._upsert_conversation(conn, conversation)
            (idx,) = conn.execute("SELECT COUNT(*) FROM turns WHERE conversation_id = ?",
                                  (conversation.id,)).fetchone()
            self._insert_turn(conn, conversation.id, idx, turn)

    def write_wav(self, conversation_id: str, item_id: str, who: str, pcm16: bytes, rate: int) -> str:
        """Write mono 16-bit PCM; returns its path relative to the root (for ``RecordedTurn``)."""
        relative = Path("audio") / _SAFE_NAME.sub("_", conversation_id) / f"{_SAFE_NAME.sub('_', item_id)}.{who}.wav"
        path = self._root / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(rate)
                out.writeframes(pcm16)
        except OSError as exc:
            try:
                path.unlink(missing_ok=True)  # no half-written file for an export to find
            except OSError:
                pass
            raise DataStoreError(f"{path}: {exc}") from exc
        return relative.as_posix()

    def correct(self, item_id: str, text: str) -> bool:
        """A person's transcript for a user utterance; False when no turn has that item id."""
        text = text.strip()
        if not text:
            raise ValueError("a corrected transcript cannot be empty")
        with self._write() as conn:
            return conn.execute("UPDATE turns SET corrected_text = ? WHERE item_id = ?", (text, item_id)).rowcount > 0

    def purge(self, *, older_than_days: float | None = None, user_id: str | None = None,
              everything: bool = False) -> PurgeReport:
        """Delete conversations (with their audio) that started before the cutoff, of one user, or all."""
        if older_than_days is None and user_id is None and not everything:
            raise ValueError("purge what? give older_than_days, user_id or everything")
        where, args = [], []
        if older_than_days is not None:
            where.append("started_at < ?")
            args.append(time.time() - older_than_days * 86400)
        if user_id is not None:
            where.append("user_id = ?")
            args.append(user_id)
        clause = " AND ".join(where) if where else "1"
        with self._write() as conn:
            ids = [row[0] for row in conn.execute(f"SELECT id FROM conversations WHERE {clause}", args)]
            turns = audio = 0
            for conversation_id in ids:
                for user_audio, assistant_audio in conn.execute(
                        "SELECT user_audio, assistant_audio FROM turns WHERE conversation_id = ?", (conversation_id,)):
                    turns += 1
                    audio += sum(1 for rel in (user_audio, assistant_audio) if rel and self._delete_file(rel))
                conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
                shutil.rmtree(self._root / "audio" / _SAFE_NAME.sub("_", conversation_id), ignore_errors=True)
        return PurgeReport(len(ids), turns, audio)

    # --- reading -------------------------------------------------------------------------------

    def conversations(self, *, sources: tuple[str, ...] | None = None) -> list[StoredConversation]:
        """Every conversation with its turns, oldest first."""
        with self._read() as conn:
            rows = conn.execute("SELECT id, source, started_at, user_id, persona_id, persona_version, instructions,"
                                " adapter, tools, title FROM conversations ORDER BY started_at, id").fetchall()
            out = []
            for row in rows:
                if sources is not None and row[1] not in sources:
                    continue
                conversation = StoredConversation(
                    id=row[0], source=row[1], started_at=row[2], user_id=row[3], persona_id=row[4],
                    persona_version=row[5], instructions=row[6], adapter=row[7], tools=json.loads(row[8]), title=row[9])
                conversation.turns = [_turn(r) for r in conn.execute(
                    "SELECT item_id, user_text, corrected_text, answer_generated, answer_heard, language, started_at,"
                    " interrupted, failure, tool_calls, latency_ms, user_audio, assistant_audio"
                    " FROM turns WHERE conversation_id = ? ORDER BY idx", (row[0],))]
                out.append(conversation)
            return out

    def turn_count(self) -> int:
        with self._read() as conn:
            return conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> TrainingDataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------------

    @staticmethod
    def _upsert_conversation(conn: sqlite3.Connection, c: StoredConversation) -> None:
        conn.execute(
            "INSERT INTO conversations (id, source, started_at, user_id, persona_id, persona_version, instructions,"
            " adapter, tools, title) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " persona_id = excluded.persona_id, persona_version = excluded.persona_version,"
            " instructions = excluded.instructions, adapter = excluded.adapter, tools = excluded.tools",
            (c.id, c.source, c.started_at or time.time(), c.user_id, c.persona_id, c.persona_version,
             c.instructions, c.adapter, json.dumps(c.tools, ensure_ascii=False), c.title))

    @staticmethod
    def _insert_turn(conn: sqlite3.Connection, conversation_id: str, idx: int, t: RecordedTurn) -> None:
        conn.execute(
            "INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (conversation_id, idx, t.item_id, t.user_text, t.corrected_text, t.answer_generated, t.answer_heard,
             t.language, t.started_at, int(t.interrupted), t.failure,
             json.dumps([asdict(call) for call in t.tool_calls], ensure_ascii=False),
             json.dumps(t.latency_ms), t.user_audio, t.assistant_audio))

    def _delete_file(self, relative: str) -> bool:
        try:
            (self._root / relative).unlink()
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise DataStoreError(f"{self._root / relative}: {exc}") from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            yield self._connection()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except DataStoreError:
            raise
        except (sqlite3.Error, OSError, json.JSONDecodeError) as exc:
            raise DataStoreError(f"{self._root / 'data.sqlite'}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._root.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self._root / "data.sqlite", timeout=5.0, isolation_level=None,
                                   check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA foreign_keys = ON")
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                if version == 0:
                    conn.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
                elif version != SCHEMA_VERSION:
                    raise DataStoreError(f"{self._root / 'data.sqlite'}: schema version {version}, "
                                         f"this tingshuo reads {SCHEMA_VERSION}")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn


def _turn(row: tuple) -> RecordedTurn:
    return RecordedTurn(
        item_id=row[0], user_text=row[1], corrected_text=row[2], answer_generated=row[3], answer_heard=row[4],
        language=row[5], started_at=row[6], interrupted=bool(row[7]), failure=row[8],
        tool_calls=[ToolCallRecord(**call) for call in json.loads(row[9])], latency_ms=json.loads(row[10]),
        user_audio=row[11], assistant_audio=row[12])
