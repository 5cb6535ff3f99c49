import pytest

from server.protocol import ProtocolError, parse_client_event
from server.session_settings import SessionSettings, SettingsError, apply_session_update


@pytest.mark.parametrize("text,code", [
    ("{", "invalid_json"),
    ("42", "invalid_event"),
    ('{"type": 5}', "invalid_event"),
    ('{"type": "session.delete"}', "unknown_event_type"),
    ('{"type": "response.create", "response": {"max_output_tokens": "lots"}}', "invalid_event"),
])
def test_bad_messages(text, code):
    with pytest.raises(ProtocolError) as info:
        parse_client_event(text)
    assert info.value.code == code


def test_event_id_is_echoed_in_errors():
    with pytest.raises(ProtocolError) as info:
        parse_client_event('{"type": "input_audio_buffer.append", "event_id": "evt_7"}')
    assert info.value.client_event_id == "evt_7" and info.value.param == "audio"


def test_sixteen_khz_extension_is_accepted():
    event = parse_client_event('{"type": "session.update", "session": {"type": "realtime", "audio": '
                               '{"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}}')
    settings = apply_session_update(SessionSettings(id="s"), event.raw["session"])
    assert settings.input_rate_hz == 16000 and settings.output_rate_hz == 24000


def test_session_update_fields():
    settings = apply_session_update(SessionSettings(id="s"), {
        "instructions": "Be brief.", "output_modalities": ["text"],
        "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 700},
                            "transcription": None},
                  "output": {"voice": "marin", "speed": 1.2}}})
    assert settings.instructions == "Be brief." and settings.output_modalities == ("text",)
    assert settings.turn_detection.mode == "server_vad" and settings.turn_detection.silence_duration_ms == 700
    assert settings.transcription is False and settings.voice == "marin" and settings.speed == 1.2
    assert apply_session_update(settings, {"audio": {"input": {"turn_detection": None}}}).turn_detection is None


@pytest.mark.parametrize("session,param", [
    ({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 8000}}}}, "session.audio.input.format"),
    ({"audio": {"input": {"format": {"type": "audio/pcmu"}}}}, "session.audio.input.format"),
    ({"audio": {"output": {"speed": 3}}}, "session.audio.output.speed"),
    ({"output_modalities": ["video"]}, "session.output_modalities"),
])
def test_invalid_settings(session, param):
    with pytest.raises(SettingsError) as info:
        apply_session_update(SessionSettings(id="s"), session)
    assert info.value.param == param
