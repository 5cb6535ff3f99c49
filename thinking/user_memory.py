"""Per-user long-term memory: facts the user asked to keep, and summaries of past conversations.

One embedded SQLite file (WAL, so readers never wait for the writer) holds every
user, keyed by an id the client supplies. Everything is bounded: a user keeps at
most ``max_facts_per_user`` facts (the oldest go first) and ``max_summaries_per_user``
conversation summaries, and no text grows past its limit.

The API is blocking (SQLite does file I/O and may wait ``busy_timeout_ms`` for a
lock): the server calls it from an executor, never from the event loop. One
connection serves the whole process behind a lock; every call is a few
milliseconds. Every failure of the store (locked past the busy timeout, a corrupt
or foreign file, a directory that cannot be created) is a ``MemoryStoreError``, so
a caller can degrade to "no memory" with one ``except``.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from thinking.text_overlap import coverage, normalise, similarity, terms

SCHEMA_VERSION = 1
USER_ID_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
FORGET_MIN_COVERAGE = 0.6
"""A stored text is forgotten when it contains at least this share of the request's terms.

"my wife's name" has the terms {wife, name}: "My wife's name is Anna" holds both
(forgotten), "My name is Li Wei" holds half (kept). With three terms two must match.
A request to forget is a privacy request, so the rule leans towards forgetting:
"forget my birthday" also forgets "my wife's birthday is in June"."""

_SCHEMA = """
CREATE TABLE facts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    text TEXT NOT NULL,
    norm TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (user_id, norm)
);
CREATE INDEX facts_by_user ON facts (user_id, created_at);
CREATE TABLE summaries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (user_id, session_id)
);
CREATE INDEX summaries_by_user ON summaries (user_id, created_at);
"""


class MemoryStoreError(RuntimeError):
    """The memory file could not be used (locked, corrupt, unwritable); the conversation can go on without it."""


@dataclass(frozen=True, slots=True)
class MemoryParams:
    max_facts_per_user: int = 200
    max_fact_chars: int = 500
    max_summaries_per_user: int = 50
    max_summary_chars: int = 2000
    busy_timeout_ms: int = 2000
    """How long a write waits for another process's lock before failing with MemoryStoreError."""


@dataclass(frozen=True, slots=True)
class Fact:
    id: int
    text: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Summary:
    id: int
    session_id: str
    text: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Recollection:
    """What a new session starts with: the newest facts and the last few conversation summaries."""

    facts: tuple[Fact, ...]
    """Newest first."""
    summaries: tuple[Summary, ...]
    """Oldest first, so they read as a story."""

    def prompt_text(self) -> str:
        """A system-message body for the LLM; empty when there is nothing to recall."""
        parts = []
        if self.facts:
            lines = "\n".join(f"- {f.text}" for f in self.facts)
            parts.append(f"Things the user asked you to remember (newest first; newer ones win):\n{lines}")
        if self.summaries:
            lines = "\n".join(f"- {s.text}" for s in self.summaries)
            parts.append(f"Summaries of your earlier conversations with this user:\n{lines}")
        return "\n\n".join(parts)


def validate_user_id(user_id: str) -> str:
    """Client-supplied, so checked before it reaches SQL or a log line."""
    if not isinstance(user_id, str) or not USER_ID_PATTERN.fullmatch(user_id):
        raise ValueError("user id must be 1-128 characters of A-Z a-z 0-9 _ . @ -")
    return user_id


def _fact_key(text: str) -> str:
    """Two facts that differ only in case, spacing or final punctuation are the same fact."""
    return " ".join(normalise(text).split()).rstrip(".!?。！？")


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if not text:
        raise ValueError("empty text")
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class FactRecall:
    """What every memory store answers the same way, from its ``facts`` and ``summaries``: what a
    session recalls, which facts match a question, what "forget …" removes, the export. Stores
    (this SQLite one, ``server/shared_state/postgres_memory.py``) supply the storage calls."""

    def facts(self, user_id: str) -> list[Fact]:
        raise NotImplementedError

    def summaries(self, user_id: str, *, limit: int | None = None) -> list[Summary]:
        raise NotImplementedError

    def _delete(self, user_id: str, fact_ids: list[int], summary_ids: list[int]) -> int:
        raise NotImplementedError

    def recall(self, user_id: str, *, limit: int = 10, summaries: int = 3) -> Recollection:
        """What a session starts with: the ``limit`` newest facts and the last ``summaries`` summaries."""
        return Recollection(facts=tuple(self.facts(user_id)[:limit]),
                            summaries=tuple(self.summaries(user_id, limit=summaries)))

    def relevant(self, user_id: str, query: str, k: int = 5) -> list[Fact]:
        """The ``k`` facts that share most words (English) or characters (Chinese) with ``query``, best first."""
        wanted = terms(query)
        scored = [(similarity(wanted, terms(f.text)), f) for f in self.facts(user_id)]
        # Stable sort on a newest-first list: ties go to the newer fact.
        ranked = sorted((pair for pair in scored if pair[0] > 0), key=lambda pair: -pair[0])
        return [fact for _, fact in ranked[:k]]

    def forget(self, user_id: str, target: int | str) -> int:
        """Remove a fact by id, or every fact and summary that talks about ``target``; returns how many.

        Text matching: see ``FORGET_MIN_COVERAGE``. A request made only of function
        words ("forget it") matches nothing; use ``delete_user`` for "forget everything".
        """
        validate_user_id(user_id)
        if isinstance(target, int):
            return self._delete(user_id, [target], [])
        wanted = terms(target)
        if not wanted:
            return 0
        facts = [f.id for f in self.facts(user_id) if coverage(wanted, terms(f.text)) >= FORGET_MIN_COVERAGE]
        summaries = [s.id for s in self.summaries(user_id)
                     if coverage(wanted, terms(s.text)) >= FORGET_MIN_COVERAGE]
        if not facts and not summaries:
            return 0
        return self._delete(user_id, facts, summaries)

    def export(self, user_id: str) -> dict[str, Any]:
        """Everything stored about a user, JSON-ready (for a data-access API)."""
        validate_user_id(user_id)
        return {
            "user_id": user_id,
            "facts": [asdict(f) for f in self.facts(user_id)],
            "summaries": [asdict(s) for s in self.summaries(user_id)],
        }


