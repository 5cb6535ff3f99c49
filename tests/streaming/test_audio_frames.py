import numpy as np
import pytest

from streaming.audio_frames import (FrameSplitter, PCMFormatError, StreamResampler, float_to_int16, int16_to_bytes,
                                    pcm16_bytes_to_float)


def test_pcm_roundtrip_and_odd_length():
    samples = np.array([0, 1000, -32768, 32767], dtype=np.int16)
    back = float_to_int16(pcm16_bytes_to_float(int16_to_bytes(samples)))
    assert np.array_equal(back, samples)
    with pytest.raises(PCMFormatError):
        pcm16_bytes_to_float(b"\x00\x01\x02")


def test_frame_splitter_keeps_remainder():
    splitter = FrameSplitter(frame_samples=4)
    out = splitter.push(np.arange(6, dtype=np.float32)) + splitter.push(np.arange(6, 9, dtype=np.float32))
    assert [list(f) for f in out] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [list(f) for f in splitter.flush()] == [[8]]


def test_streaming_resample_24k_to_16k_preserves_a_tone():
    rate_in, rate_out = 24_000, 16_000
    t = np.arange(rate_in) / rate_in
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    resampler = StreamResampler(in_rate=rate_in, out_rate=rate_out)
    chunks = [resampler.push(tone[i : i + 480]) for i in range(0, rate_in, 480)]
    out = np.concatenate(chunks + [resampler.push(np.zeros(0, np.float32), last=True)])
    assert abs(len(out) - rate_out) <= 2
    spectrum = np.abs(np.fft.rfft(out[2000:14000]))
    peak_hz = np.argmax(spectrum) * rate_out / 12000
    assert abs(peak_hz - 440) < 3
