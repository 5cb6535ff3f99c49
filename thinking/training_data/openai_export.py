"""OpenAI's chat fine-tuning JSONL: ``train.jsonl`` (and ``eval.jsonl``, its validation file).

One example a line: ``{"messages": [...], "tools": [...]}``, the system prompt first, tool calls
as an assistant message with ``tool_calls`` (``type: function``, the arguments JSON text) and no
content, as the fine-tuning guide shows them, each answered by a ``tool`` message with its
``tool_call_id``; ``tools`` only when the persona offered any. Every example ends with an
assistant answer.

OpenAI learns every assistant message unless it says ``weight: 0``: a window's leading turns
repeated from the window before (``context_turns``, thinking/training_data/token_windows.py)
get it, so they are context here and each answer is learned once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from thinking.training_data.training_examples import ChatExample

PART_FILES = {"train": "train.jsonl", "eval": "eval.jsonl"}


def openai_record(example: ChatExample) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": example.system}] if example.system else []
    for index, turn in enumerate(example.turns):
        repeated = index < example.context_turns
        for message in turn.messages:
            message = dict(message)
            if message["role"] == "assistant":
                if message.get("tool_calls"):
                    message.pop("content", None)
                if repeated:
                    message["weight"] = 0
            messages.append(message)
    record: dict[str, Any] = {"messages": messages}
    if example.tools:
        record["tools"] = example.tools
    return record


def write_openai(out_dir: Path, parts: dict[str, list[ChatExample]]) -> list[Path]:
    written = []
    for part, name in PART_FILES.items():
        path = out_dir / name
        if part not in parts:
            path.unlink(missing_ok=True)  # an earlier export's eval file would pass for this one's
            continue
        with path.open("w", encoding="utf-8") as out:
            for example in parts[part]:
                out.write(json.dumps(openai_record(example), ensure_ascii=False) + "\n")
        written.append(path)
    return written
