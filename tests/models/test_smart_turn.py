"""Smart Turn v3.2 on the project's real recordings.

The model is a prosody+content classifier, not an oracle: on these read-aloud clips
some complete sentences score low (en_harvard_spk1_snt1: 0.02) and some cuts score
high, so the assertions are about the population (means and a majority) plus the
clips it is clearly confident about. Measured with pipecat 1.14.0's model:
English whole files mean 0.66; cut at 55 % (mid-speech) mean 0.15; the same cuts
followed by 250 ms of silence (what the server passes after its short VAD stop)
mean 0.38.
"""

from __future__ import annotations

import hashlib
import os
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from models.interfaces import MODEL_SAMPLE_RATE_HZ
from models.smart_turn import (
    MAX_AUDIO_SAMPLES,
    MODEL_FILE,
    MODEL_SHA256,
    N_FRAMES,
    N_MELS,
    WHEEL_ENV,
    WHEEL_MEMBER,
    SmartTurn,
    extract_smart_turn,
    find_smart_turn_model,
    verify_smart_turn_model,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO_ROOT / "var" / "models"
AUDIO_DIR = REPO_ROOT.parent / "shared" / "audio"
EN_FILES = sorted(AUDIO_DIR.glob("en/*.wav"))
CUT_FRACTION = 0.55
"""Every English clip is mid-speech at 55 % of its samples (VAD p = 1.00 on the last frames)."""
TRAILING_SILENCE_SECS = 0.25
CONFIDENT_COMPLETE = [  # measured 0.94 .. 0.99
    "en/en_cheetah_platforms.wav",
    "en/en_harvard_spk1_snt4.wav",
    "en/en_librispeech_quilter.wav",
    "zh/zh_aishell_BAC009S0724W0121.wav",
    "zh/zh_aishell_BAC009S0764W0121.wav",
    "zh/zh_cosyvoice_prompt.wav",
    "zh/zh_funasr_asr_example.wav",
    "zh/zh_masr_test.wav",
]


def _pipecat_wheel() -> Path | None:
    env = os.environ.get(WHEEL_ENV)
    if env and Path(env).is_file():
        return Path(env)
    for folder in (REPO_ROOT / "var" / "wheels", Path("/tmp/pipecat")):
        wheels = sorted(folder.glob("pipecat_ai-*.whl"))
        if wheels:
            return wheels[0]
    return None


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = find_smart_turn_model(MODEL_DIR)
    if found is not None:
        return found
    wheel = _pipecat_wheel()
    if wheel is None:
        pytest.skip(f"no {MODEL_FILE} in {MODEL_DIR} and no pipecat-ai wheel ({WHEEL_ENV}, var/wheels, /tmp/pipecat)")
    return extract_smart_turn(wheel, tmp_path_factory.mktemp("smart-turn"))


@pytest.fixture(scope="module")
def model(model_path: Path) -> SmartTurn:
    return SmartTurn(model_path=model_path)


def _read(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32")
    assert rate == MODEL_SAMPLE_RATE_HZ and audio.ndim == 1, f"{path}: expected 16 kHz mono"
    return audio


# -- the model file -------------------------------------------------------------------------------
def test_model_file_is_the_pinned_one(model_path: Path) -> None:
    assert verify_smart_turn_model(model_path)


def test_find_returns_none_for_an_empty_dir(tmp_path: Path) -> None:
    assert find_smart_turn_model(tmp_path) is None


def test_extract_from_the_real_wheel(tmp_path: Path) -> None:
    wheel = _pipecat_wheel()
    if wheel is None:
        pytest.skip("no pipecat-ai wheel available")
    path = extract_smart_turn(wheel, tmp_path / "models")
    assert path == tmp_path / "models" / MODEL_FILE
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MODEL_SHA256
    assert find_smart_turn_model(tmp_path / "models") == path


def test_extract_rejects_a_different_model(tmp_path: Path) -> None:
    wheel = tmp_path / "pipecat_ai-0.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(WHEEL_MEMBER, b"not the pinned model")
    with pytest.raises(ValueError, match="sha256"):
        extract_smart_turn(wheel, tmp_path / "models")
    assert find_smart_turn_model(tmp_path / "models") is None


def test_extract_reports_a_wheel_without_the_model(tmp_path: Path) -> None:
    wheel = tmp_path / "pipecat_ai-0.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pipecat/__init__.py", b"")
    with pytest.raises(FileNotFoundError):
        extract_smart_turn(wheel, tmp_path / "models")


# -- features -------------------------------------------------------------------------------------
def test_features_shape_and_window(model: SmartTurn) -> None:
    audio = _read(AUDIO_DIR / "en" / "en_jfk.wav")  # 11 s: longer than the window
    features = model.features(audio)
    assert features.shape == (N_MELS, N_FRAMES) == (80, 800) and features.dtype == np.float32
    np.testing.assert_array_equal(features, model.features(audio[-MAX_AUDIO_SAMPLES:]))
    short = audio[: 3 * MODEL_SAMPLE_RATE_HZ]
    padded_in_front = np.concatenate([np.zeros(MAX_AUDIO_SAMPLES - len(short), np.float32), short])
    np.testing.assert_array_equal(model.features(short), model.features(padded_in_front))


def test_features_match_pipecats_reference(model: SmartTurn) -> None:
    """Our faster-whisper log-mel against the numpy Whisper features pipecat itself feeds the model."""
    wheel = _pipecat_wheel()
    if wheel is None:
        pytest.skip("no pipecat-ai wheel available for the reference implementation")
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read("pipecat/audio/turn/smart_turn/_whisper_features.py").decode()
    reference = types.ModuleType("pipecat_whisper_features")
    exec(compile(source, "pipecat_whisper_features", "exec"), reference.__dict__)
    for name in ("en/en_harvard_spk1_snt1.wav", "en/en_jfk.wav", "zh/zh_masr_test.wav"):
        audio = _read(AUDIO_DIR / name)
        window = audio[-MAX_AUDIO_SAMPLES:]
        window = np.pad(window, (MAX_AUDIO_SAMPLES - len(window), 0))
        expected = reference.compute_whisper_log_mel_features(window, do_normalize=True)
        np.testing.assert_allclose(model.features(audio), expected, atol=1e-4)


# -- scores ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def english_scores(model: SmartTurn) -> dict[str, np.ndarray]:
    silence = np.zeros(int(TRAILING_SILENCE_SECS * MODEL_SAMPLE_RATE_HZ), np.float32)
    complete, cut, cut_then_silence = [], [], []
    for path in EN_FILES:
        audio = _read(path)
        head = audio[: int(len(audio) * CUT_FRACTION)]
        complete.append(model.end_of_turn_probability(audio))
        cut.append(model.end_of_turn_probability(head))
        cut_then_silence.append(model.end_of_turn_probability(np.concatenate([head, silence])))
    return {"complete": np.array(complete), "cut": np.array(cut), "cut_then_silence": np.array(cut_then_silence)}


def test_scores_are_probabilities(english_scores: dict[str, np.ndarray]) -> None:
    assert len(english_scores["complete"]) >= 10
    for scores in english_scores.values():
        assert ((scores >= 0) & (scores <= 1)).all()


def test_complete_utterances_score_higher_than_cut_ones(english_scores: dict[str, np.ndarray]) -> None:
    complete, cut = english_scores["complete"], english_scores["cut"]
    assert complete.mean() >= cut.mean() + 0.3  # measured 0.66 vs 0.15
    assert (complete > cut).sum() >= 0.7 * len(complete)  # measured 9 of 11


def test_trailing_pause_does_not_make_a_cut_look_complete(english_scores: dict[str, np.ndarray]) -> None:
    """The server asks after a 250 ms pause; the gap shrinks there but stays."""
    assert english_scores["complete"].mean() >= english_scores["cut_then_silence"].mean() + 0.15  # 0.66 vs 0.38


@pytest.mark.parametrize("name", CONFIDENT_COMPLETE)
def test_clearly_finished_sentences_score_high(model: SmartTurn, name: str) -> None:
    assert model.end_of_turn_probability(_read(AUDIO_DIR / name)) > 0.8


def test_empty_and_float64_input(model: SmartTurn) -> None:
    assert 0.0 <= model.end_of_turn_probability(np.zeros(0, dtype=np.float32)) <= 1.0
    audio = _read(AUDIO_DIR / "en" / "en_cheetah_platforms.wav")
    assert model.end_of_turn_probability(audio.astype(np.float64)) == pytest.approx(
        model.end_of_turn_probability(audio), abs=1e-6
    )
