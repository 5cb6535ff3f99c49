"""LLaMA-Factory's ShareGPT format: ``NAME.json`` per dataset and the ``dataset_info.json`` that
describes it (hiyouga/LLaMA-Factory, data/README.md; its loader, src/llamafactory/data/converter.py).

The loader's rules (it skips an example that breaks one, logging "Invalid role tag" or "Invalid
message count"): user and observation (tool result) messages in odd positions, assistant and
function-call messages in even ones, and an even count, so the example ends with the assistant. A turn
with tool calls is therefore human, function_call, observation, ..., gpt: each call one
function_call message (``{"name", "arguments"}``, the arguments an object, as its formatter reads
them) and its result the observation after it. The persona's instructions go in the ``system``
column and the tool definitions, as JSON text, in ``tools``.

LLaMA-Factory learns every assistant message of an example (unless ``mask_history``), so a
window's repeated history turns are learned again there; token_windows.py keeps that history short.

The export can go straight into a LLaMA-Factory ``data/`` folder: ``dataset_info.json`` is
updated, the other datasets in it are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from thinking.training_data.training_examples import ChatExample

DATASET_PREFIX = "tingshuo"
DATASET_INFO = "dataset_info.json"
PARTS = ("train", "eval")
SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system", "tools": "tools"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}


def dataset_name(part: str) -> str:
    return f"{DATASET_PREFIX}_{part}"


def sharegpt_record(example: ChatExample) -> dict[str, Any]:
    conversation = []
    for message in example.turn_messages():
        role = message["role"]
        if role == "user":
            conversation.append({"from": "human", "value": message["content"]})
        elif role == "tool":
            conversation.append({"from": "observation", "value": message["content"]})
        elif message.get("tool_calls"):
            calls = [{"name": c["function"]["name"], "arguments": _arguments(c["function"]["arguments"])}
                     for c in message["tool_calls"]]
            conversation.append({"from": "function_call",
                                 "value": json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)})
        else:
            conversation.append({"from": "gpt", "value": message["content"]})
    tools = [tool["function"] for tool in example.tools]
    return {"conversations": conversation, "system": example.system,
            "tools": json.dumps(tools, ensure_ascii=False) if tools else ""}


def write_llama_factory(out_dir: Path, parts: dict[str, list[ChatExample]]) -> list[Path]:
    """``tingshuo_train.json`` (and ``tingshuo_eval.json``) and ``dataset_info.json``."""
    entry = {"formatting": "sharegpt", "columns": SHAREGPT_COLUMNS, "tags": SHAREGPT_TAGS}
    return write_datasets(out_dir, {part: [sharegpt_record(e) for e in examples] for part, examples in parts.items()},
                          entry)


def write_datasets(out_dir: Path, records: dict[str, list[dict[str, Any]]], entry: dict[str, Any]) -> list[Path]:
    """One JSON array per part and its ``dataset_info.json`` entry (shared with the Alpaca export).
    A part not written this time loses its file and entry: an earlier export's eval set would
    otherwise pass for this one's."""
    info_path = out_dir / DATASET_INFO
    info = _read_info(info_path)
    written = []
    for part in PARTS:
        path = out_dir / f"{dataset_name(part)}.json"
        if part not in records:
            path.unlink(missing_ok=True)
            info.pop(dataset_name(part), None)
            continue
        path.write_text(json.dumps(records[part], ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        info[dataset_name(part)] = {"file_name": path.name, **entry}
        written.append(path)
    info_path.write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return [*written, info_path]


def _arguments(text: str) -> Any:
    try:
        return json.loads(text or "{}")
    except json.JSONDecodeError:
        return text  # only with --include-bad: kept as the model wrote it


def _read_info(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc}); move it away or export elsewhere") from exc
    if not isinstance(info, dict):
        raise ValueError(f"{path}: not a dataset_info.json (a JSON object is expected)")
    return info
