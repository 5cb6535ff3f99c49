"""The operator's documents as citable passages: one SQLite file, searched by embedding cosine.

The file holds each document's content digest, its passages and their embeddings
(float32 blobs), so ``tingshuo kb add`` on a folder re-embeds only what changed and
the server needs nothing but the file to answer. Search is brute force over a
numpy matrix kept in memory: a few thousand passages take well under a
millisecond, far less than embedding the question, so no vector index is needed.
The matrix is reloaded when the file changes, also when another process (the
CLI) wrote to it while the server runs: SQLite's ``data_version`` says so.
Scores are cosines after language centering (:mod:`thinking.language_centering`),
which lets a Chinese question find an English passage and the reverse.

Every method blocks (SQLite and the embedder): the server calls them from an
executor, never from the event loop. One instance may be shared between threads;
calls are serialised on its connection by a lock, except the embedding itself.
The file is in WAL mode, so a search is not blocked while ``kb add`` writes.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.interfaces import TextEmbedder
from thinking.document_chunks import ChunkingParams, DocumentError, find_documents, read_chunks
from thinking.language_centering import ReferenceMeans, center_passages, center_query, reference_digest, script_group

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Stored as SQLite's ``user_version``; a file of another version is refused, never guessed at."""
CHUNKER_VERSION = 1
"""Part of every document's digest: bump it when chunking changes, and ``kb add`` re-chunks everything."""
DEFAULT_MIN_SCORE = 0.20
"""Centred cosine below which a passage is not offered as evidence. Measured with multilingual-e5-small on
tests/thinking/kb_docs: the correct top-1 passages of 39 answered questions scored 0.21-0.58 (median 0.43),
cross-lingual ones 0.31-0.50; the best passage for 6 unrelated questions ("who won the 2018 World Cup",
"今天天气怎么样？") scored 0.12-0.20. A filter against off-topic hits, not a proof of relevance."""
BUSY_TIMEOUT_S = 5.0
"""How long a write waits for another writer before the file counts as locked."""

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    source TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    added_at REAL NOT NULL,
    passages INTEGER NOT NULL
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    locator TEXT NOT NULL,
    text TEXT NOT NULL,
    context TEXT NOT NULL,
    script TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX chunks_by_source ON chunks(source);
