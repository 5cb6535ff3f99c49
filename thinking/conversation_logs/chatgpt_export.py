"""ChatGPT's data export (``conversations.json``): each conversation is a tree of messages, since
an edited prompt or a regenerated answer starts a branch. The branch kept is the one the user
last saw: from ``current_node`` up through the parents."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from thinking.conversation_logs.records import ExportFormatError, LoggedConversation, LoggedMessage

_ROLES = {"user": "user", "assistant": "assistant", "system": "system"}


def read_chatgpt_export(path: Path) -> list[LoggedConversation]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ExportFormatError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, list):
        raise ExportFormatError(f"{path}: expected a list of conversations, got {type(data).__name__}")
    return [_conversation(item, n) for n, item in enumerate(data)]


def _conversation(item: Any, n: int) -> LoggedConversation:
    if not isinstance(item, dict) or not isinstance(item.get("mapping"), dict):
        raise ExportFormatError(f"conversation #{n}: no 'mapping' of messages")
    mapping: dict[str, Any] = item["mapping"]
    node_id = item.get("current_node") or _last_leaf(mapping)
    branch: list[dict[str, Any]] = []
    seen: set[str] = set()
    while node_id is not None and node_id in mapping and node_id not in seen:
        seen.add(node_id)
        node = mapping[node_id]
        branch.append(node)
        node_id = node.get("parent")
    messages = [m for m in (_message(node.get("message")) for node in reversed(branch)) if m is not None]
    conversation_id = str(item.get("conversation_id") or item.get("id") or f"chatgpt-{n}")
    return LoggedConversation(id=conversation_id, messages=messages, title=str(item.get("title") or ""))


def _last_leaf(mapping: dict[str, Any]) -> str | None:
    """Without ``current_node`` (older exports): the newest message that has no children."""
    leaves = [(node.get("message") or {}).get("create_time") or 0.0
              for node in mapping.values() if not node.get("children")]
    ids = [key for key, node in mapping.items() if not node.get("children")]
    return ids[leaves.index(max(leaves))] if ids else None


def _message(message: dict[str, Any] | None) -> LoggedMessage | None:
    """Text the user saw; tool calls, hidden system context and non-text parts are left out."""
    if not message:
        return None
    role = _ROLES.get(((message.get("author") or {}).get("role")) or "")
    metadata = message.get("metadata") or {}
    if role is None or metadata.get("is_visually_hidden_from_conversation"):
        return None
    content = message.get("content") or {}
    if content.get("content_type") not in ("text", "multimodal_text"):
        return None
    text = "\n".join(part for part in content.get("parts") or () if isinstance(part, str)).strip()
    if not text:
        return None
    created = message.get("create_time")
    time = datetime.fromtimestamp(created, tz=timezone.utc) if isinstance(created, (int, float)) else None
    return LoggedMessage(role=role, content=text, time=time)
