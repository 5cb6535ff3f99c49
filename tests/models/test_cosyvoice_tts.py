"""The CosyVoice adapter's contract: a real worker process, real queues and threads, with the
model replaced at the model-call boundary by ``tests/models/cosyvoice_standin.py``.

Not covered here (no CosyVoice weights or GPU reach this machine): the real model's audio,
``_TorchBoundary``'s numpy/torch conversion, and CUDA in the worker.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import soundfile as sf

from models.cosyvoice_tts import CosyVoiceConfig, CosyVoiceError, CosyVoiceSynthesizer
from tests.e2e.realtime_client import AUDIO_DIR

PROMPT = AUDIO_DIR / "zh" / "zh_cosyvoice_prompt.wav"


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prompts")
    for name in ("alice", "bob"):
        audio, rate = sf.read(PROMPT, dtype="float32")
        sf.write(folder / f"{name}.wav", audio, rate)
        (folder / f"{name}.txt").write_text("希望你以后能够做的比我还好呦。", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tts(prompts):
    synth = CosyVoiceSynthesizer(CosyVoiceConfig(model_dir=prompts, prompts_dir=prompts,
                                                 model_factory="tests.models.cosyvoice_standin:load"))
    yield synth
    synth.close()


def level_of(chunks) -> set[int]:
    return {int(v) for v in np.unique(np.concatenate(chunks))}


def test_worker_registers_the_speaker_prompts(tts):
    assert tts.sample_rate == 24_000 and tts.speakers == ["alice", "bob"]


def test_audio_arrives_while_text_is_still_coming(tts):
    stream = tts.open_stream(voice="bob")
    audio = stream.audio()
    stream.push_text("你好")
    first = next(audio)  # before end_text(): the text went in as it arrived
    assert len(first) == 200
    stream.push_text("世界和平")
    stream.end_text()
    rest = list(audio)
    assert [len(c) for c in rest] == [400] and stream.finished
    assert level_of([first, *rest]) == {int(0.02 * 32767)}  # bob is speaker 2


def test_two_sessions_at_once_do_not_share_state(tts):
    results: dict[str, list[np.ndarray]] = {}

    def speak(voice: str, pieces: list[str]) -> None:
        stream = tts.open_stream(voice=voice)
        for piece in pieces:
            stream.push_text(piece)
        stream.end_text()
        results[voice] = list(stream.audio())

    threads = [threading.Thread(target=speak, args=("alice", ["一二三"] * 8)),
               threading.Thread(target=speak, args=("bob", ["四五"] * 8))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [len(c) for c in results["alice"]] == [300] * 8 and level_of(results["alice"]) == {int(0.01 * 32767)}
    assert [len(c) for c in results["bob"]] == [200] * 8 and level_of(results["bob"]) == {int(0.02 * 32767)}


def test_a_consumer_that_stops_pulling_cancels_the_request(tts):
    stream = tts.open_stream()
    audio = stream.audio()
    stream.push_text("很长的回答")
    next(audio)
    audio.close()  # what the response runner does on barge-in
    assert stream.finished
    stream.push_text("ignored")  # after the cancel nothing is sent
    assert list(tts.synthesize("再来", voice="alice")) != []  # the worker goes on serving


def test_unknown_voice_falls_back_to_the_default_speaker(tts):
    chunks = list(tts.synthesize("好", voice="alloy"))
    assert level_of(chunks) == {int(0.01 * 32767)}


def test_a_model_that_fails_to_load_is_a_clear_error(prompts):
    with pytest.raises(CosyVoiceError, match="CUDA out of memory"):
        CosyVoiceSynthesizer(CosyVoiceConfig(model_dir=prompts, prompts_dir=prompts,
                                             model_factory="tests.models.cosyvoice_standin:load_broken"))


def test_missing_speaker_prompts_is_a_clear_error(tmp_path):
    with pytest.raises(CosyVoiceError, match="no speaker prompts"):
        CosyVoiceSynthesizer(CosyVoiceConfig(model_dir=tmp_path, prompts_dir=tmp_path,
                                             model_factory="tests.models.cosyvoice_standin:load"))
