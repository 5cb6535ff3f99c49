"""Piper (VITS on onnxruntime, espeak-ng phonemes) as the embedded English voice.

Piper synthesises a whole sentence per inference; the sentence chunker upstream
keeps sentences short, and we hand the audio on in slices so the pacer can
start sending before a long chunk is done being converted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

SLICE_SECS = 0.5


class PiperSynthesizer:
    def __init__(self, *, model_path: Path) -> None:
        from piper import PiperVoice

        self._voice = PiperVoice.load(model_path)
        self.sample_rate: int = self._voice.config.sample_rate

    def synthesize(self, text: str, *, voice: str | None = None, speed: float = 1.0) -> Iterator[np.ndarray]:
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=1.0 / max(0.25, min(speed, 4.0)))
        slice_samples = int(self.sample_rate * SLICE_SECS)
        for chunk in self._voice.synthesize(text, syn_config=config):
            audio = chunk.audio_int16_array
            for start in range(0, len(audio), slice_samples):
                yield audio[start : start + slice_samples]
