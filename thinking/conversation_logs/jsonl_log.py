"""A plain JSONL chat log: one ``{"role", "content", "time"}`` object per line, oldest first.

``time`` is ISO 8601 or seconds since the epoch, and may be missing (then no gap can split the
log). Roles: ``user``, ``assistant``, ``system``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from thinking.conversation_logs.records import ExportFormatError, LoggedMessage

ROLES = ("user", "assistant", "system")


def read_jsonl(path: Path) -> list[LoggedMessage]:
    messages = []
    with Path(path).open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ExportFormatError(f"{path}:{line_no}: not JSON ({exc.msg})") from None
            if not isinstance(item, dict) or item.get("role") not in ROLES or not isinstance(item.get("content"), str):
                raise ExportFormatError(f"{path}:{line_no}: needs a role ({', '.join(ROLES)}) and a string content")
            messages.append(LoggedMessage(role=item["role"], content=item["content"], time=_time(item.get("time"), path, line_no)))
    return messages


def _time(value: Any, path: Path, line_no: int) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise ExportFormatError(f"{path}:{line_no}: time {value!r} is neither ISO 8601 nor epoch seconds") from None
