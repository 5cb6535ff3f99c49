"""Whisper (faster-whisper / CTranslate2) as the embedded recogniser.

Whisper is not a streaming model: the stream buffers the utterance and decodes
once at the end, so it yields no partials. Greedy decoding without timestamps
and without conditioning on previous text is the fastest setting and, on short
voice-assistant turns, as accurate as beam search.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.interfaces import RecognitionStream, Transcript

log = logging.getLogger(__name__)

MIN_AUDIO_SECS = 0.2
_SAMPLE_RATE_HZ = 16_000


@dataclass(frozen=True, slots=True)
class WhisperParams:
    beam_size: int = 1
    cpu_threads: int = 2
    compute_type: str = "int8"
    initial_prompt: str | None = None


class WhisperRecognizer:
    def __init__(self, *, model_dir: Path, params: WhisperParams = WhisperParams()) -> None:
        from faster_whisper import WhisperModel

        self.params = params
        self._model = WhisperModel(
            str(model_dir), device="cpu", compute_type=params.compute_type, cpu_threads=params.cpu_threads
        )
        # CTranslate2 models are safe to share, but two concurrent decodes on two
        # cores only slow each other down; serialise them.
        self._lock = threading.Lock()

    def open_stream(self, *, language: str | None = None) -> RecognitionStream:
        return _WhisperStream(self, language)

    def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> Transcript:
        if len(audio) < MIN_AUDIO_SECS * _SAMPLE_RATE_HZ:
            return Transcript(text="", language=language)
        with self._lock:
            segments, info = self._model.transcribe(
                audio.astype(np.float32, copy=False),
                language=language,
                beam_size=self.params.beam_size,
                without_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,
                initial_prompt=self.params.initial_prompt,
            )
            text = "".join(segment.text for segment in segments).strip()
        if info.language == "zh":
            text = _to_simplified(text)
        return Transcript(text=text, language=info.language)


@functools.cache
def _simplifier():
    from opencc import OpenCC

    return OpenCC("t2s")


def _to_simplified(text: str) -> str:
    """Whisper often writes Mandarin in traditional characters; our users read simplified."""
    return _simplifier().convert(text)


class _WhisperStream:
    def __init__(self, recognizer: WhisperRecognizer, language: str | None) -> None:
        self._recognizer = recognizer
        self._language = language
        self._chunks: list[np.ndarray] = []

    def accept_audio(self, samples: np.ndarray) -> str | None:
        self._chunks.append(samples)
        return None

    def finish(self) -> Transcript:
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.float32)
        self._chunks = []
        return self._recognizer.transcribe(audio, language=self._language)
