"""Builders for every server event we send, as plain dicts on the GA Realtime schema.

Plain dicts keep the per-frame audio path cheap; ``tests/server/test_events.py``
validates each builder's output against the ``openai`` package's pydantic
models, which are the schema of record.
"""

from __future__ import annotations

from typing import Any

from server.ids import new_id

Event = dict[str, Any]


def _event(type_: str, **fields: Any) -> Event:
    return {"type": type_, "event_id": new_id("event"), **fields}


def error(message: str, *, code: str, type_: str = "invalid_request_error", param: str | None = None,
          client_event_id: str | None = None) -> Event:
    return _event(
        "error",
        error={"type": type_, "code": code, "message": message, "param": param, "event_id": client_event_id},
    )


def session_created(session: dict[str, Any]) -> Event:
    return _event("session.created", session=session)


def session_updated(session: dict[str, Any]) -> Event:
    return _event("session.updated", session=session)


def speech_started(*, audio_start_ms: int, item_id: str) -> Event:
    return _event("input_audio_buffer.speech_started", audio_start_ms=audio_start_ms, item_id=item_id)


def speech_stopped(*, audio_end_ms: int, item_id: str) -> Event:
    return _event("input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id)


def buffer_committed(*, item_id: str, previous_item_id: str | None) -> Event:
    return _event("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous_item_id)


def buffer_cleared() -> Event:
    return _event("input_audio_buffer.cleared")


def item_added(item: dict[str, Any], *, previous_item_id: str | None) -> Event:
    return _event("conversation.item.added", item=item, previous_item_id=previous_item_id)


def item_done(item: dict[str, Any], *, previous_item_id: str | None) -> Event:
    return _event("conversation.item.done", item=item, previous_item_id=previous_item_id)


def item_truncated(*, item_id: str, audio_end_ms: int) -> Event:
    return _event("conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=audio_end_ms)


def item_deleted(*, item_id: str) -> Event:
    return _event("conversation.item.deleted", item_id=item_id)


def transcription_delta(*, item_id: str, delta: str) -> Event:
    return _event("conversation.item.input_audio_transcription.delta", item_id=item_id, content_index=0, delta=delta)


def transcription_completed(*, item_id: str, transcript: str, audio_secs: float) -> Event:
    return _event(
        "conversation.item.input_audio_transcription.completed",
        item_id=item_id,
        content_index=0,
        transcript=transcript,
        usage={"type": "duration", "seconds": round(audio_secs, 3)},
    )


def transcription_failed(*, item_id: str, message: str) -> Event:
    return _event(
        "conversation.item.input_audio_transcription.failed",
        item_id=item_id,
        content_index=0,
        error={"type": "server_error", "code": "transcription_failed", "message": message},
    )


def response_created(response: dict[str, Any]) -> Event:
    return _event("response.created", response=response)


def response_done(response: dict[str, Any]) -> Event:
    return _event("response.done", response=response)


def output_item_added(*, response_id: str, item: dict[str, Any], output_index: int = 0) -> Event:
    return _event("response.output_item.added", response_id=response_id, output_index=output_index, item=item)


def output_item_done(*, response_id: str, item: dict[str, Any], output_index: int = 0) -> Event:
    return _event("response.output_item.done", response_id=response_id, output_index=output_index, item=item)


def function_call_arguments_delta(*, response_id: str, item_id: str, output_index: int, call_id: str,
                                  delta: str) -> Event:
    return _event("response.function_call_arguments.delta", response_id=response_id, item_id=item_id,
                  output_index=output_index, call_id=call_id, delta=delta)


def function_call_arguments_done(*, response_id: str, item_id: str, output_index: int, call_id: str, name: str,
                                 arguments: str) -> Event:
    return _event("response.function_call_arguments.done", response_id=response_id, item_id=item_id,
                  output_index=output_index, call_id=call_id, name=name, arguments=arguments)


def _part_fields(response_id: str, item_id: str) -> dict[str, Any]:
    return {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}


def content_part_added(*, response_id: str, item_id: str, part_type: str) -> Event:
    part = {"type": part_type, "transcript": ""} if part_type == "audio" else {"type": "text", "text": ""}
    return _event("response.content_part.added", part=part, **_part_fields(response_id, item_id))


def content_part_done(*, response_id: str, item_id: str, part_type: str, text: str) -> Event:
    part = {"type": "audio", "transcript": text} if part_type == "audio" else {"type": "text", "text": text}
    return _event("response.content_part.done", part=part, **_part_fields(response_id, item_id))


def audio_delta(*, response_id: str, item_id: str, delta_b64: str) -> Event:
    return _event("response.output_audio.delta", delta=delta_b64, **_part_fields(response_id, item_id))


def audio_done(*, response_id: str, item_id: str) -> Event:
    return _event("response.output_audio.done", **_part_fields(response_id, item_id))


def audio_transcript_delta(*, response_id: str, item_id: str, delta: str) -> Event:
    return _event("response.output_audio_transcript.delta", delta=delta, **_part_fields(response_id, item_id))


def audio_transcript_done(*, response_id: str, item_id: str, transcript: str) -> Event:
    return _event("response.output_audio_transcript.done", transcript=transcript, **_part_fields(response_id, item_id))


def text_delta(*, response_id: str, item_id: str, delta: str) -> Event:
    return _event("response.output_text.delta", delta=delta, **_part_fields(response_id, item_id))


def text_done(*, response_id: str, item_id: str, text: str) -> Event:
    return _event("response.output_text.done", text=text, **_part_fields(response_id, item_id))
