"""The sherpa partial stream's own final transcript: ``finish()`` on the stream that made the previews
gives the turn's text without decoding its audio again, ``is_endpoint()`` reports sherpa's endpoint
rules on that stream, and a pinned language carries into the final transcript. Stand-in models
(``sherpa_standin``) run by the real sherpa-onnx; the text is meaningless letters."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("sherpa_onnx")
pytest.importorskip("onnx")

from models.interfaces import Transcript  # noqa: E402
from models.sherpa_asr import SherpaParams, SherpaRecognizer  # noqa: E402
from models.sherpa_model_files import detect_model  # noqa: E402
from tests.models.test_sherpa_asr import BUILDERS, SPEECH_A, SPEECH_B, _chunks, _read, _silence  # noqa: E402

CHUNK_SECS = 0.32
"""The stand-ins decode 32 frames of 10 ms per chunk."""


class CountingDecoder:
    """Wraps sherpa-onnx's OnlineRecognizer and counts the chunks it decodes."""

    def __init__(self, inner) -> None:
        self.inner, self.decoded = inner, 0

    def decode_stream(self, stream) -> None:
        self.decoded += 1
        self.inner.decode_stream(stream)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module", params=list(BUILDERS))
def recognizer(request, tmp_path_factory) -> SherpaRecognizer:
    directory = BUILDERS[request.param](tmp_path_factory.mktemp(request.param)).directory
    recognizer = SherpaRecognizer(detect_model(directory, precision="int8", languages=("zh", "en")),
                                  SherpaParams(num_threads=1, rule1_min_trailing_silence=1.0,
                                               rule2_min_trailing_silence=0.8))
    recognizer._recognizer = CountingDecoder(recognizer._recognizer)
    return recognizer


def test_the_partial_streams_finish_is_the_final_transcript_without_a_second_decode(recognizer):
    audio = _read(SPEECH_A)
    counter = recognizer._recognizer
    assert recognizer.partials().final_transcripts is True, "the server takes the final transcript from it"
    stream = recognizer.partials().open_stream()
    counter.decoded = 0
    previews = [stream.accept_audio(chunk) for chunk in _chunks(audio, 100)]
    while_speaking = counter.decoded
    counter.decoded = 0
    final = stream.finish()
    at_the_end = counter.decoded
    assert isinstance(final, Transcript) and final.text and final.text.lower().startswith(previews[-1].lower())
    # the same text as a final-transcript stream that decodes the whole turn at its end, which costs
    # every chunk again; the partial stream's finish() decodes only the tail padding
    counter.decoded = 0
    whole = recognizer.open_stream()
    whole.accept_audio(audio)
    turn = counter.decoded
    assert whole.finish().text == final.text
    tail = counter.decoded - turn
    assert turn == while_speaking >= 3, "the turn's chunks, decoded once while the user spoke"
    assert at_the_end == tail <= math.ceil(recognizer.params.tail_padding_secs / CHUNK_SECS) + 1, (
        f"finish() decoded {at_the_end} chunks: only the tail padding is left to decode")
    # and the stream starts afresh: the next utterance owes nothing to this one
    again = [stream.accept_audio(chunk) for chunk in _chunks(_read(SPEECH_B), 100)]
    fresh = recognizer.partials().open_stream()
    assert again == [fresh.accept_audio(chunk) for chunk in _chunks(_read(SPEECH_B), 100)]
    assert stream.finish() == fresh.finish()


def test_finish_takes_the_last_audio_in_the_same_call(recognizer):
    chunks = _chunks(_read(SPEECH_A), 100)
    one, two = recognizer.partials().open_stream(), recognizer.partials().open_stream()
    for chunk in chunks[:-1]:
        one.accept_audio(chunk)
        two.accept_audio(chunk)
    one.accept_audio(chunks[-1])
    assert two.finish(chunks[-1]) == one.finish()


def test_an_endpoint_on_the_partial_stream_and_the_final_text_across_it(recognizer):
    stream = recognizer.partials().open_stream()
    spoken = [stream.accept_audio(chunk) for chunk in _chunks(_read(SPEECH_A), 200)][-1]
    ended, heard = [], [spoken]
    for chunk in _chunks(_silence(1.6), 200):
        heard.append(stream.accept_audio(chunk))  # the speech's last frames clear the model's right context
        ended.append(stream.is_endpoint())
        assert heard[-1].startswith(heard[-2]), "an endpoint keeps the words heard so far"
    assert any(ended) and not all(ended), ended
    spoken = heard[-1]
    counter = recognizer._recognizer
    counter.decoded = 0
    final = stream.finish()
    assert counter.decoded <= math.ceil(recognizer.params.tail_padding_secs / CHUNK_SECS) + 1
    assert final.text.lower().startswith(spoken.lower())
    assert not stream.is_endpoint(), "finish() starts a new utterance"


def test_a_pinned_language_is_the_final_transcripts_language(recognizer):
    audio = _read(SPEECH_A)
    pinned = recognizer.partials("zh").open_stream()
    pinned.accept_audio(audio)
    assert pinned.finish().language == "zh"
    guessed = recognizer.partials().open_stream()
    guessed.accept_audio(audio)
    assert guessed.finish().language == "en", "Latin letters from a zh+en model: English"
    assert recognizer.partials().language == "zh" and recognizer.partials("en").language == "en"


def test_silence_alone_ends_by_rule_one_with_no_words(recognizer):
    stream = recognizer.partials().open_stream()
    seen = [(stream.accept_audio(chunk), stream.is_endpoint()) for chunk in _chunks(_silence(1.6), 200)]
    assert any(ended for _, ended in seen) and all(h is None for h, _ in seen)
    assert stream.finish().text == ""
