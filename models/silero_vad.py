"""Silero VAD v6 on onnxruntime alone (no torch): one shared session, per-caller recurrent state."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

FRAME_SAMPLES = 512
CONTEXT_SAMPLES = 64
SAMPLE_RATE_HZ = 16_000


def bundled_model_path() -> Path:
    """The ONNX inside the silero-vad wheel, found without importing the package (which imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("silero-vad is not installed (pip install --no-deps silero-vad==6.2.3)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"


class SileroVADStream:
    frame_samples = FRAME_SAMPLES

    def __init__(self, session) -> None:
        self._session = session
        self._sr = np.array(SAMPLE_RATE_HZ, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def speech_probability(self, frame: np.ndarray) -> float:
        if len(frame) != FRAME_SAMPLES:
            raise ValueError(f"silero needs frames of {FRAME_SAMPLES} samples, got {len(frame)}")
        x = np.concatenate([self._context, frame.astype(np.float32, copy=False)])[np.newaxis, :]
        prob, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = x[0, -CONTEXT_SAMPLES:]
        return float(prob[0][0])


class SileroVAD:
    frame_samples = FRAME_SAMPLES

    def __init__(self, *, model_path: Path | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Frames are tiny; more threads only add synchronisation cost on a 2-core box.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path or bundled_model_path()), sess_options=options,
                                             providers=["CPUExecutionProvider"])

    def open_stream(self) -> SileroVADStream:
        return SileroVADStream(self._session)
