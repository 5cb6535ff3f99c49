"""Smart Turn v3.2 (Whisper-tiny encoder + classifier, ONNX): has the speaker finished their turn?

Silence alone cannot tell "I'd like to order a..." + pause from "What time is it?";
this model reads the words and the prosody of the turn's tail, so the turn policy
can end a turn after a short pause when the speaker is clearly done and wait
longer when they are not.

The model only exists as a data file inside the ``pipecat-ai`` wheel. We take the
file, not the library (pipecat's dependencies are large): ``extract_smart_turn``
copies it out of the wheel and checks a pinned sha256, so a different pipecat
release fails loudly instead of silently changing turn-taking.

Features follow pipecat 1.14.0's ``LocalSmartTurnAnalyzerV3`` exactly: the last
8 s of 16 kHz audio, zero-padded at the *start*, normalised to zero mean and unit
variance in float32, then Whisper's 80-bin log-mel (``do_normalize=True``).
faster-whisper's numpy ``FeatureExtractor`` computes the same log-mel (measured
max abs difference 1e-5 against pipecat's vendored transformers code on the
project's audio, identical probabilities to 3 decimals), so neither torch nor
transformers is needed.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from models.interfaces import MODEL_SAMPLE_RATE_HZ

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
"""sha256 of ``smart-turn-v3.2-cpu.onnx`` as shipped in pipecat-ai 1.14.0 (8,679,182 bytes)."""
PIPECAT_VERSION = "1.14.0"
WHEEL_MEMBER = "pipecat/audio/turn/smart_turn/data/" + MODEL_FILE
WHEEL_ENV = "TINGSHUO_PIPECAT_WHEEL"
"""Path of a downloaded pipecat-ai wheel to extract the model from (scripts/setup.sh sets it)."""

MAX_AUDIO_SECS = 8
"""The model's fixed window: longer turns are cut to their tail, shorter ones padded in front."""
MAX_AUDIO_SAMPLES = MAX_AUDIO_SECS * MODEL_SAMPLE_RATE_HZ
N_MELS = 80
N_FRAMES = MAX_AUDIO_SAMPLES // 160  # Whisper hop of 10 ms
_NORM_VARIANCE_EPS = 1e-7  # transformers' WhisperFeatureExtractor, as pipecat vendors it


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_smart_turn(wheel: Path, dest: Path) -> Path:
    """Copy the ONNX out of the pipecat-ai wheel into directory ``dest``, verified; returns its path."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / MODEL_FILE
    with zipfile.ZipFile(wheel) as archive:
        try:
            data = archive.read(WHEEL_MEMBER)
        except KeyError:
            raise FileNotFoundError(f"{wheel} has no {WHEEL_MEMBER} (expected pipecat-ai {PIPECAT_VERSION})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise ValueError(f"{wheel}: {MODEL_FILE} sha256 {digest} does not match pinned {MODEL_SHA256}")
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    partial.replace(target)  # atomic: a concurrent reader never sees half a model
    return target


def find_smart_turn_model(model_dir: Path) -> Path | None:
    """The already-extracted model in ``model_dir`` (the project's ``var/models``), or None."""
    target = model_dir / MODEL_FILE
    return target if target.is_file() else None


def ensure_smart_turn_model(model_dir: Path) -> Path:
    """The model in ``model_dir``, extracted on first use from $TINGSHUO_PIPECAT_WHEEL or ``model_dir/../wheels``."""
    found = find_smart_turn_model(model_dir)
    if found is not None:
        return found
    wheel = os.environ.get(WHEEL_ENV)
    candidates = (
        [Path(wheel)] if wheel
        else sorted((model_dir.parent / "wheels").glob(f"pipecat_ai-{PIPECAT_VERSION}-*.whl"))
    )
    if not candidates or not candidates[0].is_file():
        raise FileNotFoundError(
            f"{model_dir / MODEL_FILE} is missing; run scripts/setup.sh (it downloads the pipecat-ai "
            f"{PIPECAT_VERSION} wheel) or set {WHEEL_ENV} to that wheel"
        )
    return extract_smart_turn(candidates[0], model_dir)


def verify_smart_turn_model(path: Path) -> bool:
    """Whether ``path`` is the pinned model (hashing 8.7 MB takes ~0.1 s, so loads skip it)."""
    return _sha256(path) == MODEL_SHA256


class SmartTurn:
    """One shared session; ``end_of_turn_probability`` is pure, so any thread may call it."""

    def __init__(self, *, model_path: Path, threads: int = 1) -> None:
        import onnxruntime as ort
        from faster_whisper.feature_extractor import FeatureExtractor

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.model_path = model_path
        self._session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
        self._mel = FeatureExtractor(feature_size=N_MELS, sampling_rate=MODEL_SAMPLE_RATE_HZ, chunk_length=MAX_AUDIO_SECS)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """(80, 800) float32 log-mel of the turn's last 8 s, as the model was trained on."""
        if audio.ndim != 1:
            raise ValueError(f"expected 1-D 16 kHz audio, got shape {audio.shape}")
        x = audio[-MAX_AUDIO_SAMPLES:].astype(np.float32)
        x = np.pad(x, (MAX_AUDIO_SAMPLES - len(x), 0))
        x = (x - x.mean()) / np.sqrt(x.var() + _NORM_VARIANCE_EPS)
        return self._mel(x, padding=0).astype(np.float32)

    def end_of_turn_probability(self, audio: np.ndarray) -> float:
        features = self.features(audio)[np.newaxis]
        (probability,) = self._session.run(None, {"input_features": features})
        return float(np.asarray(probability).reshape(-1)[0])  # the graph ends in a sigmoid
