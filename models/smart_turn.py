"""Smart Turn v3.2 (Whisper-tiny encoder + classifier, ONNX): has the speaker finished their turn?

The model reads prosody as well as words, so "I'd like to order a..." followed by a
pause scores low while "What time is it?" scores high. It sees the last 8 s of
the turn, left-padded with silence, as Whisper log-mel features of a
zero-mean, unit-variance waveform; faster-whisper's numpy feature extractor
computes the same features, so neither torch nor transformers is needed.
The ONNX file ships inside the ``pipecat-ai`` wheel; we extract it, pin its
sha256, and never import pipecat.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
WHEEL_MEMBER = "pipecat/audio/turn/smart_turn/data/" + MODEL_FILE
WHEEL_ENV = "TINGSHUO_PIPECAT_WHEEL"
WINDOW_SECS = 8
SAMPLE_RATE_HZ = 16_000
_NORM_EPS = 1e-7


def extract_smart_turn(wheel: Path, dest: Path) -> Path:
    """Copy the ONNX out of the pipecat-ai wheel into ``dest`` and verify it."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / MODEL_FILE
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(WHEEL_MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise ValueError(f"{wheel}: {MODEL_FILE} sha256 {digest} does not match pinned {MODEL_SHA256}")
    tmp = target.with_suffix(".partial")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def ensure_smart_turn_model(model_dir: Path) -> Path:
    """The model in ``model_dir``, extracted from the wheel named by $TINGSHUO_PIPECAT_WHEEL on first use."""
    target = model_dir / MODEL_FILE
    if target.is_file():
        return target
    wheel = os.environ.get(WHEEL_ENV)
    candidates = [Path(wheel)] if wheel else sorted((model_dir.parent / "wheels").glob("pipecat_ai-1.14.0-*.whl"))
    if not candidates or not candidates[0].is_file():
        raise FileNotFoundError(
            f"{target} is missing; run scripts/setup.sh (it downloads the pipecat-ai 1.14.0 wheel) or set {WHEEL_ENV}"
        )
    return extract_smart_turn(candidates[0], model_dir)


class SmartTurn:
    def __init__(self, *, model_path: Path, threads: int = 1) -> None:
        import onnxruntime as ort
        from faster_whisper.feature_extractor import FeatureExtractor

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
        self._features = FeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE_HZ, chunk_length=WINDOW_SECS)

    def features(self, audio: np.ndarray) -> np.ndarray:
        window = WINDOW_SECS * SAMPLE_RATE_HZ
        x = audio[-window:].astype(np.float32)
        x = np.pad(x, (window - len(x), 0))
        x = (x - x.mean()) / np.sqrt(x.var() + _NORM_EPS)
        return self._features(x, padding=0).astype(np.float32)

    def end_of_turn_probability(self, audio: np.ndarray) -> float:
        features = self.features(audio)[np.newaxis]
        (probability,) = self._session.run(None, {"input_features": features})
        return float(np.asarray(probability).reshape(-1)[0])
