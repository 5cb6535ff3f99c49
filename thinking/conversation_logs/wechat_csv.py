"""A WeChat chat exported by PyWxDump as CSV: one chat's messages, oldest first.

Columns (PyWxDump 3.x): ``id, MsgSvrID, type_name, is_sender, talker, room_name, content,
CreateTime``, where ``content`` is JSON (``{"src": ..., "msg": ...}``); 2.x wrote ``msg`` and
``src`` as columns of their own. Only text messages (``type_name`` 文本) are kept: images,
voice, stickers and calls are no training text. ``assistant`` chooses whose side the
assistant learns to imitate: ``"me"`` (the exporting user, ``is_sender`` 1) or ``"them"``.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Literal

from thinking.conversation_logs.records import ExportFormatError, LoggedMessage

TEXT_TYPES = ("文本", "text")


def read_wechat_csv(path: Path, *, assistant: Literal["me", "them"]) -> list[LoggedMessage]:
    with Path(path).open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        if not {"type_name", "is_sender", "CreateTime"} <= columns or not columns & {"content", "msg"}:
            raise ExportFormatError(f"{path}: not a PyWxDump CSV (columns {sorted(columns)})")
        messages = []
        for line, row in enumerate(reader, start=2):
            if (row.get("type_name") or "").strip() not in TEXT_TYPES:
                continue
            text = _text(row).strip()
            if not text:
                continue
            mine = (row.get("is_sender") or "").strip() == "1"
            role = "assistant" if mine == (assistant == "me") else "user"
            messages.append(LoggedMessage(role=role, content=text, time=_time(row["CreateTime"], path, line)))
    return messages


def _text(row: dict[str, str]) -> str:
    if row.get("content") is not None and row.get("content") != "":
        raw = row["content"]
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            return raw  # a plain string column
        if isinstance(value, dict):
            return str(value.get("msg") or "")
        return value if isinstance(value, str) else ""
    return row.get("msg") or ""


def _time(value: str, path: Path, line: int) -> datetime:
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ExportFormatError(f"{path}:{line}: CreateTime {value!r} is not YYYY-MM-DD HH:MM:SS") from None
