"""A slower CosyVoice stand-in that tells how each request ended: one 100-sample chunk per character,
``CHUNK_S`` apart, and a line in ``MODEL_DIR/requests.log`` when the request's generator ends:
``finished`` after the last chunk, ``closed`` when it was closed before (what a cancelled request
must see). It runs in the worker process; the log is how the test reads what happened there."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tests.models.cosyvoice_standin import StandInCosyVoice

CHUNK_S = 0.05


class SlowStandIn(StandInCosyVoice):
    def __init__(self, log: Path) -> None:
        super().__init__()
        self.log = log

    def inference_zero_shot(self, tts_text, prompt_text, prompt_speech_16k, zero_shot_spk_id="", stream=False,
                            speed=1.0):
        level = self.speakers[zero_shot_spk_id] / 100
        text, ending = "", "closed"
        try:
            for piece in tts_text:
                text += piece
                for _ in piece:
                    time.sleep(CHUNK_S)
                    yield {"tts_speech": np.full((1, 100), level, dtype=np.float32)}
            ending = "finished"
        finally:
            with self.log.open("a", encoding="utf-8") as fh:
                fh.write(f"{ending} {text}\n")


def load(config) -> SlowStandIn:
    return SlowStandIn(Path(config.model_dir) / "requests.log")
