"""Live Mandarin previews from Whisper, by decoding the growing turn again and again.

No streaming Mandarin ASR reaches this machine through pip (the sherpa-onnx bilingual
models are the production path: :mod:`models.sherpa_asr`), but the embedded Whisper
reads a few seconds of Mandarin in a few hundred milliseconds. A preview stream
keeps the turn's audio and, once enough new audio has come, decodes all of it
(up to :data:`MAX_WINDOW_SECS` of it) with the same loaded model as the final
transcript; :class:`~streaming.stable_partials.StablePartials` keeps only the
characters that stopped changing.

The cost is bounded twice. A decode runs only after ``max(min_step, duty x the
last decode's time)`` of new audio, so one session's previews take at most about
1/``duty`` of the recogniser's time however loaded the machine is (a slow decode
pushes the next one further out); and the server's preview executor runs one
decode at a time for all sessions and gives up a turn's previews once they lag.
The model's lock is shared with final transcripts: a preview never waits for it (it
skips its turn while a transcript is being made), and a preview in flight delays a
transcript by at most one preview decode. A preview never retries on Whisper's full
30 s window, and a hallucinated text (a loop, or more characters than the audio could
hold) is dropped.
"""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from models.interfaces import MODEL_SAMPLE_RATE_HZ

MIN_STEP_SECS = 0.4
"""New audio before the next decode, at the least: a first preview ~0.5 s into the turn."""
FIRST_DECODE_SECS = 0.4
"""Audio before the first decode: less is a syllable or two, which Whisper guesses at."""
DUTY = 2.0
"""The next decode waits for this many times the last decode's duration of new audio."""
MAX_WINDOW_SECS = 12.0
"""A turn longer than this gets no more previews (each would cost more than the last); its
final transcript still comes."""


_SPACE_BY_IDEOGRAPH = re.compile(r"(?<=[\u3400-\u9fff])\s+|\s+(?=[\u3400-\u9fff])")


def _without_punctuation(text: str) -> str:
    """Whisper puts a comma in one decode and not the next ("近几年,不但" / "近几年不但"), which
    would stall the stable prefix; the preview goes without, and the final transcript has them."""
    text = "".join(ch for ch in text if ch in "'-" or not unicodedata.category(ch).startswith("P"))
    return _SPACE_BY_IDEOGRAPH.sub("", text).strip()


class _Previewer(Protocol):
    def preview(self, audio: np.ndarray, *, language: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class WindowParams:
    first_decode_secs: float = FIRST_DECODE_SECS
    min_step_secs: float = MIN_STEP_SECS
    duty: float = DUTY
    max_window_secs: float = MAX_WINDOW_SECS


class WhisperWindowPartials:
    """A :class:`~models.interfaces.PartialRecognizer` for one language over a loaded Whisper."""

    final_transcripts = False
    preview_agreement = 1
    """Each decode reads the whole turn again. Two decodes in a row agreeing (tried) were too rare
    in a loaded server: the page showed no Mandarin word while the user spoke."""
    preview_hold_back = 2
    """The newest decode's last two characters are still being heard. A character sent can never be
    taken back, so one Whisper revises further back ("近几年不当", then "不但") stalls the preview
    for the rest of the turn; the final transcript still replaces it."""
    rereads_turn = True
    """Each decode takes all the turn's audio so far: audio that piled up during a slow decode is
    not a backlog to work off, so a slow decode never gives up the turn's previews."""
    none_means_no_decode = True
    """``accept_audio`` returns None when it did not decode (most calls): no hypothesis, not an
    empty one, so it must not count against the agreement of two decodes."""

    def __init__(self, whisper: _Previewer, *, language: str = "zh", params: WindowParams = WindowParams()) -> None:
        self.whisper = whisper
        self.language = language
        self.languages = (language,)
        self.params = params

    def open_stream(self) -> WhisperWindowStream:
        return WhisperWindowStream(self)

    def hypothesis_from_transcript(self, text: str, language: str | None) -> str | None:
        """A transcript of the turn so far made by the same Whisper (a decode at a pause) is one
        more decode of the growing turn: a preview, even when the previews' own decodes were
        skipped because that transcript held the model."""
        if language != self.language:
            return None
        return _without_punctuation(text) or None


class WhisperWindowStream:
    def __init__(self, owner: WhisperWindowPartials) -> None:
        self._owner = owner
        self._chunks: list[np.ndarray] = []
        self._samples = 0
        self._next_at = int(owner.params.first_decode_secs * MODEL_SAMPLE_RATE_HZ)
        self.decodes = 0

    def accept_audio(self, samples: np.ndarray) -> str | None:
        """Blocking when it decodes (hundreds of ms): call it from a worker thread."""
        self._chunks.append(np.asarray(samples, np.float32).reshape(-1))
        self._samples += len(self._chunks[-1])
        params = self._owner.params
        if self._samples < self._next_at or self._samples > params.max_window_secs * MODEL_SAMPLE_RATE_HZ:
            return None
        audio = np.concatenate(self._chunks)
        self._chunks = [audio]
        started = time.monotonic()
        text = self._owner.whisper.preview(audio, language=self._owner.language)
        took = time.monotonic() - started
        if text is None:  # the recogniser was busy with a transcript, or heard nothing it trusts
            self._next_at = self._samples + int(params.min_step_secs * MODEL_SAMPLE_RATE_HZ)
            return None
        text = _without_punctuation(text)
        self.decodes += 1
        self._next_at = self._samples + int(max(params.min_step_secs, params.duty * took) * MODEL_SAMPLE_RATE_HZ)
        return text or None

    def reset(self) -> None:
        self._chunks, self._samples = [], 0
        self._next_at = int(self._owner.params.first_decode_secs * MODEL_SAMPLE_RATE_HZ)

    def close(self) -> None:
        self._chunks = []
