import pytest

from server.config import ConfigError, load_config


def test_layers_override_in_order(tmp_path):
    toml = tmp_path / "t.toml"
    toml.write_text('[server]\nport = 9100\nhost = "0.0.0.0"\n[audio]\nmax_lead_ms = 250\n')
    config = load_config(path=toml, environ={"TINGSHUO_SERVER_PORT": "9200"}, assignments=["audio.max_lead_ms=120"])
    assert (config.server.host, config.server.port, config.audio.max_lead_ms) == ("0.0.0.0", 9200, 120)


@pytest.mark.parametrize("assignment", ["server.port=abc", "server.nope=1", "nosection.x=1", "models.llm=gpt-9",
                                        "models.asr_partials=vosk", "badformat"])
def test_bad_values_fail_at_start(assignment):
    with pytest.raises(ConfigError):
        load_config(environ={}, assignments=[assignment])


def test_partials_can_be_turned_off():
    assert load_config(environ={}).models.asr_partials == "auto"
    assert load_config(environ={"TINGSHUO_MODELS_ASR_PARTIALS": "off"}).models.asr_partials == "off"


def test_sherpa_settings_are_typed():
    config = load_config(environ={"TINGSHUO_MODELS_PROVIDER": "cuda"},
                         assignments=["models.asr=sherpa", "models.sherpa_model=zipformer-en-2023-06-26"])
    m = config.models
    assert (m.asr, m.sherpa_model, m.provider, m.sherpa_hotwords) == ("sherpa", "zipformer-en-2023-06-26", "cuda", "")
    with pytest.raises(ConfigError):
        load_config(environ={}, assignments=["models.provider=rocm"])
    with pytest.raises(ConfigError):
        load_config(environ={}, assignments=["models.asr=sherpa-onnx"])
