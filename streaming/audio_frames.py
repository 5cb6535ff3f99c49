"""PCM16 conversion, streaming resampling and fixed-size framing.

Clients send PCM16 at 24 kHz (the Realtime default) or 16 kHz (kiosks); every
input model wants float32 at 16 kHz in fixed frames. Resampling is stateful so
that chunk boundaries leave no clicks, and framing keeps the remainder of a
partial frame for the next append.
"""

from __future__ import annotations

import numpy as np
import soxr

PCM16_BYTES_PER_SAMPLE = 2
INT16_SCALE = 32768.0


class PCMFormatError(ValueError):
    """Raised for audio bytes that are not whole little-endian PCM16 samples."""


def pcm16_bytes_to_float(data: bytes) -> np.ndarray:
    if len(data) % PCM16_BYTES_PER_SAMPLE:
        raise PCMFormatError(f"PCM16 audio must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / INT16_SCALE


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples * INT16_SCALE), -32768, 32767).astype(np.int16)


def int16_to_bytes(samples: np.ndarray) -> bytes:
    return samples.astype("<i2", copy=False).tobytes()


def samples_to_ms(samples: int, sample_rate: int) -> int:
    return samples * 1000 // sample_rate


class StreamResampler:
    """Streaming float32 resampler; a pass-through when the rates match."""

    def __init__(self, *, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
        )

    def push(self, samples: np.ndarray, *, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return samples.astype(np.float32, copy=False)
        return self._stream.resample_chunk(samples.astype(np.float32, copy=False), last=last)


def resample_once(samples: np.ndarray, *, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a complete buffer (a whole TTS chunk) in one call."""
    if in_rate == out_rate:
        return samples
    if samples.dtype == np.int16:
        return soxr.resample(samples, in_rate, out_rate, quality="HQ")
    return soxr.resample(samples.astype(np.float32, copy=False), in_rate, out_rate, quality="HQ")


class FrameSplitter:
    """Cuts a stream of samples into frames of exactly ``frame_samples``, keeping the remainder."""

    def __init__(self, *, frame_samples: int, dtype: type = np.float32) -> None:
        self.frame_samples = frame_samples
        self._dtype = dtype
        self._pending = np.zeros(0, dtype=dtype)

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        whole = len(buf) // self.frame_samples * self.frame_samples
        self._pending = buf[whole:].copy()
        return [buf[i : i + self.frame_samples] for i in range(0, whole, self.frame_samples)]

    def flush(self) -> list[np.ndarray]:
        """The last, shorter frame (end of a TTS stream)."""
        rest, self._pending = self._pending, np.zeros(0, dtype=self._dtype)
        return [rest] if rest.size else []

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=self._dtype)
