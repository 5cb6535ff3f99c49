"""Route each chunk of text to the voice that speaks its language.

The embedded English voice (Piper) cannot read Chinese and the embedded
Mandarin voice (Kokoro) reads English poorly, so the assistant picks the engine
per speakable chunk by script. Chinese text almost always contains ideographs,
so "any CJK ideograph means Mandarin" is cheap and reliable. A mostly English
sentence quoting one Chinese word goes to the Mandarin voice: it still sounds
out the Latin letters, while the English voice would drop the ideographs.

The engines run at different rates (Piper 22.05 kHz, Kokoro 24 kHz) and the
output path wants one, so audio is resampled here, per call with a streaming
soxr resampler so consecutive chunks join without clicks at their edges.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

import numpy as np

from models.interfaces import SpeechSynthesizer

_CJK_IDEOGRAPH = re.compile(
    "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002ebef\U00030000-\U0003134f]"
)


def detect_language(text: str) -> str:
    """``"zh"`` when the text holds any CJK ideograph, else ``"en"``."""
    return "zh" if _CJK_IDEOGRAPH.search(text) else "en"


class LanguageRoutedSynthesizer:
    """A ``SpeechSynthesizer`` that delegates by :func:`detect_language`."""

    def __init__(
        self,
        *,
        default: SpeechSynthesizer,
        by_language: Mapping[str, SpeechSynthesizer],
        output_rate: int,
    ) -> None:
        self._default = default
        self._by_language = dict(by_language)
        self.sample_rate: int = output_rate

    @property
    def first_chunk_cjk_chars(self) -> int | None:
        """The Mandarin voice's wish for a short first chunk (see ``ChunkerParams``)."""
        return getattr(self._by_language.get("zh", self._default), "first_chunk_cjk_chars", None)

    def engine_for(self, text: str) -> SpeechSynthesizer:
        return self._by_language.get(detect_language(text), self._default)

    def synthesize(self, text: str, *, voice: str | None = None, speed: float = 1.0) -> Iterator[np.ndarray]:
        engine = self.engine_for(text)
        chunks = engine.synthesize(text, voice=voice, speed=speed)
        if engine.sample_rate == self.sample_rate:
            yield from chunks
            return
        import soxr

        stream = soxr.ResampleStream(engine.sample_rate, self.sample_rate, 1, dtype="int16")
        for chunk in chunks:
            out = stream.resample_chunk(np.asarray(chunk, dtype=np.int16))
            if len(out):
                yield out
        tail = stream.resample_chunk(np.zeros(0, np.int16), last=True)
        if len(tail):
            yield tail
