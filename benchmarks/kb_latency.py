"""Knowledge base cost: ingest throughput, and search latency (embed the question + cosine + fetch).

    python -m benchmarks.kb_latency [--docs tests/thinking/kb_docs] [--repeat 3] [--threads N]

(from the repository root: the questions come from the tests).

Ingests the documents into a fresh file in a temporary folder, then asks every
question of tests/thinking/kb_questions.py ``--repeat`` times. Search time is
what the server waits for between the end of a turn and the prompt: the embedding
of the question dominates it, so the cosine over a larger (synthetic) index is
timed separately to show how far brute force goes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.latency_stats import percentile

SYNTHETIC_PASSAGES = (1_000, 10_000, 50_000)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> None:
    from models.e5_embedder import E5Embedder
    from tests.thinking.kb_questions import KB_DOCS, QUESTIONS
    from thinking.document_chunks import find_documents
    from thinking.knowledge_base import KnowledgeBase

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=KB_DOCS, help="a folder of documents to ingest")
    parser.add_argument("--repeat", type=int, default=3, help="times each question is asked")
    parser.add_argument("--threads", type=int, help="OpenMP threads for the embedder (default: all cores)")
    args = parser.parse_args()

    started = time.perf_counter()
    embedder = E5Embedder.load(threads=args.threads)
    print(f"embedder load: {_ms(time.perf_counter() - started)}")
    characters = sum(len(p.read_text(encoding="utf-8", errors="ignore")) for p in find_documents([args.docs])
                     if p.suffix != ".pdf")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        kb = KnowledgeBase.open(Path(tmp) / "kb.sqlite", embedder=embedder, create=True)
        print(f"create (embeds the centering's reference texts once): {_ms(time.perf_counter() - started)}")
        started = time.perf_counter()
        report = kb.add([args.docs])
        took = time.perf_counter() - started
        documents = len(report.added)
        print(f"ingest: {documents} documents, {report.passages} passages, {characters:,} characters in {took:.2f} s: "
              f"{report.passages / took:.1f} passages/s, {characters / took:,.0f} characters/s, "
              f"{_ms(took / max(report.passages, 1))} per passage")

        kb.search("warm-up", k=3)
        search, embed = [], []
        for _ in range(args.repeat):
            for question in QUESTIONS:
                started = time.perf_counter()
                kb.search(question.text, k=3)
                search.append(time.perf_counter() - started)
                started = time.perf_counter()
                embedder.embed_query(question.text)
                embed.append(time.perf_counter() - started)
        kb.close()
    print(f"search over {report.passages} passages, {len(search)} questions: p50 {_ms(percentile(search, 50))}, "
          f"p95 {_ms(percentile(search, 95))}, max {_ms(max(search))}")
    print(f"  of which embedding the question: p50 {_ms(percentile(embed, 50))}, p95 {_ms(percentile(embed, 95))}")

    rng = np.random.default_rng(0)
    query = rng.standard_normal(embedder.dimensions).astype(np.float32)
    for n in SYNTHETIC_PASSAGES:
        matrix = rng.standard_normal((n, embedder.dimensions)).astype(np.float32)
        times = []
        for _ in range(20):
            started = time.perf_counter()
            scores = matrix @ query
            np.argpartition(-scores, 2)[:3]
            times.append(time.perf_counter() - started)
        print(f"cosine + top-3 over {n:,} passages ({matrix.nbytes / 2**20:.0f} MB): p50 {_ms(percentile(times, 50))}")


if __name__ == "__main__":
    main()
