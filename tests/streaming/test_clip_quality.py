"""Loudness, noise floor, SNR, clipping and the speaker-prompt score of a clip (streaming/clip_quality.py)."""

from __future__ import annotations

import numpy as np
import pytest

from streaming.clip_quality import (
    SILENCE_DBFS, ClipQuality, frame_levels_db, measure_clip, prompt_score,
)

RATE = 22_050
FRAME_S = 0.032


def tone(seconds: float, amplitude: float, hz: float = 220.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return amplitude * np.sin(2 * np.pi * hz * t)


def noise(seconds: float, rms: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, rms, round(seconds * RATE))


def clip_with_pauses(speech_amplitude: float, noise_rms: float) -> tuple[np.ndarray, np.ndarray]:
    """1 s noise, 3 s "speech" (a tone over the noise), 1 s noise; and the per-frame speech mask."""
    x = noise(5.0, noise_rms)
    x[RATE: 4 * RATE] += tone(3.0, speech_amplitude)
    frames = int(5.0 / FRAME_S)
    mask = np.zeros(frames, dtype=bool)
    mask[int(1.0 / FRAME_S) + 1: int(4.0 / FRAME_S)] = True
    return x, mask


def test_levels_of_a_sine_and_of_silence():
    levels = frame_levels_db(tone(1.0, 0.5), RATE, FRAME_S)
    assert levels == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.1)  # -9.03 dBFS
    assert frame_levels_db(np.zeros(RATE), RATE, FRAME_S) == pytest.approx(SILENCE_DBFS)


def test_frames_stay_aligned_with_a_grid_made_at_another_rate():
    """The VAD's grid (512 samples at 16 kHz) over a 22.05 kHz clip: a level step at 20.0 s stays
    on the frame that holds 20.0 s, not 0.1 s away."""
    x = np.concatenate([np.zeros(20 * RATE), np.full(2 * RATE, 0.1)])
    levels = frame_levels_db(x, RATE, FRAME_S)
    assert int(np.argmax(levels > -50)) == 625  # 20.0 / 0.032


def test_speech_noise_and_snr_with_the_vad_mask():
    x, mask = clip_with_pauses(0.2, 0.002)
    q = measure_clip(x, RATE, mask, FRAME_S)
    assert q.noise_dbfs == pytest.approx(20 * np.log10(0.002), abs=0.5)  # -54 dBFS
    assert q.speech_dbfs == pytest.approx(10 * np.log10(0.2 ** 2 / 2 + 0.002 ** 2), abs=0.3)  # -17 dBFS
    assert q.snr_db == pytest.approx(37, abs=1)
    assert q.peak_dbfs == pytest.approx(20 * np.log10(0.2), abs=0.3)
    assert q.clipped_share == 0


def test_without_a_mask_the_loud_frames_are_speech():
    x, mask = clip_with_pauses(0.2, 0.002)
    assert measure_clip(x, RATE, None, FRAME_S).snr_db == pytest.approx(measure_clip(x, RATE, mask, FRAME_S).snr_db,
                                                                       abs=1.5)


def test_a_clip_with_no_pause_takes_its_quietest_frames_as_the_noise_floor():
    x = np.concatenate([noise(0.3, 0.001), tone(3.0, 0.1), noise(0.3, 0.001)])
    mask = np.ones(int(len(x) / RATE / FRAME_S), dtype=bool)
    q = measure_clip(x, RATE, mask, FRAME_S)
    assert q.noise_dbfs < -50 and q.snr_db > 30


def test_clipping_share():
    x = np.clip(tone(2.0, 1.5), -1.0, 1.0)
    q = measure_clip(x, RATE)
    assert 0.4 < q.clipped_share < 0.7 and q.peak_dbfs == pytest.approx(0.0)


def _quality(speech=-22.0, noise=-70.0, clipped=0.0) -> ClipQuality:
    return ClipQuality(speech_dbfs=speech, peak_dbfs=speech + 15, noise_dbfs=noise, clipped_share=clipped)


def test_a_clean_clip_of_a_good_length_is_a_prompt():
    s = prompt_score(_quality(), 6.0, "A clean sentence.")
    assert s.eligible and s.score == pytest.approx(45.0)


@pytest.mark.parametrize(("quality", "seconds", "text", "problem"), [
    (_quality(), 2.5, "Short.", "outside 3-10 s"),
    (_quality(), 10.5, "Long.", "outside 3-10 s"),
    (_quality(clipped=0.001), 6.0, "Loud.", "clipped"),
    (_quality(noise=-30.0), 6.0, "Noisy.", "SNR"),
    (_quality(speech=-50.0, noise=-100.0), 6.0, "Quiet.", "dBFS is outside"),
    (_quality(speech=-8.0), 6.0, "Hot.", "dBFS is outside"),
    (_quality(), 6.0, "  ", "empty transcript"),
])
def test_what_rules_a_clip_out(quality, seconds, text, problem):
    s = prompt_score(quality, seconds, text)
    assert not s.eligible and any(problem in p for p in s.problems)


def test_the_score_prefers_quiet_backgrounds_sane_levels_mid_lengths_and_clean_ends():
    base = prompt_score(_quality(noise=-55.0), 6.0, "x").score
    assert prompt_score(_quality(noise=-45.0), 6.0, "x").score < base  # more noise
    assert prompt_score(_quality(speech=-32.0, noise=-65.0), 6.0, "x").score < base  # same SNR, too quiet
    assert prompt_score(_quality(noise=-55.0), 3.5, "x").score < base  # short
    assert prompt_score(_quality(noise=-55.0), 9.5, "x").score < base  # long
    assert prompt_score(_quality(noise=-55.0), 6.0, "x", cut_in_speech=True).score < base
