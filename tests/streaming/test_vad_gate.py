"""Scripted probability timelines through the VAD gate."""

import numpy as np
import pytest

from streaming.vad_gate import (
    OnsetWithdrawn,
    SpeechOnset,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    SpeechStopped,
    VADGate,
    VADParams,
    VADState,
)

FRAME_MS = 32
FRAME = 512


def frames_for(probs):
    return [(np.full(FRAME, i, dtype=np.float32), p) for i, p in enumerate(probs)]


def run(gate, probs, *, onsets=False):
    """Events (without the onset signals unless ``onsets``) and the turn audio."""
    events, audio = [], []
    for frame, p in frames_for(probs):
        update = gate.push(frame, p)
        events.extend(e for e in update.events if onsets or not isinstance(e, (SpeechOnset, OnsetWithdrawn)))
        audio.extend(update.speech_audio)
    return events, audio


def gate(**kw):
    params = VADParams(**{"start_ms": 96, "stop_ms": 320, "prefix_padding_ms": 128, **kw})
    return VADGate(params=params, frame_ms=FRAME_MS)


def test_speech_start_and_stop_with_preroll():
    g = gate()
    probs = [0.0] * 10 + [0.9] * 20 + [0.0] * 12
    events, audio = run(g, probs)
    assert events == [SpeechStarted(audio_start_ms=(10 - 4) * FRAME_MS), SpeechStopped(audio_end_ms=30 * FRAME_MS)]
    # the pre-roll (4 frames of 128 ms) is delivered before the speech, in order
    markers = [int(a[0]) for a in audio]
    assert markers[:5] == [6, 7, 8, 9, 10]
    assert markers == sorted(markers)
    assert g.state is VADState.QUIET


def test_short_blip_starts_nothing():
    events, audio = run(gate(), [0.0] * 5 + [0.9, 0.9] + [0.0] * 20)
    assert events == []
    assert audio == []


def test_onset_comes_at_the_first_voiced_frame_and_is_withdrawn_by_a_blip():
    events, _ = run(gate(), [0.0] * 5 + [0.9, 0.9] + [0.0] * 20, onsets=True)
    assert events == [SpeechOnset(audio_ms=5 * FRAME_MS), OnsetWithdrawn(audio_ms=8 * FRAME_MS)]


def test_onset_precedes_the_confirmed_start_and_is_not_withdrawn():
    g = gate()
    g.start_ms = 400  # the barge-in guard: the onset comes 400 ms before the start
    events, _ = run(g, [0.0] * 3 + [0.9] * 20 + [0.0] * 12, onsets=True)
    assert [type(e) for e in events] == [SpeechOnset, SpeechStarted, SpeechStopped]
    assert events[0] == SpeechOnset(audio_ms=3 * FRAME_MS)


def test_a_dip_inside_speech_is_no_new_onset():
    probs = [0.9] * 10 + [0.1] * 5 + [0.9] * 10 + [0.0] * 12
    events, _ = run(gate(), probs, onsets=True)
    assert [type(e) for e in events] == [SpeechOnset, SpeechStarted, SpeechStopped]


def test_short_pause_inside_speech_does_not_stop():
    probs = [0.9] * 10 + [0.1] * 5 + [0.9] * 10 + [0.0] * 12
    events, _ = run(gate(), probs)
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped]


def test_a_pause_is_reported_before_the_stop_and_speech_after_it_as_resumed():
    g = gate(pause_ms=160)  # 5 frames; the stop takes 10
    probs = [0.9] * 10 + [0.1] * 6 + [0.9] * 10 + [0.0] * 12
    events, _ = run(g, probs)
    assert events == [SpeechStarted(audio_start_ms=0), SpeechPaused(audio_end_ms=10 * FRAME_MS),
                      SpeechResumed(audio_ms=16 * FRAME_MS), SpeechPaused(audio_end_ms=26 * FRAME_MS),
                      SpeechStopped(audio_end_ms=26 * FRAME_MS)]


def test_a_dip_shorter_than_the_pause_reports_nothing_and_no_pause_setting_never_does():
    probs = [0.9] * 10 + [0.1] * 4 + [0.9] * 10 + [0.0] * 12
    assert [type(e) for e in run(gate(pause_ms=160), probs)[0]] == [SpeechStarted, SpeechPaused, SpeechStopped]
    assert [type(e) for e in run(gate(), probs)[0]] == [SpeechStarted, SpeechStopped]
    assert [type(e) for e in run(gate(pause_ms=320), probs)[0]] == [SpeechStarted, SpeechStopped]


def test_hysteresis_keeps_speech_between_thresholds():
    probs = [0.9] * 5 + [0.4] * 20 + [0.0] * 12
    events, _ = run(gate(threshold=0.5, release_threshold=0.35), probs)
    assert events[1] == SpeechStopped(audio_end_ms=25 * FRAME_MS)


@pytest.mark.parametrize("start_ms,expect_start", [(96, True), (400, False)])
def test_raised_start_threshold_ignores_short_speech(start_ms, expect_start):
    g = gate()
    g.start_ms = start_ms
    events, _ = run(g, [0.9] * 8 + [0.0] * 12)  # 256 ms of speech
    assert (len(events) > 0) is expect_start


def test_no_audio_lost_from_start_to_stop():
    g = gate(prefix_padding_ms=0)
    probs = [0.9] * 10 + [0.0] * 10
    _, audio = run(g, probs)
    assert [int(a[0]) for a in audio] == list(range(0, 20))
