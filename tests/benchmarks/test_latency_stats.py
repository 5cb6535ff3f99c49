"""The harness's statistics and bookkeeping on known inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from benchmarks.bench_report import compare_markdown, server_segments, summarize_level
from benchmarks.corpus import Recording, speech_end_secs, speech_start_secs
from benchmarks.harness import build_plan
from benchmarks.latency_stats import compare_summaries, percentile, ratio, summarize
from benchmarks.probe_records import engine_ms_after_turn_end

SHARED_AUDIO = Path(__file__).resolve().parents[3] / "shared" / "audio"


@pytest.mark.parametrize("q", [0, 10, 50, 90, 99, 100])
def test_percentile_matches_numpy_linear(q):
    values = [12.0, 3.0, 7.5, 100.0, 42.0, 8.0, 8.0]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_known_values():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 99) == 5
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_summary_skips_missing_values_and_reports_none_for_an_unreached_stage():
    s = summarize([None, 10.0, 20.0, None, 30.0])
    assert (s.n, s.p50, s.mean, s.min, s.max) == (3, 20.0, 20.0, 10.0, 30.0)
    assert summarize([None, None]) is None


def test_ratios_stage_by_stage():
    a = {"asr": {"p50": 100.0, "p90": 200.0, "p99": 400.0}, "llm": None}
    b = {"asr": {"p50": 50.0, "p90": 300.0, "p99": 400.0}, "llm": {"p50": 1.0, "p90": 1.0, "p99": 1.0}}
    assert compare_summaries(a, b)["asr"] == {"p50": 0.5, "p90": 1.5, "p99": 1.0}
    assert compare_summaries(a, b)["llm"] == {"p50": None, "p90": None, "p99": None}
    assert ratio(3.0, 0.0) is None


def test_server_segments_add_up_to_first_audio():
    marks = {"speech_end": 0.0, "turn_end": 300.0, "transcript_final": 900.0, "llm_request": 901.0,
             "first_llm_token": 1200.0, "first_tts_chunk": 1500.0, "first_tts_audio": 1700.0, "first_audio_sent": 1702.0}
    parts = server_segments(marks)
    assert parts == {"endpoint": 300.0, "asr": 600.0, "llm_queue": 1.0, "llm_first_token": 299.0,
                     "first_clause": 300.0, "tts_first_audio": 200.0, "send": 2.0}
    assert sum(parts.values()) == marks["first_audio_sent"]
    # Engines after the turn end: ASR 600 + LLM 299 + first clause 300 + TTS 200 (queue and send are overhead).
    assert engine_ms_after_turn_end(marks) == 1399.0
    assert engine_ms_after_turn_end({"turn_end": 1.0}) is None
    # tingshuo's thinking stage (knowledge and memory lookups) counts as engine time, not overhead.
    assert engine_ms_after_turn_end({**marks, "prompt_ready": 950.0}) == 1449.0
    assert server_segments({"speech_end": 0.0})["asr"] is None


def test_speech_end_ignores_trailing_silence():
    rate = 16_000
    t = np.arange(int(1.23 * rate)) / rate
    speech = (np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16)
    pcm = np.concatenate([np.zeros(rate // 2, np.int16), speech, np.zeros(2 * rate, np.int16)])
    assert speech_end_secs(pcm, rate) == pytest.approx(0.5 + 1.23, abs=0.021)
    assert speech_start_secs(pcm, rate) == pytest.approx(0.5, abs=0.021)


def test_speech_start_of_the_mandarin_interruption_skips_its_leading_silence():
    # The bench's Mandarin barge-in clip: its first 0.34 s are silence, not interrupting speech.
    pcm, rate = soundfile.read(SHARED_AUDIO / "zh" / "zh_cosyvoice_prompt.wav", dtype="int16")
    assert speech_start_secs(pcm, rate) == pytest.approx(0.34, abs=0.021)
    assert speech_start_secs(np.zeros(1600, np.int16), 16_000) == 0.0


def test_plan_rotates_per_session_and_interrupts_every_nth_turn(tmp_path):
    files = []
    for name, size in (("a", 30), ("b", 10), ("c", 20)):
        path = tmp_path / f"{name}.wav"
        path.write_bytes(b"x" * size)
        files.append(Recording(path, "en", name))
    plan0 = build_plan(files, turns=4, session=0, barge_in_every=2)
    plan1 = build_plan(files, turns=4, session=1, barge_in_every=2)
    assert [r.reference for r, _ in plan0] == ["a", "b", "c", "a"]
    assert [r.reference for r, _ in plan1] == ["b", "c", "a", "b"]
    assert [b is not None for _, b in plan0] == [False, True, False, True]
    assert plan0[1][1].reference == "c"  # the shortest other recording of the same language
    assert build_plan(files, turns=0, session=0, barge_in_every=0) == [(f, None) for f in files]


def _turn(**overrides):
    base = {"status": "completed", "language": "en", "error_rate": 0.0, "endpointing_ms": 300.0,
            "transcript_ms": 1000.0, "first_text_ms": 1500.0, "first_audio_ms": 1800.0, "overhead_ms": 5.0,
            "server_ms": {"speech_end": 0.0, "turn_end": 250.0}}
    return {**base, **overrides}


def test_level_summary_counts_statuses_and_error_rates():
    turns = [_turn(), _turn(first_audio_ms=2800.0, error_rate=0.2, commits=2), _turn(status="timeout", first_audio_ms=None),
             _turn(language="zh", error_rate=0.1)]
    barge = [{"status": "cancelled", "speech_started_ms": 450.0, "cancel_ms": 460.0, "last_audio_ms": 455.0,
              "audio_after_cancel_ms": 0.0}, {"status": "answer_finished_first", "speech_started_ms": None,
                                              "cancel_ms": None, "last_audio_ms": None, "audio_after_cancel_ms": 0.0}]
    s = summarize_level(turns, barge)
    assert s["statuses"] == {"completed": 3, "timeout": 1}
    assert s["split_turns"] == 1
    assert s["client"]["first_audio_ms"]["n"] == 3 and s["client"]["first_audio_ms"]["p50"] == 1800.0
    en = s["transcripts"]["en"]
    assert {k: en[k] for k in ("metric", "mean_error_rate", "turns")} == {"metric": "WER", "mean_error_rate": 0.0667,
                                                                        "turns": 3}
    assert en["voice_to_voice"]["n"] == 2 and en["turns_with_partials"] == 0 and en["first_partial"] is None  # answered
    assert s["transcripts"]["zh"]["voice_to_voice"]["n"] == 1
    assert s["transcripts"]["zh"]["metric"] == "CER"
    assert s["server"]["endpoint"]["p50"] == 250.0 and s["server"]["asr"] is None
    assert s["barge_in"]["cancel_ms"]["n"] == 1
    assert s["barge_in_outcomes"] == {"cancelled": 1, "answer_finished_first": 1}


def test_compare_prints_ratios_for_shared_levels():
    level = {"concurrency": 1, "summary": summarize_level([_turn()], [])}
    faster = {"concurrency": 1, "summary": summarize_level([_turn(first_audio_ms=900.0)], [])}
    text = compare_markdown({"config": {"label": "A"}, "levels": [level]}, {"config": {"label": "B"}, "levels": [faster]})
    assert "| client: first_audio_ms | 0.50× | 0.50× | 0.50× |" in text
