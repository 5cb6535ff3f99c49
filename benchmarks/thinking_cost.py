"""What the knowledge base costs an answer: the search, and the LLM's longer prompt.

For each question of the knowledge-base test set, the prompt is built as a session
builds it (``thinking.prompt_assembly``, the same score filters) with and without the
retrieved passages, and the embedded LLM's time to its first token is timed for both,
alternating which goes first so neither always finds the other's prefix in llama.cpp's
cache. Reported as p50/p95 and the ratio of the p50s, in one run.

    .venv/bin/python -m benchmarks.thinking_cost
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.latency_stats import percentile
from models.interfaces import ChatMessage, GenerationParams
from server.config import DEFAULT_INSTRUCTIONS, KnowledgeSection
from server.session_thinking import RELATIVE_PASSAGE_SCORE
from thinking.prompt_assembly import PromptParts, assemble

REPO = Path(__file__).resolve().parents[1]


async def _first_token_ms(llm, messages: list[ChatMessage]) -> float:
    started = time.perf_counter()
    stream = llm.stream_chat(messages, GenerationParams(max_tokens=8, temperature=0.0))
    try:
        async for _ in stream:
            return (time.perf_counter() - started) * 1000
    finally:
        await stream.aclose()
    return (time.perf_counter() - started) * 1000


def _row(name: str, values: list[float]) -> str:
    return f"| {name} | {percentile(values, 50):.0f} | {percentile(values, 95):.0f} |"


async def run(args: argparse.Namespace) -> str:
    sys.path.insert(0, str(REPO))
    from models import embedded_store
    from models.e5_embedder import E5Embedder
    from models.llama_chat import LlamaChatModel, LlamaParams
    from tests.thinking.kb_questions import KB_DOCS, QUESTIONS
    from thinking.knowledge_base import KnowledgeBase

    knowledge = KnowledgeSection()
    kb = KnowledgeBase.open(Path(tempfile.mkdtemp()) / "kb.sqlite", embedder=E5Embedder.load(), create=True)
    kb.add([KB_DOCS])
    path = embedded_store.ensure_model(embedded_store.QWEN_05B, REPO / "var" / "models") / "model.gguf"
    llm = LlamaChatModel(model_path=path, params=LlamaParams(threads=args.threads))
    await _first_token_ms(llm, [ChatMessage("system", DEFAULT_INSTRUCTIONS), ChatMessage("user", "Hi")])  # warm-up

    search_ms, with_ms, without_ms, added_tokens, passages_given = [], [], [], [], []
    for i, question in enumerate(QUESTIONS[: args.questions]):
        started = time.perf_counter()
        found = kb.search(question.text, k=knowledge.top_k, min_score=knowledge.min_score)
        best = max((p.score for p in found), default=0.0)
        passages = tuple(p for p in found if p.score >= RELATIVE_PASSAGE_SCORE * best)
        search_ms.append((time.perf_counter() - started) * 1000)
        language = "zh" if question.language.startswith("zh") else "en"
        history = [ChatMessage("user", question.text)]
        plain = assemble(PromptParts(instructions=DEFAULT_INSTRUCTIONS, language=language), history,
                         budget_tokens=1500)
        grounded = assemble(PromptParts(instructions=DEFAULT_INSTRUCTIONS, passages=passages, language=language),
                            history, budget_tokens=1500)
        added_tokens.append(grounded.tokens - plain.tokens)
        passages_given.append(len(passages))
        runs = [("with", grounded), ("without", plain)]
        if i % 2:
            runs.reverse()
        for name, window in runs:
            ms = await _first_token_ms(llm, list(window.messages))
            (with_ms if name == "with" else without_ms).append(ms)
    conversation = await _conversation_layouts(llm, kb, knowledge, QUESTIONS[: args.turns])
    kb.close()
    p50_with, p50_without = percentile(with_ms, 50), percentile(without_ms, 50)
    return "\n".join([
        f"{len(search_ms)} questions (English, Chinese, cross-lingual), Qwen2.5-0.5B on {args.threads} threads, "
        f"passages per prompt: mean {sum(passages_given) / len(passages_given):.1f}, "
        f"prompt tokens added: p50 {percentile(added_tokens, 50):.0f}, p95 {percentile(added_tokens, 95):.0f}",
        "",
        "| ms | p50 | p95 |",
        "|---|---:|---:|",
        _row("knowledge search (embed the question, cosine, filter)", search_ms),
        _row("LLM first token, prompt with passages", with_ms),
        _row("LLM first token, same question without", without_ms),
        "",
        f"first-token ratio with/without (p50): {p50_with / p50_without:.2f}; "
        f"search + extra first-token time p50: {percentile(search_ms, 50) + p50_with - p50_without:.0f} ms",
        "",
        f"A {args.turns}-turn conversation with passages every turn (the same questions, a fixed short answer each):",
        "",
        "| LLM first token, ms | p50 | p95 |",
        "|---|---:|---:|",
        _row("passages in the head of the prompt (re-reads the history each turn)", conversation["head"]),
        _row("passages just before the question (tingshuo)", conversation["tail"]),
    ])


async def _conversation_layouts(llm, kb, knowledge, questions) -> dict[str, list[float]]:
    """Turn after turn, so llama.cpp's prefix cache works as in a session; each layout its own run."""
    results: dict[str, list[float]] = {}
    for layout in ("head", "tail"):
        history: list[ChatMessage] = []
        times: list[float] = []
        for question in questions:
            found = kb.search(question.text, k=knowledge.top_k, min_score=knowledge.min_score)
            best = max((p.score for p in found), default=0.0)
            parts = PromptParts(instructions=DEFAULT_INSTRUCTIONS, language="en",
                                passages=tuple(p for p in found if p.score >= RELATIVE_PASSAGE_SCORE * best))
            history.append(ChatMessage("user", question.text))
            window = assemble(parts, history, budget_tokens=4000)
            messages = list(window.messages)
            if layout == "head" and len(messages) > len(history) + 1:  # move the context into the head
                context = messages.pop(-2)
                messages[0] = ChatMessage("system", f"{messages[0].content}\n\n{context.content}")
            times.append(await _first_token_ms(llm, messages))
            history.append(ChatMessage("assistant", "Here is what the documents say about that."))
        results[layout] = times
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.thinking_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--questions", type=int, default=1000, help="at most this many of the test questions")
    parser.add_argument("--turns", type=int, default=12, help="turns of the conversation comparison")
    print(asyncio.run(run(parser.parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
