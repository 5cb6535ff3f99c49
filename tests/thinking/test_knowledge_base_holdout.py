"""The knowledge base's configured thresholds on documents they were not tuned on (kb_holdout_docs).

Every answerable question must find the passage that answers it among what the LLM is given
(``knowledge.top_k`` passages scoring at least ``knowledge.min_score``); every off-topic question must
find nothing. One test per question, so a miss names the question and its scores. The misses
measured when the set was written are strict xfails (``KNOWN_MISSES``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from models.e5_embedder import E5Embedder
from server.config import load_config
from tests.thinking.kb_holdout_questions import HOLDOUT_DOCS, HOLDOUT_OFF_TOPIC, HOLDOUT_QUESTIONS
from tests.thinking.kb_questions import KB_DOCS, Question
from thinking.knowledge_base import KnowledgeBase

KNOWLEDGE = load_config(environ={}).knowledge

KNOWN_MISSES = {
    "Where can I store my suitcase for the afternoon?":
        "right passage first but scores 0.13, under min_score 0.20",
    "I left my umbrella on the train, where can I pick it up?":
        "right passage 4th at 0.13; nothing reaches 0.20",
    "明天会下雨吗？": "off-topic, yet the station history scores 0.22, over min_score 0.20",
}
"""Measured on this set with the thresholds tuned on kb_docs; no threshold separates it (a right
answer at 0.13, an off-topic question at 0.22). Strict: a change that fixes one shows as XPASS and
fails, so this list only shrinks. The README states the miss rate."""


def _cases(items):
    return [pytest.param(item, marks=pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[text]))
            if (text := getattr(item, "text", item)) in KNOWN_MISSES else item for item in items]


@pytest.fixture(scope="module")
def holdout_kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    base = KnowledgeBase.open(tmp_path_factory.mktemp("kb") / "kb.sqlite", embedder=E5Embedder.load(), create=True)
    report = base.add([HOLDOUT_DOCS])
    assert not report.skipped and len(report.added) == len(list(HOLDOUT_DOCS.iterdir()))
    yield base
    base.close()


def _scores(kb: KnowledgeBase, text: str) -> str:
    return ", ".join(f"{p.score:.3f} {p.citation()}" for p in kb.search(text, k=3, min_score=-1.0))


def test_the_holdout_set_is_its_own() -> None:
    """Not the tuning documents, and questions of every kind."""
    assert not {p.name for p in HOLDOUT_DOCS.iterdir()} & {p.name for p in KB_DOCS.iterdir()}
    assert all((HOLDOUT_DOCS / q.source).is_file() for q in HOLDOUT_QUESTIONS)
    languages = Counter(q.language for q in HOLDOUT_QUESTIONS)
    assert languages["en"] >= 5 and languages["zh"] >= 5 and languages["en->zh"] >= 3 and languages["zh->en"] >= 3
    assert len(HOLDOUT_OFF_TOPIC) >= 6


@pytest.mark.parametrize("question", _cases(HOLDOUT_QUESTIONS), ids=lambda q: f"{q.language}:{q.text}")
def test_answerable_question_finds_its_passage(holdout_kb: KnowledgeBase, question: Question) -> None:
    hits = holdout_kb.search(question.text, k=KNOWLEDGE.top_k, min_score=KNOWLEDGE.min_score)
    context = f"wanted [{question.source} {question.locator}]; top 3 regardless of min_score: " \
              f"{_scores(holdout_kb, question.text)}"
    assert hits, f"nothing scored >= {KNOWLEDGE.min_score}; {context}"
    assert any(question.answered_by(h) for h in hits), context


@pytest.mark.parametrize("question", _cases(HOLDOUT_OFF_TOPIC))
def test_off_topic_question_finds_nothing(holdout_kb: KnowledgeBase, question: str) -> None:
    hits = holdout_kb.search(question, k=KNOWLEDGE.top_k, min_score=KNOWLEDGE.min_score)
    assert hits == [], f"min_score {KNOWLEDGE.min_score}; found: {_scores(holdout_kb, question)}"