class UserMemory(FactRecall):
    """Blocking; call from an executor. Safe to share between threads."""

    def __init__(self, *, path: Path | str, params: MemoryParams = MemoryParams(),
                 clock: Callable[[], float] = time.time) -> None:
        # Nothing is opened here: the file is created on first use, so building the
        # server's objects never touches the disk.
        self._path = Path(path)
        self._params = params
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @property
    def path(self) -> Path:
        return self._path

    def remember(self, user_id: str, text: str) -> Fact:
        """Store a fact (clipped to ``max_fact_chars``); repeating a known fact refreshes it instead."""
        validate_user_id(user_id)
        text = _clip(text, self._params.max_fact_chars)
        now = self._clock()
        with self._write() as db:
            row = db.execute(
                "INSERT INTO facts (user_id, text, norm, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (user_id, norm) DO UPDATE SET text = excluded.text, created_at = excluded.created_at "
                "RETURNING id",
                (user_id, text, _fact_key(text), now),
            ).fetchone()
            db.execute(
                "DELETE FROM facts WHERE user_id = ? AND id NOT IN "
                "(SELECT id FROM facts WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?)",
                (user_id, user_id, self._params.max_facts_per_user),
            )
        return Fact(id=row[0], text=text, created_at=now)

    def add_summary(self, user_id: str, text: str, session_id: str) -> Summary:
        """Store a conversation's summary; a session's later summary replaces its earlier one."""
        validate_user_id(user_id)
        if not session_id:
            raise ValueError("empty session id")
        text = _clip(text, self._params.max_summary_chars)
        now = self._clock()
        with self._write() as db:
            row = db.execute(
                "INSERT INTO summaries (user_id, session_id, text, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (user_id, session_id) DO UPDATE "
                "SET text = excluded.text, created_at = excluded.created_at "
                "RETURNING id",
                (user_id, session_id, text, now),
            ).fetchone()
            db.execute(
                "DELETE FROM summaries WHERE user_id = ? AND id NOT IN "
                "(SELECT id FROM summaries WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?)",
                (user_id, user_id, self._params.max_summaries_per_user),
            )
        return Summary(id=row[0], session_id=session_id, text=text, created_at=now)

    def facts(self, user_id: str) -> list[Fact]:
        """All of a user's facts, newest first."""
        validate_user_id(user_id)
        with self._read() as db:
            rows = db.execute(
                "SELECT id, text, created_at FROM facts WHERE user_id = ? ORDER BY created_at DESC, id DESC",
                (user_id,),
            ).fetchall()
        return [Fact(*row) for row in rows]

    def summaries(self, user_id: str, *, limit: int | None = None) -> list[Summary]:
        """A user's newest ``limit`` summaries (all when None), oldest first."""
        validate_user_id(user_id)
        with self._read() as db:
            rows = db.execute(
                "SELECT id, session_id, text, created_at FROM summaries WHERE user_id = ? "
                "ORDER BY created_at DESC, id DESC LIMIT ?",
                (user_id, -1 if limit is None else limit),
            ).fetchall()
        return [Summary(*row) for row in reversed(rows)]

    def _delete(self, user_id: str, fact_ids: list[int], summary_ids: list[int]) -> int:
        with self._write() as db:
            removed = sum(db.execute("DELETE FROM facts WHERE user_id = ? AND id = ?", (user_id, i)).rowcount
                          for i in fact_ids)
            removed += sum(db.execute("DELETE FROM summaries WHERE user_id = ? AND id = ?", (user_id, i)).rowcount
                           for i in summary_ids)
        return removed

    def delete_user(self, user_id: str) -> int:
        """Remove everything stored about a user (also the answer to "forget everything"); returns how many rows."""
        validate_user_id(user_id)
        with self._write() as db:
            removed = db.execute("DELETE FROM facts WHERE user_id = ?", (user_id,)).rowcount
            removed += db.execute("DELETE FROM summaries WHERE user_id = ?", (user_id,)).rowcount
        return removed

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> UserMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            yield self._connection()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: the write lock is taken up front, so a busy file fails here, not halfway."""
        with self._lock, self._errors():
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise MemoryStoreError(f"memory store {self._path} is locked by another connection") from exc
            raise MemoryStoreError(f"memory store {self._path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise MemoryStoreError(f"memory store {self._path} is corrupt or not a memory file: {exc}") from exc
        except sqlite3.Error as exc:
            raise MemoryStoreError(f"memory store {self._path}: {exc}") from exc
        except OSError as exc:
            raise MemoryStoreError(f"memory store {self._path}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        """The shared connection, opened (and the schema created) on first use; call under the lock."""
        if self._conn is not None:
            return self._conn
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                               timeout=self._params.busy_timeout_ms / 1000)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._params.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across crashes of this process
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise MemoryStoreError(f"{self._path} is an SQLite file but not a tingshuo memory store")
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise MemoryStoreError(
                    f"{self._path} has memory schema {version}; this tingshuo knows {SCHEMA_VERSION}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
