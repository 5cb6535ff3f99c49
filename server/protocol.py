"""Parses client messages into validated Realtime client events.

Each event is validated with the ``openai`` package's own pydantic model, so
what we accept is exactly what the official SDKs send. A bad message becomes a
:class:`ProtocolError` carrying the error event's code, message and parameter;
the session sends it and carries on.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import pydantic
from openai.types.realtime import (
    ConversationItemCreateEvent,
    ConversationItemDeleteEvent,
    ConversationItemRetrieveEvent,
    ConversationItemTruncateEvent,
    InputAudioBufferAppendEvent,
    InputAudioBufferClearEvent,
    InputAudioBufferCommitEvent,
    ResponseCancelEvent,
    ResponseCreateEvent,
    SessionUpdateEvent,
)

CLIENT_EVENT_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "session.update": SessionUpdateEvent,
    "input_audio_buffer.append": InputAudioBufferAppendEvent,
    "input_audio_buffer.commit": InputAudioBufferCommitEvent,
    "input_audio_buffer.clear": InputAudioBufferClearEvent,
    "conversation.item.create": ConversationItemCreateEvent,
    "conversation.item.delete": ConversationItemDeleteEvent,
    "conversation.item.retrieve": ConversationItemRetrieveEvent,
    "conversation.item.truncate": ConversationItemTruncateEvent,
    "response.create": ResponseCreateEvent,
    "response.cancel": ResponseCancelEvent,
}


@dataclass(frozen=True)
class ProtocolError(Exception):
    code: str
    message: str
    param: str | None = None
    client_event_id: str | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class ClientEvent:
    type: str
    event_id: str | None
    raw: dict[str, Any]
    """The JSON object as received; handlers read fields from it after validation passed."""


def _without_extension_rates(raw: dict[str, Any]) -> dict[str, Any]:
    """Our 16 kHz extension would fail the schema's ``rate: Literal[24000]``; validate the rest."""
    patched = copy.deepcopy(raw)

    def member(obj: Any, key: str) -> Any:  # wrong types are left for the schema to reject
        return obj.get(key) if isinstance(obj, dict) else None

    audio = member(member(patched, "session"), "audio")
    for direction in ("input", "output"):
        fmt = member(member(audio, direction), "format")
        if isinstance(fmt, dict) and fmt.get("rate") == 16_000:
            fmt["rate"] = 24_000
    return patched


def _describe(exc: pydantic.ValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0]
    location = ".".join(str(p) for p in first.get("loc", ()))
    return f"{location}: {first.get('msg')}", location or None


def parse_client_event(text: str) -> ClientEvent:
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError("invalid_json", f"message is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise ProtocolError("invalid_json", "message is nested too deeply") from None
    if not isinstance(raw, dict):
        raise ProtocolError("invalid_event", "a client event must be a JSON object")
    event_id = raw.get("event_id") if isinstance(raw.get("event_id"), str) else None
    type_ = raw.get("type")
    if not isinstance(type_, str):
        raise ProtocolError("invalid_event", "the event has no string 'type'", param="type", client_event_id=event_id)
    model = CLIENT_EVENT_MODELS.get(type_)
    if model is None:
        raise ProtocolError(
            "unknown_event_type", f"unknown or unsupported event type {type_!r}", param="type", client_event_id=event_id
        )
    try:
        to_check = _without_extension_rates(raw) if type_ == "session.update" else raw
        model.model_validate(to_check)
    except pydantic.ValidationError as exc:
        message, param = _describe(exc)
        raise ProtocolError("invalid_event", f"invalid {type_}: {message}", param=param, client_event_id=event_id) from None
    except RecursionError:  # deepcopy or validation of absurdly nested JSON
        raise ProtocolError("invalid_event", f"invalid {type_}: nested too deeply", client_event_id=event_id) from None
    return ClientEvent(type=type_, event_id=event_id, raw=raw)
