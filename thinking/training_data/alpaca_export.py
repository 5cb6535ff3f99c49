"""Alpaca with ``history``, for the people whose tooling already reads it (LLaMA-Factory's alpaca
format, data/README.md): per example the last turn as ``instruction`` and ``output``, the turns
before it as ``history`` pairs, the persona's instructions as ``system``; ``input`` stays empty.

Alpaca has no place for tool calls or results, so the export is built without turns that called
tools (thinking/training_data/training_examples.py cuts the conversation there): an answer that
used a tool result the example cannot show would teach the model to make facts up. Like the
ShareGPT export, a ``dataset_info.json`` entry is written (LLaMA-Factory learns the history's
answers too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thinking.training_data.llama_factory_export import write_datasets
from thinking.training_data.training_examples import ChatExample

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
                  "history": "history"}


def alpaca_record(example: ChatExample) -> dict[str, Any]:
    pairs = [_pair(turn.messages) for turn in example.turns]
    question, answer = pairs[-1]
    return {"instruction": question, "input": "", "output": answer, "system": example.system,
            "history": [[q, a] for q, a in pairs[:-1]]}


def write_alpaca(out_dir: Path, parts: dict[str, list[ChatExample]]) -> list[Path]:
    return write_datasets(out_dir, {part: [alpaca_record(e) for e in examples] for part, examples in parts.items()},
                          {"columns": ALPACA_COLUMNS})


def _pair(messages: list[dict[str, Any]]) -> tuple[str, str]:
    if len(messages) != 2 or messages[0]["role"] != "user" or messages[1]["role"] != "assistant":
        raise ValueError("an Alpaca example takes turns of one question and one answer (no tool calls)")
    return messages[0]["content"], messages[1]["content"]
