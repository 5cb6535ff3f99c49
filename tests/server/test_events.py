"""Every server event builder matches the openai package's GA Realtime schema."""

import pydantic
import pytest
from openai.types.realtime import RealtimeServerEvent

from server import events
from server.conversation import ConversationItem
from server.session_settings import SessionSettings, TurnDetectionSettings

ADAPTER = pydantic.TypeAdapter(RealtimeServerEvent)
ids = {"response_id": "resp_1", "item_id": "item_1"}
user_item = ConversationItem(id="item_u", role="user", content_type="input_audio", text="hi").to_wire()
assistant_item = ConversationItem(id="item_a", role="assistant", content_type="output_audio", text="hello").to_wire()
session = SessionSettings(id="sess_1").to_wire()
server_vad = SessionSettings(id="sess_2", turn_detection=TurnDetectionSettings(mode="server_vad")).to_wire()
response = {"object": "realtime.response", "id": "resp_1", "status": "cancelled", "output": [assistant_item],
            "status_details": {"type": "cancelled", "reason": "turn_detected"}, "output_modalities": ["audio"]}

EVENTS = [
    events.error("bad", code="invalid_json"),
    events.session_created(session),
    events.session_updated(server_vad),
    events.speech_started(audio_start_ms=10, item_id="item_u"),
    events.speech_stopped(audio_end_ms=900, item_id="item_u"),
    events.buffer_committed(item_id="item_u", previous_item_id=None),
    events.buffer_cleared(),
    events.item_added(user_item, previous_item_id=None),
    events.item_done(assistant_item, previous_item_id="item_u"),
    events.item_truncated(item_id="item_a", audio_end_ms=500),
    events.item_deleted(item_id="item_a"),
    events.transcription_delta(item_id="item_u", delta="hi"),
    events.transcription_completed(item_id="item_u", transcript="hi", audio_secs=1.2),
    events.transcription_failed(item_id="item_u", message="engine failed"),
    events.response_created({**response, "status": "in_progress", "output": [], "status_details": None}),
    events.response_done(response),
    events.output_item_added(response_id="resp_1", item=assistant_item),
    events.output_item_done(response_id="resp_1", item=assistant_item),
    events.content_part_added(**ids, part_type="audio"),
    events.content_part_done(**ids, part_type="audio", text="hello"),
    events.audio_delta(**ids, delta_b64="AAAA"),
    events.audio_done(**ids),
    events.audio_transcript_delta(**ids, delta="hel"),
    events.audio_transcript_done(**ids, transcript="hello"),
    events.text_delta(**ids, delta="hel"),
    events.text_done(**ids, text="hello"),
]


@pytest.mark.parametrize("event", EVENTS, ids=[e["type"] for e in EVENTS])
def test_event_validates_against_openai_schema(event):
    model = ADAPTER.validate_python(event)
    assert model.type == event["type"]
    dumped = model.model_dump(exclude_unset=True)
    for key in event:
        assert key in dumped