CREATE TABLE reference_means (name TEXT PRIMARY KEY, vector BLOB NOT NULL);
"""


class KnowledgeBaseError(Exception):
    """The knowledge base file is missing, corrupt, locked, or was built by another schema or embedder."""


@dataclass(frozen=True, slots=True)
class Passage:
    source: str
    locator: str
    text: str
    score: float
    """Cosine similarity to the question after language centering: about 0 for unrelated text, 0.2-0.5 for
    the passage that answers it (raw e5 cosines crowd into 0.75-0.93 whatever the relevance)."""

    def citation(self) -> str:
        """``[handbook.md §Opening hours]``: short enough to say, precise enough to check."""
        name = Path(self.source).name
        return f"[{name} {self.locator}]" if self.locator else f"[{name}]"


@dataclass(frozen=True, slots=True)
class SourceInfo:
    source: str
    passages: int
    added_at: float
    """Unix time of the last add that changed it."""


@dataclass(frozen=True, slots=True)
class AddReport:
    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    """Sources whose content changed: their old passages are gone."""
    unchanged: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    """``(path, reason)`` for files that could not be read; the knowledge base keeps what it had of them."""
    passages: int = 0
    """Passages written by this add."""


@dataclass(slots=True)
class _Index:
    ids: np.ndarray
    matrix: np.ndarray
    data_version: int


@dataclass(slots=True)
class _ReportBuilder:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    passages: int = 0

    def build(self) -> AddReport:
        return AddReport(tuple(self.added), tuple(self.replaced), tuple(self.unchanged), tuple(self.skipped),
                         self.passages)


class KnowledgeBase:
    """Open with :meth:`open`; ``close()`` (or ``with``) when done."""

    def __init__(self, *, connection: sqlite3.Connection, path: Path, embedder: TextEmbedder,
                 reference: ReferenceMeans, params: ChunkingParams = ChunkingParams()) -> None:
        self.path = path
        self._conn = connection
        self._embedder = embedder
        self._reference = reference
        self._params = params
        self._lock = threading.RLock()
        self._index: _Index | None = None
        self._closed = False

    @classmethod
    def open(cls, path: Path, *, embedder: TextEmbedder, create: bool = False,
             busy_timeout_s: float = BUSY_TIMEOUT_S, params: ChunkingParams = ChunkingParams()) -> KnowledgeBase:
        """Open an existing knowledge base, or with ``create`` make a new one (and its folder)."""
        path = Path(path)
        if not path.is_file():
            if not create:
                raise KnowledgeBaseError(f"no knowledge base at {path} (add documents with `tingshuo kb add PATH`)")
            path.parent.mkdir(parents=True, exist_ok=True)
        mode = "rwc" if create else "rw"
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True, timeout=busy_timeout_s,
                                   isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _translate(path, exc) from exc
        try:
            _prepare(conn, path, embedder, create=create)
            reference = _reference_means(conn, path, embedder)
        except BaseException:
            conn.close()
            raise
        return cls(connection=conn, path=path, embedder=embedder, reference=reference, params=params)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(self, paths: Iterable[Path]) -> AddReport:
        """Index files, and supported files under folders; a changed file's passages replace its old ones.

        Each file is committed on its own, so an interrupted add keeps what it finished.
        """
        report = _ReportBuilder()
        for path in find_documents(Path(p) for p in paths):
            source = str(path.resolve())
            try:
                data = path.read_bytes()
            except OSError as exc:
                report.skipped.append((str(path), f"cannot read: {exc.strerror or exc}"))
                continue
            digest = hashlib.sha256(f"{CHUNKER_VERSION}:{self._params}:".encode() + data).hexdigest()
            previous = self._query_one("SELECT digest FROM documents WHERE source = ?", (source,))
            if previous is not None and previous[0] == digest:
                report.unchanged.append(source)
                continue
            try:
                chunks = read_chunks(Path(source), data=data, params=self._params)
            except DocumentError as exc:
                report.skipped.append((str(path), str(exc).removeprefix(f"{source}: ")))
                continue
            vectors = self._embed_passages([c.embedding_text() for c in chunks])
            with self._transaction() as conn:
                conn.execute("DELETE FROM chunks WHERE source = ?", (source,))
                conn.executemany(
                    "INSERT INTO chunks (source, ordinal, locator, text, context, script, embedding) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(source, i, c.locator, c.text, c.context, script_group(c.text), v.tobytes())
                     for i, (c, v) in enumerate(zip(chunks, vectors))],
                )
                conn.execute(
                    "INSERT INTO documents (source, digest, added_at, passages) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(source) DO UPDATE SET digest = excluded.digest, added_at = excluded.added_at, "
                    "passages = excluded.passages",
                    (source, digest, time.time(), len(chunks)),
                )
            (report.added if previous is None else report.replaced).append(source)
            report.passages += len(chunks)
        return report.build()

    def remove(self, source: str) -> int:
        """Forget a document, named as stored or by a path to it; returns the passages removed (0: unknown)."""
        for candidate in dict.fromkeys([source, str(Path(source).resolve())]):
            with self._transaction() as conn:
                removed = conn.execute("DELETE FROM chunks WHERE source = ?", (candidate,)).rowcount
                known = conn.execute("DELETE FROM documents WHERE source = ?", (candidate,)).rowcount
            if removed or known:
                return removed
        return 0

    def sources(self) -> list[SourceInfo]:
        rows = self._query_all("SELECT source, passages, added_at FROM documents ORDER BY source")
        return [SourceInfo(source=s, passages=n, added_at=t) for s, n, t in rows]

    def version(self) -> str:
        """A digest of the documents' contents (not of the file, nor where it was built): workers that
        loaded the same ``tingshuo kb`` build report the same version (``/readyz``)."""
        rows = self._query_all("SELECT source, digest FROM documents ORDER BY source")
        return hashlib.sha256("".join(f"{s}\t{d}\n" for s, d in rows).encode()).hexdigest()[:16]

    def search(self, query: str, *, k: int = 3, min_score: float = DEFAULT_MIN_SCORE) -> list[Passage]:
        """The ``k`` passages most similar to ``query`` scoring at least ``min_score``, best first."""
        query = query.strip()
        if not query or k <= 0:
            return []
        index = self._current_index()
        if not len(index.ids):  # an empty knowledge base costs no embedding
            return []
        question = center_query(self._embedder.embed_query(query), self._reference, group=script_group(query))
        scores = index.matrix @ question
        best = _top_k(scores, min(k, len(scores)))
        hits = {int(index.ids[i]): float(scores[i]) for i in best if scores[i] >= min_score}
        if not hits:
            return []
        marks = ",".join("?" * len(hits))
        rows = self._query_all(f"SELECT id, source, locator, text FROM chunks WHERE id IN ({marks})", tuple(hits))
        passages = [Passage(source=s, locator=loc, text=t, score=hits[i]) for i, s, loc, t in rows]
        return sorted(passages, key=lambda p: -p.score)

    def _embed_passages(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._embedder.embed_passages(texts), dtype=np.float32)
        if vectors.shape != (len(texts), self._embedder.dimensions):
            raise KnowledgeBaseError(f"embedder returned shape {vectors.shape} for {len(texts)} texts")
        return vectors

    def _current_index(self) -> _Index:
        with self._lock:
            version = self._query_one("PRAGMA data_version")[0]
            if self._index is not None and self._index.data_version == version:
                return self._index
            rows = self._query_all("SELECT id, script, embedding FROM chunks ORDER BY id")
            dims = self._embedder.dimensions
            if any(len(blob) != 4 * dims for _, _, blob in rows):
                raise KnowledgeBaseError(f"{self.path}: corrupt embeddings (expected {dims} float32 values each)")
            ids = np.fromiter((i for i, _, _ in rows), dtype=np.int64, count=len(rows))
            matrix = np.frombuffer(b"".join(blob for _, _, blob in rows), dtype=np.float32).reshape(len(rows), dims)
            matrix = center_passages(matrix, [script for _, script, _ in rows], self._reference)
            self._index = _Index(ids=ids, matrix=matrix, data_version=version)
            return self._index

    def _query_one(self, sql: str, args: tuple = ()) -> tuple | None:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchone()
            except sqlite3.Error as exc:
                raise _translate(self.path, exc) from exc

    def _query_all(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise _translate(self.path, exc) from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                # IMMEDIATE takes the write lock up front, so waiting for another writer happens here, once.
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _translate(self.path, exc) from exc
            finally:
                self._index = None  # data_version does not change for this connection's own writes


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def _prepare(conn: sqlite3.Connection, path: Path, embedder: TextEmbedder, *, create: bool) -> None:
    """Check (or lay down) the schema and that the stored vectors come from this embedder."""
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise KnowledgeBaseError(f"{path} is an SQLite file but not a tingshuo knowledge base")
            if not create:
                raise KnowledgeBaseError(f"{path} is empty (add documents with `tingshuo kb add PATH`)")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:  # still: no other process created it while we waited for the lock
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                 [("embedder", embedder.name), ("dimensions", str(embedder.dimensions))])
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                version = SCHEMA_VERSION
            conn.execute("COMMIT")
        if version != SCHEMA_VERSION:
            raise KnowledgeBaseError(f"{path} has schema version {version}; this tingshuo reads version "
                                     f"{SCHEMA_VERSION} (re-create it with `tingshuo kb add`)")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL keeps the file consistent; NORMAL only risks the last commit
    except sqlite3.Error as exc:
        raise _translate(path, exc) from exc
    built_with = (meta.get("embedder"), meta.get("dimensions"))
    if built_with != (embedder.name, str(embedder.dimensions)):
        raise KnowledgeBaseError(f"{path} was built with embedder {built_with[0]} ({built_with[1]} dimensions), "
                                 f"not {embedder.name} ({embedder.dimensions}); re-create it to switch models")


def _reference_means(conn: sqlite3.Connection, path: Path, embedder: TextEmbedder) -> ReferenceMeans:
    """The centering's reference means, stored in the file so only its first open embeds them."""
    digest = reference_digest(embedder.name)
    try:
        stored = conn.execute("SELECT value FROM meta WHERE key = 'reference_digest'").fetchone()
        if stored is not None and stored[0] == digest:
            rows = conn.execute("SELECT name, vector FROM reference_means").fetchall()
            if (means := ReferenceMeans.from_rows(rows, dimensions=embedder.dimensions)) is not None:
                return means
    except sqlite3.Error as exc:
        raise _translate(path, exc) from exc
    means = ReferenceMeans.fit(embedder)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM reference_means")
        conn.executemany("INSERT INTO reference_means (name, vector) VALUES (?, ?)", means.rows())
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('reference_digest', ?)", (digest,))
        conn.execute("COMMIT")
    except sqlite3.Error as exc:  # read-only or busy: searching works all the same, the next open fits again
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        logger.warning("%s: reference means not stored (%s)", path, exc)
    return means


def _translate(path: Path, exc: sqlite3.Error) -> KnowledgeBaseError:
    """SQLite's error codes as something an operator can act on."""
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(exc):
        return KnowledgeBaseError(f"{path} is locked by another process writing to it; try again when it is done")
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in str(exc) or "malformed" in str(exc):
        return KnowledgeBaseError(f"{path} is corrupt or not a knowledge base file ({exc}); delete it and add "
                                  "the documents again")
    if name.startswith("SQLITE_CANTOPEN") or name.startswith("SQLITE_READONLY"):
        return KnowledgeBaseError(f"{path} cannot be opened for writing ({exc})")
    return KnowledgeBaseError(f"{path}: {exc}")
