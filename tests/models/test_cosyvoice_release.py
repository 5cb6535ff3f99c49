"""A CosyVoice request closed early is released in the worker process: the response runner closes the
iterator ``synthesize()`` returned when a clause is spoken or cancelled (barge-in), and the worker then
closes the model's generator and forgets the request at once. Also: ``close()`` stops the worker process
and wakes a reader still waiting for audio. Real worker process and queues; the model is
``tests/models/cosyvoice_standin_slow.py``."""

from __future__ import annotations

import threading
import time

import pytest
import soundfile as sf

from models.cosyvoice_tts import CosyVoiceConfig, CosyVoiceError, CosyVoiceSynthesizer
from tests.e2e.realtime_client import AUDIO_DIR

PROMPT = AUDIO_DIR / "zh" / "zh_cosyvoice_prompt.wav"
LONG = "这是一个很长很长的回答，" * 8  # 96 characters: about five seconds of stand-in synthesis


def make_prompts(folder):
    audio, rate = sf.read(PROMPT, dtype="float32")
    sf.write(folder / "alice.wav", audio, rate)
    (folder / "alice.txt").write_text("希望你以后能够做的比我还好呦。", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_prompts(tmp_path_factory.mktemp("slow-cosyvoice"))


@pytest.fixture(scope="module")
def tts(model_dir):
    synth = CosyVoiceSynthesizer(CosyVoiceConfig(model_dir=model_dir, prompts_dir=model_dir,
                                                 model_factory="tests.models.cosyvoice_standin_slow:load"))
    yield synth
    synth.close()


def until(condition, timeout_s: float = 2.0) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout_s``."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout_s, "not within the time"
        time.sleep(0.01)
    return time.monotonic() - start


def endings(model_dir) -> list[str]:
    log = model_dir / "requests.log"
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def test_closing_the_synthesis_iterator_releases_the_request_in_the_worker(tts, model_dir):
    before = len(endings(model_dir))
    pieces = tts.synthesize(LONG)
    assert len(next(pieces)) == 100
    assert len(tts.active_requests()) == 1, "the worker holds the request while it speaks"
    pieces.close()  # what the response runner does when a clause is cancelled
    took = until(lambda: tts.active_requests() == [])
    assert took < 1.0, f"released after {took:.2f} s; the whole text would take about 5 s"
    until(lambda: len(endings(model_dir)) > before)
    assert endings(model_dir)[before] == f"closed {LONG}", "the model's generator was closed, not run to its end"
    assert tts._streams == {}, "nothing of the request is left in the server process either"


def test_closing_before_the_first_chunk_sends_nothing_and_a_spoken_clause_ends_by_itself(tts, model_dir):
    pieces = tts.synthesize("好")
    pieces.close()  # never started: no request was opened
    assert tts.active_requests() == []
    before = len(endings(model_dir))
    assert [len(c) for c in tts.synthesize("你好")] == [100, 100]
    until(lambda: tts.active_requests() == [] and len(endings(model_dir)) > before)
    assert endings(model_dir)[before] == "finished 你好"


def test_closing_from_another_thread_after_a_reader_stopped(tts):
    """The runner reads on the TTS worker thread and closes there too, after the read returned."""
    pieces = tts.synthesize(LONG)
    got = []
    reader = threading.Thread(target=lambda: got.append(next(pieces)))
    reader.start()
    reader.join(5)
    assert got
    closer = threading.Thread(target=pieces.close)
    closer.start()
    closer.join(5)
    until(lambda: tts.active_requests() == [])


def test_close_stops_the_worker_and_wakes_a_waiting_reader(tmp_path):
    make_prompts(tmp_path)
    synth = CosyVoiceSynthesizer(CosyVoiceConfig(model_dir=tmp_path, prompts_dir=tmp_path,
                                                 model_factory="tests.models.cosyvoice_standin_slow:load"))
    stream = synth.open_stream()
    audio = stream.audio(timeout_s=60)
    failure: list[BaseException] = []

    def read() -> None:
        try:
            list(audio)  # no text comes: it waits for audio
        except CosyVoiceError as exc:
            failure.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    process = synth._process
    synth.close()
    reader.join(5)
    assert not reader.is_alive() and "shut down" in str(failure[0])
    assert not process.is_alive() and process.exitcode == 0, "stopped by its stop command, not killed"
    synth.close()  # idempotent
    with pytest.raises(CosyVoiceError, match="shut down"):
        synth.open_stream()
