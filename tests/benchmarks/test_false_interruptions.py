"""The bench's new measures on known inputs: the client's player, lost answers, speculation waste,
and a comparison against a baseline that did not measure them."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks.bench_report import compare_markdown, markdown, robustness_rows, summarize_level
from benchmarks.client_playback import PlaybackQueue, stop_ms_after
from benchmarks.corpus import Recording
from benchmarks.false_interruptions import (
    OverlayClip,
    classify_answer,
    false_interrupt_turns,
    noise_slice,
    pick_clip,
    summarize_false_interruptions,
)
from benchmarks.harness import plan_false_interruptions
from benchmarks.speculation_metrics import parse_counters, speculation_summary

pytestmark = pytest.mark.timeout(30)
BASELINE = Path(__file__).resolve().parents[2] / "docs" / "bench" / "2026-11-23-in-process" / "bench.json"


# -- the client's player ------------------------------------------------------------------
def _queue(*frames: tuple[float, float]) -> PlaybackQueue:
    q = PlaybackQueue()
    for at, ms in frames:
        q.push(at, ms)
    return q


def test_audio_sent_ahead_plays_after_the_last_frame_arrived():
    # 1 s of audio arrives in the first 0.2 s (the server sends ahead): the client hears it until 11.0.
    q = _queue(*((10.0 + 0.04 * i, 200.0) for i in range(5)))
    assert q.started_at == 10.0
    assert q.ends_at() == pytest.approx(11.0)
    assert q.stall_s(after=0.0) == 0.0


def test_an_underrun_plays_the_late_frame_from_its_arrival_and_counts_as_a_stall():
    q = _queue((0.0, 100.0), (0.5, 100.0), (0.55, 100.0))  # dry from 0.1 to 0.5
    assert q.ends_at() == pytest.approx(0.7)
    assert q.stall_s(after=0.0) == pytest.approx(0.4)
    assert q.stall_s(after=0.2) == 0.0  # the stall began before 0.2
    assert _queue((0.0, 100.0), (0.11, 100.0)).stall_s(after=0.0) == 0.0  # 10 ms of jitter is no pause


def test_a_flushing_client_stops_at_speech_started_and_ignores_later_frames():
    q = _queue((0.0, 500.0), (0.1, 500.0), (1.2, 500.0))  # queued until 1.0, then a late frame
    assert q.stop_heard() == pytest.approx(1.7)  # the conservative client plays everything
    assert q.stop_heard(flush_at=0.6) == pytest.approx(0.6)
    assert q.stop_heard(flush_at=1.1) == pytest.approx(1.0)  # ran dry before the flush; the late frame is dropped
    assert PlaybackQueue().stop_heard() is None and PlaybackQueue().stop_heard(flush_at=1.0) is None


def test_stop_time_from_the_interrupting_speech():
    assert stop_ms_after(10.0, 10.25) == pytest.approx(250.0)
    assert stop_ms_after(10.0, 9.0) == 0.0  # the client had nothing left to play
    assert stop_ms_after(10.0, None) is None


# -- lost answers ---------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "streamed", "done", "new", "expected"), [
    ("completed", "Sure, it opens at nine.", "Sure, it opens at nine.", 0, (False, "")),
    ("completed", "Sure, it opens at nine.", None, 0, (False, "")),  # a server without a transcript at done
    ("cancelled", "Sure, it opens at nine.", "Sure,", 0, (True, "cancelled")),
    ("completed", "Sure, it opens at nine.", "Sure, it", 0, (True, "truncated")),
    ("completed", "Sure, it opens at nine.", "Sure, it opens at nine.", 1, (True, "new_response")),
    ("incomplete", "Sure", "Sure", 0, (True, "status_incomplete")),
])
def test_classify_answer(status, streamed, done, new, expected):
    assert classify_answer(status=status, streamed_text=streamed, done_transcript=done, new_responses=new) == expected


def _record(**overrides):
    base = {"kind": "backchannel", "clip_secs": 0.3, "status": "played", "heard": False, "lost": False,
            "reason": "", "resumed": False, "extra_delay_ms": 0.0}
    return {**base, **overrides}


def test_false_interruption_summary_counts_kinds_losses_and_delays():
    records = [
        _record(),
        _record(clip_secs=0.65, heard=True, lost=True, reason="cancelled"),
        _record(kind="noise", clip_secs=1.2, heard=True, resumed=True, extra_delay_ms=300.0, answered_clip=True),
        _record(kind="noise", status="answer_finished_first", lost=None, resumed=None, extra_delay_ms=None),
    ]
    s = summarize_false_interruptions(records)
    assert (s["scheduled"], s["played"], s["by_kind"]) == (4, 3, {"noise": 1, "backchannel": 2})
    assert (s["lost"], s["lost_by_kind"], s["lost_reasons"]) == (1, {"noise": 0, "backchannel": 1}, {"cancelled": 1})
    assert (s["backchannels_over_0_4_s"], s["lost_over_0_4_s"], s["heard"], s["resumed"]) == (1, 1, 2, 1)
    assert s["extra_delay_ms"]["p50"] == 300.0 and s["not_played"] == {"answer_finished_first": 1}
    assert s["answered_clip"] == 1


def test_false_interruptions_alternate_with_the_barge_ins():
    assert false_interrupt_turns(12, every=4, barge_in_every=4) == [1, 5, 9]
    assert false_interrupt_turns(6, every=2, barge_in_every=4) == [0, 2, 4]
    assert false_interrupt_turns(6, every=2, barge_in_every=2) == [0, 2, 4]
    assert false_interrupt_turns(6, every=0, barge_in_every=4) == []
    assert 3 not in false_interrupt_turns(8, every=1, barge_in_every=4)


def _noise_file(tmp_path: Path) -> Path:
    path = tmp_path / "noise.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.05, 16_000 * 4).astype(np.float32), 16_000)
    return path


def test_noise_slices_last_half_a_second_to_one_and_a_half(tmp_path):
    files = [_noise_file(tmp_path)]
    for seed in range(20):
        clip = noise_slice(files, random.Random(seed))
        assert clip.kind == "noise" and 0.5 <= clip.seconds <= 1.5
        pcm = clip.pcm16(24_000)
        assert pcm.dtype == np.int16 and len(pcm) == pytest.approx(clip.seconds * 24_000, abs=30)


def test_clips_alternate_backchannel_first_in_the_turns_language(tmp_path):
    en = OverlayClip("backchannel", "yeah@1x", "en", np.zeros(8000, np.float32), 16_000)
    zh = OverlayClip("backchannel", "嗯@1x", "zh", np.zeros(8000, np.float32), 16_000)
    noise = [_noise_file(tmp_path)]
    assert pick_clip(0, language="zh", session=0, turn=1, backchannels=[en, zh], noise_files=noise) is zh
    assert pick_clip(1, language="zh", session=0, turn=5, backchannels=[en, zh], noise_files=noise).kind == "noise"
    assert pick_clip(1, language="en", session=0, turn=5, backchannels=[en], noise_files=[]) is en
    assert pick_clip(0, language="en", session=0, turn=1, backchannels=[], noise_files=[]) is None
    plan = [(Recording(Path(f"{i}.wav"), "en", "x"), None) for i in range(8)]
    overlays = plan_false_interruptions(plan, session=0, every=4, barge_in_every=4, backchannels=[en, zh],
                                        noise_files=noise)
    assert sorted(overlays) == [1, 5] and overlays[1] is en and overlays[5].kind == "noise"


# -- speculation waste ----------------------------------------------------------------------
METRICS = """# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
process_cpu_seconds_total 12.5
# TYPE tingshuo_speculative_seconds_total counter
tingshuo_speculative_seconds_total{stage="asr",outcome="kept"} 3.0
tingshuo_speculative_seconds_total{outcome="discarded",stage="asr"} 1.5
tingshuo_speculative_seconds_total{stage="llm",outcome="discarded"} 2.0
tingshuo_speculative_seconds_created{stage="llm",outcome="discarded"} 1.7e9
"""


def test_counters_are_parsed_whatever_the_label_order():
    assert parse_counters(METRICS) == {("asr", "kept"): 3.0, ("asr", "discarded"): 1.5, ("llm", "discarded"): 2.0}
    assert parse_counters("process_cpu_seconds_total 12.5\n") is None


def test_speculation_waste_is_the_level_delta_over_cpu_and_over_all_speculation():
    before = {("asr", "kept"): 1.0, ("asr", "discarded"): 0.5}
    after = parse_counters(METRICS)
    s = speculation_summary(before, after, cpu_seconds=30.0)
    assert (s["kept_s"], s["discarded_s"]) == (2.0, 3.0)
    assert s["by_stage"] == {"kept": {"asr": 2.0}, "discarded": {"asr": 1.0, "llm": 2.0}}
    assert s["discarded_over_cpu"] == 0.1 and s["discarded_share"] == 0.6
    assert speculation_summary(None, after, cpu_seconds=None)["discarded_over_cpu"] is None
    assert speculation_summary(before, None, cpu_seconds=30.0) == {"reported": False}


# -- the report and the comparison ----------------------------------------------------------
def _turn(**overrides):
    base = {"status": "completed", "language": "en", "error_rate": 0.0, "endpointing_ms": 300.0,
            "transcript_ms": 1000.0, "first_text_ms": 1500.0, "first_audio_ms": 1800.0, "overhead_ms": 5.0,
            "server_ms": {"speech_end": 0.0, "turn_end": 250.0}}
    return {**base, **overrides}


def _new_level() -> dict:
    barge = [{"status": "cancelled", "speech_started_ms": 300.0 + 10 * i, "cancel_ms": 310.0, "last_audio_ms": 305.0,
              "audio_after_cancel_ms": 0.0, "client_stop_ms": 600.0 + 10 * i, "client_flush_stop_ms": 320.0}
             for i in range(20)]
    false = [_record(kind="noise", clip_secs=1.0), _record(clip_secs=0.7, lost=True, reason="cancelled")]
    return {"concurrency": 1, "summary": summarize_level([_turn()], barge, false),
            "speculation": speculation_summary({}, parse_counters(METRICS), cpu_seconds=65.0),
            "resources": {}}


def test_report_shows_p95_for_the_client_stop_and_the_new_rows():
    level = _new_level()
    assert level["summary"]["barge_in"]["client_stop_ms"]["p95"] == pytest.approx(780.5)
    run = {"config": {"label": "new", "url": "ws://x"}, "machine": {"cpu_model": "cpu", "cores": 2},
           "started_at": "now", "levels": [level]}
    text = markdown(run)
    assert "| barge-in (ms from the interrupting speech) | p50 | p90 | p95 | p99 | n |" in text
    assert "| interrupting speech → client stops hearing (flushes on speech_started) | 320 | 320 | 320 | 320 | 20 |" in text
    assert "| answers lost (noise / backchannel) | 1 (0 / 1) |" in text
    assert "| speculation discarded / server CPU | 5.4 % (3.5 s of 65.0 CPU-s) |" in text


def test_speculation_not_reported_by_the_server():
    level = {**_new_level(), "speculation": {"reported": False}}
    assert robustness_rows(level)["speculation discarded / server CPU"] == "not reported"


def test_compare_against_the_committed_baseline_shows_dashes_for_rows_it_lacks():
    baseline = json.loads(BASELINE.read_text(encoding="utf-8"))
    new = {"config": {"label": "new"}, "levels": [_new_level()]}
    text = compare_markdown(baseline, new)
    assert "| client: first_audio_ms |" in text  # the ratios, as before
    side = text[text.index("## 1 concurrent: A and B side by side"):]
    # The baseline has p50 but no p95 for the server-side rows, and no client-side stop at all.
    assert "| interrupting speech → speech_started | 484 | 395 | — | 480 |" in side
    assert "| interrupting speech → client stops hearing (plays out its queue) | — | 695 | — | 780 |" in side
    assert "| answers lost (noise / backchannel) | — | 1 (0 / 1) |" in side
    assert "| speculation discarded / (kept + discarded) | — | 53.8 % (3.5 of 6.5 s) |" in side
    # The baseline compared with itself still prints (old JSON stays readable).
    assert "| answers resumed after a pause | — | — |" in compare_markdown(baseline, baseline)
