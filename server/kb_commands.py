"""``tingshuo kb add|list|search|remove``: manage the knowledge base at ``knowledge.path``.

The server reads the same file while it runs (WAL), and notices the changes on its
next search, so documents can be added without a restart.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

from server.config import Config

if TYPE_CHECKING:
    from thinking.knowledge_base import KnowledgeBase

TEXT_WIDTH = 100
INDENT = " " * 7


def run_kb_command(config: Config, args: argparse.Namespace) -> int:
    """Exit status: 0 done, 1 something was not (skipped files, unknown source), 2 unusable knowledge base."""
    from models.e5_embedder import E5Embedder
    from thinking.knowledge_base import KnowledgeBase, KnowledgeBaseError

    path = Path(config.knowledge.path)
    try:
        embedder = E5Embedder.load(threads=config.models.inference_threads)
        with KnowledgeBase.open(path, embedder=embedder, create=args.kb_action == "add") as kb:
            if args.kb_action == "add":
                return _add(kb, [Path(p) for p in args.paths])
            if args.kb_action == "list":
                return _list(kb)
            if args.kb_action == "search":
                return _search(kb, args.question, k=args.k or config.knowledge.top_k,
                               min_score=config.knowledge.min_score)
            return _remove(kb, args.source)
    except (KnowledgeBaseError, FileNotFoundError) as exc:
        print(f"tingshuo: {exc}", file=sys.stderr)
        return 2


def _add(kb: KnowledgeBase, paths: list[Path]) -> int:
    started = time.perf_counter()
    report = kb.add(paths)
    for source in report.added:
        print(f"added      {source}")
    for source in report.replaced:
        print(f"replaced   {source}")
    for source in report.unchanged:
        print(f"unchanged  {source}")
    for source, reason in report.skipped:
        print(f"skipped    {source}: {reason}", file=sys.stderr)
    print(f"{report.passages} passages embedded in {time.perf_counter() - started:.1f} s into {kb.path}")
    return 1 if report.skipped else 0


def _list(kb: KnowledgeBase) -> int:
    sources = kb.sources()
    for info in sources:
        added = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.added_at))
        print(f"{info.passages:5d}  {added}  {info.source}")
    print(f"{len(sources)} documents, {sum(i.passages for i in sources)} passages in {kb.path}")
    return 0


def _search(kb: KnowledgeBase, question: str, *, k: int, min_score: float) -> int:
    passages = kb.search(question, k=k, min_score=min_score)
    if not passages:
        print(f"no passage scores {min_score} or more")
    for passage in passages:
        print(f"{passage.score:.3f}  {passage.citation()}")
        for line in passage.text.splitlines():
            print(textwrap.fill(line, TEXT_WIDTH, initial_indent=INDENT, subsequent_indent=INDENT) if line else "")
    return 0


def _remove(kb: KnowledgeBase, source: str) -> int:
    removed = kb.remove(source)
    if not removed:
        print(f"tingshuo: {source} is not in the knowledge base (see `tingshuo kb list`)", file=sys.stderr)
        return 1
    print(f"removed {source} ({removed} passages)")
    return 0
