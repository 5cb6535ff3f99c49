"""The sherpa-onnx adapter's streaming contract, on stand-in models run by the real sherpa-onnx.

No weights can be downloaded here, so ``sherpa_standin`` builds tiny streaming
models of all three kinds the adapter supports (zipformer2 CTC, zipformer2
transducer, paraformer) with the interface and metadata sherpa-onnx expects, and
random weights. Real speech goes through the real
``sherpa_onnx.OnlineRecognizer``: fbank features, chunking, the decoder,
endpointing. The text that comes out is meaningless letters; these tests check
the streaming contract (partials per chunk, final transcript, endpoints and
resets, isolation between streams, clear errors), never recognition accuracy.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("sherpa_onnx")
pytest.importorskip("onnx")

from models.interfaces import MODEL_SAMPLE_RATE_HZ, Transcript  # noqa: E402
from models.sherpa_asr import (  # noqa: E402
    SherpaParams, SherpaPartials, SherpaRecognizer, SherpaSetupError, cuda_provider_available,
)
from models.sherpa_catalogue import lookup  # noqa: E402
from models.sherpa_model_files import SherpaModel, SherpaModelError, detect_model, resolve_model  # noqa: E402
from server.config import ConfigError, load_config  # noqa: E402
from tests.models import sherpa_standin  # noqa: E402

AUDIO_DIR = Path(__file__).resolve().parents[3] / "shared" / "audio" / "en"
SPEECH_A = "en_harvard_spk1_snt1.wav"
SPEECH_B = "en_cheetah_platforms.wav"
CHUNK_MS = [100, 200, 320]
BUILDERS = {"zipformer2_ctc": sherpa_standin.build_zipformer2_ctc,
            "transducer": sherpa_standin.build_zipformer2_transducer,
            "paraformer": sherpa_standin.build_paraformer}


def _read(name: str) -> np.ndarray:
    audio, rate = sf.read(AUDIO_DIR / name, dtype="float32")
    assert rate == MODEL_SAMPLE_RATE_HZ and audio.ndim == 1
    return audio


def _chunks(audio: np.ndarray, ms: int) -> list[np.ndarray]:
    step = MODEL_SAMPLE_RATE_HZ * ms // 1000
    return [audio[i : i + step] for i in range(0, len(audio), step)]


def _silence(secs: float) -> np.ndarray:
    return np.zeros(int(secs * MODEL_SAMPLE_RATE_HZ), dtype=np.float32)


@pytest.fixture(scope="module", params=list(BUILDERS))
def standin(request, tmp_path_factory) -> Path:
    return BUILDERS[request.param](tmp_path_factory.mktemp(request.param)).directory


@pytest.fixture(scope="module")
def recognizer(standin) -> SherpaRecognizer:
    model = detect_model(standin, precision="int8", languages=("en",))
    return SherpaRecognizer(model, SherpaParams(num_threads=1, rule1_min_trailing_silence=1.0,
                                                rule2_min_trailing_silence=0.8))


def _feed(stream, audio: np.ndarray, ms: int = 200) -> list[str | None]:
    return [stream.accept_audio(chunk) for chunk in _chunks(audio, ms)]


def test_stand_in_directory_is_detected_as_its_kind(standin, recognizer):
    assert recognizer.model.kind == standin.name.rstrip("0123456789")  # built in a directory named after it
    assert resolve_model(str(standin), Path("/nonexistent"), precision="fp32").kind == recognizer.model.kind


@pytest.mark.parametrize("ms", CHUNK_MS)
def test_partials_arrive_per_chunk_and_lead_to_the_final_transcript(recognizer, ms):
    partials = recognizer.partials()
    assert isinstance(partials, SherpaPartials) and partials.language == "en"
    stream = partials.open_stream()
    hypotheses = _feed(stream, _read(SPEECH_A), ms)
    assert all(h is None or isinstance(h, str) for h in hypotheses)
    first = next(i for i, h in enumerate(hypotheses) if h)
    assert first < len(hypotheses) - 1, f"no partial before the last chunk: {hypotheses}"
    assert all(h for h in hypotheses[first:]), "a partial stream repeats the hypothesis after every chunk"
    final = stream.finish()
    assert isinstance(final, Transcript) and final.language == "en"
    assert final.text.startswith(hypotheses[-1]), (final.text, hypotheses[-1])
    stream.close()


def test_a_final_stream_reports_only_changed_hypotheses(recognizer):
    stream = recognizer.open_stream(language="en")
    changes = _feed(stream, _read(SPEECH_A)) + _feed(stream, _silence(0.6))
    seen = [h for h in changes if h is not None]
    assert seen and len(seen) == len(set(seen)), changes
    assert changes[-1] is None  # silence after speech adds nothing
    assert stream.finish().text.startswith(seen[-1])


def test_an_endpoint_resets_the_sherpa_stream_but_keeps_the_utterance(recognizer):
    stream = recognizer.partials().open_stream()
    spoken = _feed(stream, _read(SPEECH_A))[-1]
    assert spoken
    endpoints = []
    for chunk in _chunks(_silence(2.0), 200):
        stream.accept_audio(chunk)
        endpoints.append(stream.is_endpoint())
    assert any(endpoints), "2 s of silence after speech is an endpoint by rule 2 (0.8 s here)"
    assert recognizer._text(stream._stream) == "", "recognizer.reset(stream) clears sherpa's result"
    _feed(stream, _read(SPEECH_B))
    assert not stream.is_endpoint()
    text = stream.finish().text
    assert text.startswith(spoken) and len(text) > len(spoken), "the first segment stays in the transcript"


def test_reset_and_finish_start_a_clean_utterance(recognizer):
    a, b = _read(SPEECH_A), _read(SPEECH_B)
    fresh = recognizer.partials().open_stream()
    expected_b = _feed(fresh, b)
    expected_final = fresh.finish()
    reused = recognizer.partials().open_stream()
    _feed(reused, a)
    reused.reset()
    assert _feed(reused, b) == expected_b, "the new utterance decodes as in a fresh stream"
    reused.reset()
    assert reused.accept_audio(_silence(0.4)) is None, "nothing of the forgotten utterance is left"
    again = recognizer.open_stream()
    _feed(again, a)
    again.finish()
    _feed(again, b)
    assert again.finish() == expected_final, "finish() leaves no trace in the next utterance"
    again.close()
    with pytest.raises(RuntimeError):
        again.accept_audio(_silence(0.1))


def test_streams_do_not_share_state_even_across_threads(recognizer):
    a, b = _read(SPEECH_A), _read(SPEECH_B)
    alone = {name: _feed(recognizer.partials().open_stream(), audio) for name, audio in (("a", a), ("b", b))}
    sa, sb = recognizer.partials().open_stream(), recognizer.partials().open_stream()
    interleaved = {"a": [], "b": []}
    for ca, cb in zip(_chunks(a, 200), _chunks(b, 200)):
        interleaved["a"].append(sa.accept_audio(ca))
        interleaved["b"].append(sb.accept_audio(cb))
    interleaved["a"] += [sa.accept_audio(c) for c in _chunks(a, 200)[len(interleaved["a"]):]]
    interleaved["b"] += [sb.accept_audio(c) for c in _chunks(b, 200)[len(interleaved["b"]):]]
    assert interleaved == alone
    assert alone["a"][-1] != alone["b"][-1], "the stand-in must tell the two recordings apart"
    with ThreadPoolExecutor(2) as pool:  # the asr and partials executors feed streams concurrently
        threaded = dict(zip("ab", pool.map(lambda audio: _feed(recognizer.partials().open_stream(), audio), (a, b))))
    assert threaded == alone


def test_missing_files_are_named(standin, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(standin, broken)
    (broken / "tokens.txt").unlink()
    with pytest.raises(SherpaModelError, match=r"missing .*tokens\.txt"):
        SherpaRecognizer(detect_model(broken, precision="int8", languages=("en",)))
    with pytest.raises(SherpaModelError, match="does not exist"):
        detect_model(tmp_path / "nowhere", precision="int8", languages=("en",))


def test_a_ctc_tokens_file_without_blank_is_refused_before_sherpa_exits(tmp_path):
    directory = sherpa_standin.build_zipformer2_ctc(tmp_path / "ctc").directory
    (directory / "tokens.txt").write_text("a 0\nb 1\n", encoding="utf-8")
    with pytest.raises(SherpaModelError, match="blank"):
        SherpaRecognizer(detect_model(directory, precision="int8", languages=("en",)))


def test_hotwords_are_refused_for_non_transducers(tmp_path):
    directory = sherpa_standin.build_zipformer2_ctc(tmp_path / "ctc").directory
    hotwords = tmp_path / "hotwords.txt"
    hotwords.write_text("tingshuo\n", encoding="utf-8")
    model = detect_model(directory, precision="int8", languages=("en",))
    with pytest.raises(ValueError, match="zipformer2_ctc"):
        SherpaRecognizer(model, SherpaParams(hotwords_file=hotwords, decoding_method="modified_beam_search"))
    with pytest.raises(ValueError, match="greedy_search"):
        SherpaRecognizer(model, SherpaParams(decoding_method="modified_beam_search"))


def test_hotwords_load_on_a_transducer_with_beam_search(tmp_path):
    directory = sherpa_standin.build_zipformer2_transducer(tmp_path / "transducer").directory
    hotwords = tmp_path / "hotwords.txt"
    hotwords.write_text("a b c\n", encoding="utf-8")
    detected = detect_model(directory, precision="int8", languages=("en",))
    with pytest.raises(ValueError, match="modeling unit"):  # unknown for a non-catalogue model
        SherpaRecognizer(detected, SherpaParams(hotwords_file=hotwords, decoding_method="modified_beam_search"))
    with pytest.raises(ValueError, match="modified_beam_search"):
        SherpaRecognizer(SherpaModel(kind="transducer", directory=directory, files=detected.files,
                                     languages=("en",), modeling_unit="cjkchar"),
                         SherpaParams(hotwords_file=hotwords))
    model = SherpaModel(kind="transducer", directory=directory, files=detected.files, languages=("en",),
                        modeling_unit="cjkchar")
    recognizer = SherpaRecognizer(model, SherpaParams(num_threads=1, hotwords_file=hotwords,
                                                      decoding_method="modified_beam_search"))
    stream = recognizer.open_stream()
    _feed(stream, _read(SPEECH_A))
    assert isinstance(stream.finish().text, str)


@pytest.mark.skipif(cuda_provider_available(), reason="this sherpa-onnx has the CUDA provider")
@pytest.mark.may_skip("a CUDA build of sherpa-onnx has no missing-CUDA error to check (tests/conftest.py)")
def test_cuda_without_the_cuda_build_fails_instead_of_falling_back(standin):
    with pytest.raises(SherpaSetupError, match="CUDA"):
        SherpaRecognizer(detect_model(standin, precision="fp32", languages=("en",)), SherpaParams(provider="cuda"))


def _config(tmp_path: Path, *assignments: str):
    return load_config(environ={}, assignments=["models.asr=sherpa", f"models.model_dir={tmp_path}", *assignments])


def test_server_loads_one_sherpa_engine_for_finals_and_previews(standin, tmp_path):
    from server.engines import _load_asr, _load_partials

    config = _config(tmp_path, f"models.sherpa_model={standin}", "models.inference_threads=1")
    asr = _load_asr(config, tmp_path)
    assert isinstance(asr, SherpaRecognizer)
    partials = _load_partials(config, asr)
    assert isinstance(partials, SherpaPartials) and partials.recognizer is asr
    assert _load_partials(_config(tmp_path, "models.asr_partials=off"), asr) is None


def test_server_start_fails_naming_the_missing_files_and_where_to_get_them(tmp_path):
    from server.engines import _load_asr

    entry = lookup("zipformer-en-2023-06-26")
    with pytest.raises(ConfigError) as error:
        _load_asr(_config(tmp_path, f"models.sherpa_model={entry.key}"), tmp_path)
    message = str(error.value)
    for relative in entry.required_paths("int8"):
        assert relative in message
    assert entry.key in message and entry.url in message
    with pytest.raises(ConfigError, match="sherpa_model is empty"):
        _load_asr(_config(tmp_path), tmp_path)


def test_server_refuses_hotwords_for_a_ctc_model_and_a_language_it_lacks(tmp_path):
    from server.engines import _load_asr

    directory = sherpa_standin.build_zipformer2_ctc(tmp_path / "ctc").directory
    hotwords = tmp_path / "hotwords.txt"
    hotwords.write_text("tingshuo\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="zipformer2_ctc"):
        _load_asr(_config(tmp_path, f"models.sherpa_model={directory}", f"models.sherpa_hotwords={hotwords}"),
                  tmp_path)
    with pytest.raises(ConfigError, match="sherpa_hotwords needs"):
        _load_asr(load_config(environ={}, assignments=[f"models.sherpa_hotwords={hotwords}"]), tmp_path)
    entry_dir = tmp_path / lookup("zipformer-ctc-zh-2023-12-13").archive_root
    shutil.copytree(directory, entry_dir)
    shutil.copy(entry_dir / "model.onnx", entry_dir / "ctc-epoch-20-avg-1-chunk-16-left-128.int8.onnx")
    with pytest.raises(ConfigError, match="recognises"):
        _load_asr(_config(tmp_path, "models.sherpa_model=zipformer-ctc-zh-2023-12-13", "models.asr_language=en"),
                  tmp_path)


async def test_the_servers_preview_driver_streams_sherpa_partials_as_deltas(tmp_path):
    """server/partial_transcripts.py on the sherpa view: the stand-in paraformer spaces its tokens, so words
    become stable and go out as deltas, a prefix of the final transcript of the same audio."""
    import asyncio

    from server.partial_transcripts import PartialTranscripts

    directory = sherpa_standin.build_paraformer(tmp_path / "paraformer").directory
    recognizer = SherpaRecognizer(detect_model(directory, precision="int8", languages=("en",)),
                                  SherpaParams(num_threads=1))
    sent: list[dict] = []

    async def send(event: dict) -> None:
        sent.append(event)

    with ThreadPoolExecutor(1) as executor:
        previews = PartialTranscripts(recognizer=recognizer.partials(), executor=executor,
                                      spawn=lambda coro, name: asyncio.ensure_future(coro), send=send)
        previews.start("item_1")
        audio = _read(SPEECH_A)
        for chunk in _chunks(audio, 100):
            previews.feed(chunk)
            await asyncio.sleep(0.01)
        while previews._job is not None:
            await asyncio.sleep(0.01)
        assert previews.finish("item_1").sent_deltas is True
        await previews.aclose()
    preview = "".join(e["delta"] for e in sent)
    final = recognizer.open_stream().accept_audio(audio) or ""
    assert preview and final.startswith(preview), (preview, final)
