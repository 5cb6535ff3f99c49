"""One message and one conversation of an imported chat log, whatever its source."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class LoggedMessage:
    role: Role
    content: str
    time: datetime | None = None
    """When it was sent (timezone as the source gives it); None when the source has no times."""


@dataclass(slots=True)
class LoggedConversation:
    id: str
    """Stable for the same source: the source's own id, or the source's name and a counter."""
    messages: list[LoggedMessage] = field(default_factory=list)
    title: str = ""


class ExportFormatError(ValueError):
    """The file is not what its format says; the message says where."""
