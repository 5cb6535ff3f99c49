"""Cutting a recording's speech into 2-10 s clips at its pauses (streaming/voice_clips.py)."""

from __future__ import annotations

import numpy as np
import pytest

from streaming.voice_clips import ClipParams, Span, plan_clips, plan_from_probabilities, speech_runs

FRAME_S = 0.032


def probs(*pattern: tuple[float, float]) -> np.ndarray:
    """Frames from (seconds, probability) pieces."""
    return np.concatenate([np.full(round(seconds / FRAME_S), p) for seconds, p in pattern])


def test_runs_use_hysteresis_bridge_short_gaps_and_drop_blips():
    p = probs((1.0, 0.0), (1.0, 0.9), (0.5, 0.4), (0.064, 0.1), (1.0, 0.9), (1.0, 0.0), (0.032, 0.9), (1.0, 0.0))
    runs = speech_runs(p, FRAME_S)
    # 0.4 stays speech (above the release threshold); a 64 ms dip is bridged; the 32 ms blip is dropped
    assert len(runs) == 1
    assert runs[0].start_s == pytest.approx(1.0, abs=FRAME_S) and runs[0].end_s == pytest.approx(3.564, abs=FRAME_S)


def test_sentences_become_clips_with_padding_inside_the_pauses():
    runs = [Span(1.0, 4.0), Span(5.0, 8.5), Span(9.3, 12.0)]
    plan = plan_clips(runs, 13.0)
    assert [t for c in plan.clips for t in (c.start_s, c.end_s)] == pytest.approx([0.8, 4.2, 4.8, 8.7, 9.1, 12.2])
    assert not plan.dropped


def test_a_short_pause_keeps_phrases_together_and_padding_never_overlaps():
    runs = [Span(0.1, 2.0), Span(2.3, 5.0)]
    plan = plan_clips(runs, 5.1)
    assert len(plan.clips) == 1
    clip = plan.clips[0]
    assert clip.start_s == pytest.approx(0.0) and clip.end_s == pytest.approx(5.1)  # padding stops at the edges
    assert clip.speech_s == pytest.approx(4.6)


def test_a_long_sentence_is_cut_at_its_longest_pause():
    runs = [Span(0.5, 3.0), Span(3.2, 6.0), Span(6.5, 9.0), Span(9.25, 13.0)]  # pauses 0.2, 0.5, 0.25
    plan = plan_clips(runs, 14.0)
    assert len(plan.clips) == 2
    assert plan.clips[0].speech[-1].end_s == 6.0 and plan.clips[1].speech[0].start_s == 6.5
    assert all(2.0 <= c.duration_s <= 10.0 for c in plan.clips)
    assert plan.clips[0].end_s == pytest.approx(6.2) and plan.clips[1].start_s == pytest.approx(6.3)


def test_a_longest_pause_that_would_leave_a_scrap_is_passed_over():
    runs = [Span(0.5, 8.0), Span(8.3, 12.0), Span(12.6, 13.6)]  # the 0.6 s pause would leave 1.5 s
    plan = plan_clips(runs, 14.0, ClipParams(split_pause_s=1.0))
    assert all(2.0 <= c.duration_s <= 10.0 for c in plan.clips) and not plan.dropped
    assert [c.speech[-1].end_s for c in plan.clips] == [8.0, 13.6]


def test_a_breathless_run_is_cut_at_its_quietest_frame():
    p = probs((0.5, 0.0), (15.0, 0.9), (0.5, 0.0))
    levels = np.full(len(p), -20.0)
    quiet_frame = round(7.0 / FRAME_S)
    levels[quiet_frame - 1: quiet_frame + 2] = -45.0
    plan = plan_from_probabilities(p, FRAME_S, levels_db=levels)
    assert len(plan.clips) == 2 and not plan.dropped
    cut = plan.clips[0].end_s
    assert cut == pytest.approx((quiet_frame + 0.5) * FRAME_S)
    assert plan.clips[1].start_s == cut  # no padding, no gap, no overlap at a cut in speech
    assert plan.clips[0].cut_in_speech and plan.clips[1].cut_in_speech
    assert all(2.0 <= c.duration_s <= 10.0 for c in plan.clips)


def test_a_very_long_run_is_cut_as_often_as_needed():
    p = probs((0.3, 0.0), (35.0, 0.9), (0.3, 0.0))
    rng = np.random.default_rng(0)
    plan = plan_from_probabilities(p, FRAME_S, levels_db=rng.uniform(-30, -20, len(p)))
    assert len(plan.clips) >= 4 and not plan.dropped
    assert all(2.0 <= c.duration_s <= 10.0 for c in plan.clips)
    assert sum(c.duration_s for c in plan.clips) == pytest.approx(plan.clips[-1].end_s - plan.clips[0].start_s)
    assert plan.clips[-1].end_s - plan.clips[0].start_s == pytest.approx(35.0 + 0.4, abs=0.1)  # speech + padding


def test_a_short_phrase_joins_the_neighbour_across_the_shorter_pause():
    runs = [Span(1.0, 4.0), Span(4.8, 5.8), Span(6.5, 9.0)]  # "Yes." after 0.8 s, 0.7 s before the next
    plan = plan_clips(runs, 10.0)
    assert not plan.dropped and len(plan.clips) == 2
    assert [len(c.speech) for c in plan.clips] == [1, 2]
    assert plan.clips[1].speech[0].start_s == 4.8


def test_an_isolated_short_phrase_is_dropped_with_a_reason():
    runs = [Span(1.0, 4.0), Span(6.0, 7.0), Span(9.0, 12.0)]
    plan = plan_clips(runs, 13.0)
    assert len(plan.clips) == 2 and len(plan.dropped) == 1
    dropped = plan.dropped[0]
    assert (dropped.start_s, dropped.end_s) == pytest.approx((5.8, 7.2))
    assert "shorter than 2 s" in dropped.reason and "1.4 s" in dropped.reason


def test_a_short_phrase_that_would_overfill_its_neighbours_is_dropped():
    runs = [Span(0.2, 9.6), Span(10.3, 11.3), Span(12.0, 21.5)]
    plan = plan_clips(runs, 22.0)
    assert len(plan.clips) == 2 and len(plan.dropped) == 1


def test_no_speech_no_clips():
    plan = plan_from_probabilities(np.zeros(300), FRAME_S)
    assert plan.clips == [] and plan.dropped == []


def test_clips_never_overlap_and_always_fit():
    rng = np.random.default_rng(1)
    pattern = []
    for _ in range(60):
        pattern += [(float(rng.uniform(0.05, 1.5)), 0.0), (float(rng.uniform(0.2, 6.0)), 0.9)]
    plan = plan_from_probabilities(probs(*pattern), FRAME_S)
    spans = sorted([(c.start_s, c.end_s) for c in plan.clips] + [(d.start_s, d.end_s) for d in plan.dropped])
    assert all(a[1] <= b[0] + 1e-9 for a, b in zip(spans, spans[1:]))
    assert all(2.0 - 1e-9 <= c.duration_s <= 10.0 + 1e-9 for c in plan.clips)
    assert all(d.end_s - d.start_s < 2.0 for d in plan.dropped)
