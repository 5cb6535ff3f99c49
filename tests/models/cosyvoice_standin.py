"""A stand-in for CosyVoice2 at the model-call boundary (``ZeroShotModel``), for the adapter's tests.

Its audio encodes what it was asked: every sample of a chunk equals the speaker's number, and a
chunk is 100 samples per character of the text piece it answers, one chunk per piece as soon as
the piece arrives (as CosyVoice2 does with a text generator and ``stream=True``).
"""

from __future__ import annotations

import time

import numpy as np


class StandInCosyVoice:
    sample_rate = 24_000

    def __init__(self) -> None:
        self.speakers: dict[str, int] = {}

    def add_zero_shot_spk(self, prompt_text, prompt_speech_16k, zero_shot_spk_id):
        assert prompt_text and prompt_speech_16k.dtype == np.float32 and prompt_speech_16k.size > 16_000
        self.speakers[zero_shot_spk_id] = len(self.speakers) + 1
        return True

    def inference_zero_shot(self, tts_text, prompt_text, prompt_speech_16k, zero_shot_spk_id="", stream=False,
                            speed=1.0):
        level = self.speakers[zero_shot_spk_id] / 100
        for piece in tts_text:
            time.sleep(0.01)  # a model takes time; lets two requests interleave
            yield {"tts_speech": np.full((1, 100 * len(piece)), level, dtype=np.float32)}


def load(config) -> StandInCosyVoice:
    return StandInCosyVoice()


def load_broken(config):
    raise RuntimeError("CUDA out of memory (stand-in)")
