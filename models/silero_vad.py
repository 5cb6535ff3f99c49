"""Silero VAD v6 on onnxruntime alone: the ONNX file already ships in the ``silero-vad`` wheel.

The package's own Python wrapper imports torch, which the product never needs, so
we install it with ``--no-deps``, locate the file without importing the package,
and drive the ONNX graph directly. Silero is recurrent: every caller (one per
session) needs its own state and 64-sample context, while the weights are
shared, so there is one ``InferenceSession`` per model (``run`` is thread-safe)
and a cheap ``SileroVADStream`` per caller. The session is pinned to one thread:
a 512-sample frame costs a fraction of a millisecond, and on a 2-core machine
serving many sessions, extra intra-op threads only add contention.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models.interfaces import MODEL_SAMPLE_RATE_HZ

if TYPE_CHECKING:
    import onnxruntime

FRAME_SAMPLES = 512
"""32 ms at 16 kHz: the only frame size silero v5/v6 accepts at this rate."""
CONTEXT_SAMPLES = 64
"""Tail of the previous frame that the graph expects in front of each new one."""
STATE_SHAPE = (2, 1, 128)
BUNDLED_MODEL_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
"""``silero_vad/data/silero_vad.onnx`` in silero-vad 6.2.3 (the version scripts/setup.sh installs)."""


def bundled_model_path() -> Path:
    """The ONNX inside the silero-vad wheel, found without importing the package (which imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("silero-vad is not installed (pip install --no-deps silero-vad==6.2.3)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed silero-vad package")
    return path


class SileroVADStream:
    """One caller's recurrent state over the shared session; not safe to share between threads."""

    frame_samples: int = FRAME_SAMPLES

    def __init__(self, *, session: onnxruntime.InferenceSession) -> None:
        self._session = session
        self._sr = np.array(MODEL_SAMPLE_RATE_HZ, dtype=np.int64)
        self._state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def reset(self) -> None:
        """Forget everything heard so far (a new, unrelated stretch of audio follows)."""
        self._state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def speech_probability(self, frame: np.ndarray) -> float:
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"silero needs 1-D frames of {FRAME_SAMPLES} samples, got shape {frame.shape}")
        x = np.concatenate([self._context, frame.astype(np.float32, copy=False)])[np.newaxis, :]
        prob, state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._state = state
        self._context = x[0, -CONTEXT_SAMPLES:].copy()
        return float(prob.reshape(-1)[0])


class SileroVAD:
    """The loaded model; ``open_stream()`` once per session."""

    frame_samples: int = FRAME_SAMPLES

    def __init__(self, *, model_path: Path | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.model_path = model_path if model_path is not None else bundled_model_path()
        self._session = ort.InferenceSession(
            str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def open_stream(self) -> SileroVADStream:
        return SileroVADStream(session=self._session)
