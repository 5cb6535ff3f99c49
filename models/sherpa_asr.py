"""sherpa-onnx streaming ASR: one engine for the final transcript and the live preview.

Whisper decodes a turn once at its end and PocketSphinx previews it; a sherpa-onnx
streaming model (zipformer transducer, streaming paraformer, zipformer2 CTC) does
both: it decodes each chunk as it arrives, so the hypothesis after every chunk
*is* the preview and the hypothesis after the tail padding is the final text.
:class:`SherpaRecognizer` is the :class:`~models.interfaces.SpeechRecognizer`;
:meth:`SherpaRecognizer.partials` returns the
:class:`~models.interfaces.PartialRecognizer` view of the same loaded model.

Concurrency. The ``OnlineRecognizer`` (the ONNX sessions, hundreds of MB) is loaded
once and shared. Each :class:`SherpaStream` owns one ``OnlineStream`` (features,
encoder states, decoder result), so sessions never share recognition state. A
stream must be used by one thread at a time (the server calls it from one
executor job at a time). Different streams may be fed from different threads
(the ``asr`` and ``partials`` executors): sherpa-onnx does not document its
``decode_stream`` as thread-safe, so decode steps are serialised by a lock per
recognizer, one chunk at a time, so that a long final decode interleaves with
the previews of other sessions instead of blocking them.

Endpoints. With ``enable_endpoint_detection`` sherpa-onnx applies its trailing-
silence rules; :meth:`SherpaStream.is_endpoint` reports whether the last chunk
ended a segment, so the server can use it as a fallback to its own VAD. At an
endpoint the stream keeps the segment's text and resets the sherpa stream
(``recognizer.reset``), so a long turn's hypothesis stays whole while sherpa's
search starts afresh. A new utterance (``reset()``, or after ``finish()``)
gets a brand-new sherpa stream, because ``recognizer.reset`` keeps the encoder
caches and unread features of the old one.

Failure modes. Several malformed inputs make sherpa-onnx's C++ call ``exit()``
(no exception): a missing tokens file, a tokens file without a blank symbol, model
metadata it does not expect. So the model's files are checked before sherpa-onnx
sees them (:mod:`models.sherpa_model_files`, which also finds them), the decoding
options here, and the server loads the model at start-up.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from models.interfaces import MODEL_SAMPLE_RATE_HZ, Transcript
from models.sherpa_catalogue import Precision
from models.sherpa_model_files import SherpaModel, SherpaModelError, check_model_files

log = logging.getLogger(__name__)

Provider = Literal["cpu", "cuda"]
DecodingMethod = Literal["greedy_search", "modified_beam_search"]

FEATURE_DIM = 80
"""All recommended models take 80-bin fbank features at 16 kHz."""
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


class SherpaSetupError(RuntimeError):
    """The installed sherpa-onnx cannot do what the configuration asks (e.g. no CUDA provider)."""


def cuda_provider_available() -> bool:
    """Whether the installed sherpa-onnx carries onnxruntime's CUDA provider.

    sherpa-onnx bundles its own libonnxruntime (``onnxruntime-gpu`` from PyPI does not
    change it) and, asked for ``cuda`` without the provider, logs a line and silently
    runs on the CPU. Its CUDA wheels (``pip install sherpa-onnx==VERSION+cuda -f
    https://k2-fsa.github.io/sherpa/onnx/cuda.html``) ship
    ``libonnxruntime_providers_cuda.so`` next to that libonnxruntime.
    """
    import sherpa_onnx

    package = Path(sherpa_onnx.__file__).parent
    return any(next(d.glob("libonnxruntime_providers_cuda*"), None) for d in (package / "lib", package) if d.is_dir())


@dataclass(frozen=True, slots=True)
class SherpaParams:
    provider: Provider = "cpu"
    num_threads: int = 2
    decoding_method: DecodingMethod = "greedy_search"
    max_active_paths: int = 4
    """Beam size of modified_beam_search (transducers only)."""
    hotwords_file: Path | None = None
    """One phrase per line; transducer models with modified_beam_search only."""
    hotwords_score: float = 1.5
    enable_endpoint_detection: bool = True
    rule1_min_trailing_silence: float = 2.4
    """Endpoint after this much silence even if nothing was recognised (sherpa-onnx's default)."""
    rule2_min_trailing_silence: float = 1.2
    """Endpoint after this much silence following recognised speech."""
    rule3_min_utterance_length: float = 20.0
    """Endpoint when a segment gets this long, whatever the silence."""
    tail_padding_secs: float = 0.6
    """Silence appended at ``finish()`` so the last words clear the model's right context."""

    def precision(self) -> Precision:
        """int8 files are a CPU speed-up; the CUDA provider lacks kernels for parts of a dynamically
        quantised graph and runs them on the CPU, so CUDA gets the fp32 files."""
        return "int8" if self.provider == "cpu" else "fp32"


def check_decoding(model: SherpaModel, params: SherpaParams) -> None:
    """Hotwords and beam search exist only for transducers in sherpa-onnx; refuse anything else clearly."""
    if params.hotwords_file is not None:
        if model.kind != "transducer":
            raise ValueError(f"hotwords work only with transducer models and modified_beam_search; "
                             f"the {model.kind} model in {model.directory} does not support them")
        if params.decoding_method != "modified_beam_search":
            raise ValueError(f"hotwords need decoding_method='modified_beam_search', not {params.decoding_method!r} "
                             f"(transducer model in {model.directory})")
        if not params.hotwords_file.is_file():
            raise SherpaModelError(f"hotwords file {params.hotwords_file} does not exist")
        if not model.modeling_unit:
            raise ValueError(f"hotwords need the model's modeling unit (cjkchar, bpe or cjkchar+bpe), which is known "
                             f"only for catalogue models; {model.directory} is not one")
        if "bpe" in model.modeling_unit:
            vocab = model.directory / (model.hotwords_bpe_vocab or "bpe.vocab")
            if not vocab.is_file():
                raise SherpaModelError(f"hotwords for this {model.modeling_unit} model need {vocab}; make it from "
                                       "bpe.model with sherpa-onnx's scripts/export_bpe_vocab.py")
    elif params.decoding_method == "modified_beam_search" and model.kind != "transducer":
        raise ValueError(f"{model.kind} models decode with greedy_search only, not modified_beam_search")


def _create_online_recognizer(model: SherpaModel, params: SherpaParams):
    import sherpa_onnx

    common = dict(
        tokens=str(model.path("tokens")), num_threads=params.num_threads, sample_rate=MODEL_SAMPLE_RATE_HZ,
        feature_dim=FEATURE_DIM, enable_endpoint_detection=params.enable_endpoint_detection,
        rule1_min_trailing_silence=params.rule1_min_trailing_silence,
        rule2_min_trailing_silence=params.rule2_min_trailing_silence,
        rule3_min_utterance_length=params.rule3_min_utterance_length,
        decoding_method=params.decoding_method, provider=params.provider,
    )
    factory = sherpa_onnx.OnlineRecognizer
    if model.kind == "transducer":
        hotwords = {}
        if params.hotwords_file is not None:
            vocab = model.directory / (model.hotwords_bpe_vocab or "bpe.vocab")
            hotwords = dict(hotwords_file=str(params.hotwords_file), hotwords_score=params.hotwords_score,
                            modeling_unit=model.modeling_unit,
                            bpe_vocab=str(vocab) if "bpe" in model.modeling_unit else "")
        return factory.from_transducer(
            encoder=str(model.path("encoder")), decoder=str(model.path("decoder")), joiner=str(model.path("joiner")),
            max_active_paths=params.max_active_paths, **hotwords, **common,
        )
    if model.kind == "paraformer":
        return factory.from_paraformer(encoder=str(model.path("encoder")), decoder=str(model.path("decoder")), **common)
    return factory.from_zipformer2_ctc(model=str(model.path("model")), **common)


class SherpaRecognizer:
    """The shared sherpa-onnx ``OnlineRecognizer``; :meth:`open_stream` gives each utterance its own state."""

    def __init__(self, model: SherpaModel, params: SherpaParams = SherpaParams()) -> None:
        check_model_files(model)
        check_decoding(model, params)
        if params.provider == "cuda" and not cuda_provider_available():
            raise SherpaSetupError(
                "models.provider = 'cuda' but the installed sherpa-onnx has no CUDA provider (it would fall back to "
                "the CPU silently); install its CUDA build: pip install 'sherpa-onnx==VERSION+cuda' "
                "-f https://k2-fsa.github.io/sherpa/onnx/cuda.html"
            )
        self.model = model
        self.params = params
        self.languages = model.languages
        self._recognizer = _create_online_recognizer(model, params)
        self._decode_lock = threading.Lock()
        log.info("sherpa-onnx %s model from %s on %s (%s)", model.kind, model.directory, params.provider,
                 ", ".join(model.files.roles().values()))

    def open_stream(self, *, language: str | None = None) -> SherpaStream:
        """A final-transcript stream: ``accept_audio`` returns the hypothesis only when it changed."""
        return SherpaStream(self, language=language, repeat_unchanged=False)

    def partials(self, language: str | None = None) -> SherpaPartials:
        """The live-preview view of this recogniser (no second model is loaded). ``language`` pins
        the language of the transcripts its streams' ``finish()`` returns (else it is guessed)."""
        return SherpaPartials(self, language or self.languages[0], pinned=language)

    # -- used by SherpaStream -------------------------------------------------------------
    def _new_stream(self):
        return self._recognizer.create_stream()

    def _decode(self, stream) -> None:
        """Decode every ready chunk, one chunk per lock hold."""
        while self._recognizer.is_ready(stream):
            with self._decode_lock:
                self._recognizer.decode_stream(stream)

    def _is_endpoint(self, stream) -> bool:
        return self._recognizer.is_endpoint(stream)

    def _reset(self, stream) -> None:
        self._recognizer.reset(stream)

    def _text(self, stream) -> str:
        return self._recognizer.get_result(stream)


@dataclass
class SherpaPartials:
    """:class:`~models.interfaces.PartialRecognizer` over a :class:`SherpaRecognizer`."""

    final_transcripts: ClassVar[bool] = True
    """Its streams' ``finish()`` is the turn's final transcript: the server does not decode the turn again."""
    recognizer: SherpaRecognizer
    language: str
    """The language the session gates previews on; a bilingual model previews both (see ``languages``)."""
    languages: tuple[str, ...] = field(init=False)
    pinned: str | None = None
    """The configured ASR language, if any: the language of ``finish()``'s transcript."""
    final_transcripts = True  # (a class attribute, not a field)
    """Its streams' ``finish(samples)`` is the turn's final transcript (models.interfaces.PartialRecognizer)."""

    def __post_init__(self) -> None:
        self.languages = self.recognizer.languages

    def open_stream(self) -> SherpaStream:
        """Cheap (no model load): a fresh sherpa stream on the shared recogniser. It previews
        (``accept_audio``), reports endpoints (``is_endpoint``) and gives the final transcript of
        the same decode (``finish``), so the turn need not be decoded a second time."""
        return SherpaStream(self.recognizer, language=self.pinned, repeat_unchanged=True)


class SherpaStream:
    """One utterance at a time on the shared recogniser; a RecognitionStream and a PartialStream.

    ``accept_audio`` returns the hypothesis of the whole utterance so far (None
    before the first word). A partial stream returns it after every call, as
    :class:`~streaming.stable_partials.StablePartials` needs; a final-transcript
    stream only when it changed.
    """

    def __init__(self, recognizer: SherpaRecognizer, *, language: str | None, repeat_unchanged: bool) -> None:
        self._recognizer = recognizer
        self._language = language
        self._repeat_unchanged = repeat_unchanged
        self._stream = recognizer._new_stream()
        self._segments: list[str] = []
        self._last: str | None = None
        self._endpoint = False
        self._closed = False

    def accept_audio(self, samples: np.ndarray) -> str | None:
        """Feed float32 16 kHz audio; decodes every complete chunk before returning."""
        stream = self._require()
        stream.accept_waveform(MODEL_SAMPLE_RATE_HZ, np.ascontiguousarray(samples, dtype=np.float32).reshape(-1))
        self._recognizer._decode(stream)
        self._endpoint = self._recognizer._is_endpoint(stream)
        if self._endpoint:
            if segment := self._recognizer._text(stream):
                self._segments.append(segment)
            self._recognizer._reset(stream)
        hypothesis = _tidy(self._joined(stream)) or None
        changed = hypothesis != self._last
        self._last = hypothesis
        return hypothesis if (changed or self._repeat_unchanged) else None

    def is_endpoint(self) -> bool:
        """Whether the last ``accept_audio`` ended a segment by sherpa-onnx's endpoint rules.

        Rule 2 (``rule2_min_trailing_silence`` of silence after words) and rule 3 (a segment
        ``rule3_min_utterance_length`` long) follow speech; rule 1 fires after
        ``rule1_min_trailing_silence`` even when nothing was recognised, so check the hypothesis
        too. The segment's words stay in the utterance; the server may treat this as the end of
        the turn when its own VAD has not decided. False again after the next ``accept_audio``
        that ends no segment, and after ``finish()`` or ``reset()``.
        """
        return self._endpoint

    def finish(self, samples: np.ndarray | None = None) -> Transcript:
        """The final transcript of everything fed since the last ``finish()``/``reset()``.

        ``samples`` (float32 16 kHz), if given, is the utterance's last audio, fed first. Only that
        and the tail padding are decoded here: the rest was decoded as it arrived, so a stream
        that made the previews gives the final text at the cost of a chunk or two. The stream
        then starts afresh for the next utterance."""
        stream = self._require()
        if samples is not None and len(samples):
            stream.accept_waveform(MODEL_SAMPLE_RATE_HZ, np.ascontiguousarray(samples, dtype=np.float32).reshape(-1))
        stream.accept_waveform(MODEL_SAMPLE_RATE_HZ,
                               np.zeros(int(self._recognizer.params.tail_padding_secs * MODEL_SAMPLE_RATE_HZ),
                                        dtype=np.float32))
        stream.input_finished()
        self._recognizer._decode(stream)
        text = _tidy(self._joined(stream), final=True)
        self.reset()
        return Transcript(text=text, language=self._language_of(text))

    def reset(self) -> None:
        """Forget the utterance: a new sherpa stream, so no features or encoder caches carry over."""
        self._require()
        self._stream = self._recognizer._new_stream()
        self._segments = []
        self._last = None
        self._endpoint = False

    def close(self) -> None:
        self._stream = None
        self._segments = []
        self._closed = True

    def _require(self):
        if self._closed or self._stream is None:
            raise RuntimeError("stream is closed")
        return self._stream

    def _joined(self, stream) -> str:
        return _join([*self._segments, self._recognizer._text(stream)])

    def _language_of(self, text: str) -> str | None:
        """The pinned language, else the model's only one, else a guess from the script (zh for Han characters)."""
        languages = self._recognizer.languages
        if self._language:
            return self._language
        if len(languages) == 1:
            return languages[0]
        if "zh" in languages and _CJK.search(text):
            return "zh"
        if "en" in languages and _LATIN.search(text):
            return "en"
        return None


def _join(parts: list[str]) -> str:
    """Concatenate segment texts: a space between Latin words, none between Han characters."""
    out = ""
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if out and not (_CJK.match(out[-1]) and _CJK.match(part[0])):
            out += " "
        out += part
    return out


def _tidy(text: str, *, final: bool = False) -> str:
    """LibriSpeech-style models answer in capitals; lower-case them (and sentence-case a final transcript)."""
    text = " ".join(text.split())
    latin = _LATIN.findall(text)
    if latin and all(c.isupper() for c in latin):
        text = text.lower()
        if final:
            text = re.sub(r"\bi\b", "I", text)
            text = re.sub(r"[a-z]", lambda m: m.group(0).upper(), text, count=1)
    return text
