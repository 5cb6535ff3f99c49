"""What one benchmark run writes: the JSON of every measurement, a Markdown table, PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.false_interruptions import summarize_false_interruptions
from benchmarks.latency_stats import compare_summaries, summarize

CLIENT_STAGES = {
    "endpointing_ms": "end of user audio → speech_stopped",
    "transcript_ms": "→ final transcript",
    "first_text_ms": "→ first response text",
    "first_audio_ms": "→ first response audio (voice-to-voice)",
    "overhead_ms": "orchestration overhead (commit → first audio, minus engines)",
    "answer_gaps_ms": "silence inside the answer (client underruns, summed per answer)",
}
SERVER_SEGMENTS = {
    # name: (from mark, to mark), all in the server's response.done.response.latency
    "endpoint": ("speech_end", "turn_end"),
    "asr": ("turn_end", "transcript_final"),
    "llm_queue": ("transcript_final", "llm_request"),
    "llm_first_token": ("llm_request", "first_llm_token"),
    "first_clause": ("first_llm_token", "first_tts_chunk"),
    "tts_first_audio": ("first_tts_chunk", "first_tts_audio"),
    "send": ("first_tts_audio", "first_audio_sent"),
}
BARGE_IN_STAGES = {
    "speech_started_ms": "interrupting speech → speech_started",
    "cancel_ms": "interrupting speech → response cancelled",
    "last_audio_ms": "interrupting speech → last audio frame received",
    "audio_after_cancel_ms": "audio received after the cancel event",
    "client_stop_ms": "interrupting speech → client stops hearing (plays out its queue)",
    "client_flush_stop_ms": "interrupting speech → client stops hearing (flushes on speech_started)",
}
BARGE_IN_PERCENTILES = ("p50", "p90", "p95", "p99")
MISSING = "—"


def server_segments(server_ms: dict[str, float | None]) -> dict[str, float | None]:
    """Per-stage durations (the stacked bar's parts; they add up to first_audio_sent)."""
    out: dict[str, float | None] = {}
    for name, (a, b) in SERVER_SEGMENTS.items():
        va, vb = server_ms.get(a), server_ms.get(b)
        out[name] = None if va is None or vb is None else max(0.0, float(vb) - float(va))
    return out


def summarize_level(turns: list[dict[str, Any]], barge_ins: list[dict[str, Any]],
                    false_interruptions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    answered = [t for t in turns if t["status"] in ("completed", "cancelled")]
    stages = {k: summarize(t.get(k) for t in answered) for k in CLIENT_STAGES}
    segments = [server_segments(t["server_ms"]) for t in answered]
    server = {k: summarize(s[k] for s in segments) for k in SERVER_SEGMENTS}
    barge = {k: summarize(b.get(k) for b in barge_ins if b["status"] == "cancelled") for k in BARGE_IN_STAGES}
    by_language: dict[str, dict[str, Any]] = {}
    for language in sorted({t["language"] for t in turns}):
        scored = [t for t in turns if t["language"] == language and t["error_rate"] is not None]
        if scored:
            words = [t for t in scored]
            spoken = [t for t in answered if t["language"] == language]
            v2v = summarize(t.get("first_audio_ms") for t in spoken)
            live = summarize(t.get("first_partial_ms") for t in turns if t["language"] == language)
            by_language[language] = {
                "metric": "CER" if language == "zh" else "WER",
                "mean_error_rate": round(sum(t["error_rate"] for t in words) / len(words), 4),
                "turns": len(words),
                "voice_to_voice": v2v.as_dict() if v2v else None,
                "first_partial": live.as_dict() if live else None,
                "turns_with_partials": sum(1 for t in turns if t["language"] == language
                                           and t.get("first_partial_ms") is not None),
            }
    statuses: dict[str, int] = {}
    for t in turns:
        statuses[t["status"]] = statuses.get(t["status"], 0) + 1
    return {
        "turns": len(turns),
        "statuses": statuses,
        "split_turns": sum(1 for t in turns if t.get("commits", 1) > 1),
        "client": {k: v.as_dict() if v else None for k, v in stages.items()},
        "server": {k: v.as_dict() if v else None for k, v in server.items()},
        "barge_in": {k: v.as_dict() if v else None for k, v in barge.items()},
        "barge_in_outcomes": {s: sum(1 for b in barge_ins if b["status"] == s) for s in {b["status"] for b in barge_ins}},
        "transcripts": by_language,
        "false_interruptions": summarize_false_interruptions(false_interruptions or []),
    }


def robustness_rows(level: dict[str, Any]) -> dict[str, str]:
    """False interruptions and speculation waste of one level as printable cells; a level from a
    run that did not measure them (an older ``bench.json``) gives ``—``."""
    f = level.get("summary", {}).get("false_interruptions")
    spec = level.get("speculation")
    rows: dict[str, str] = {}
    if f and f.get("scheduled"):
        kinds = f["by_kind"]
        lost_kinds = f["lost_by_kind"]
        delay = f.get("extra_delay_ms") or {}
        rows["false interruptions played (noise / backchannel)"] = \
            f"{f['played']} ({kinds.get('noise', 0)} / {kinds.get('backchannel', 0)})"
        rows["backchannels longer than 0.4 s played"] = str(f["backchannels_over_0_4_s"])
        rows["answers lost (noise / backchannel)"] = \
            f"{f['lost']} ({lost_kinds.get('noise', 0)} / {lost_kinds.get('backchannel', 0)})"
        rows["answers lost to a backchannel over 0.4 s"] = str(f["lost_over_0_4_s"])
        rows["answers resumed after a pause"] = str(f["resumed"])
        rows["clips answered as a new turn after the answer"] = str(f.get("answered_clip", 0))
        rows["pause added to the answer's end, p50 / p95 (ms)"] = \
            f"{_fmt(delay.get('p50'))} / {_fmt(delay.get('p95'))}" if delay else MISSING
    else:
        for title in ("false interruptions played (noise / backchannel)", "backchannels longer than 0.4 s played",
                      "answers lost (noise / backchannel)", "answers lost to a backchannel over 0.4 s",
                      "answers resumed after a pause", "clips answered as a new turn after the answer",
                      "pause added to the answer's end, p50 / p95 (ms)"):
            rows[title] = MISSING
    if spec is None:
        over_cpu = share = MISSING
    elif not spec.get("reported"):
        over_cpu = share = "not reported"
    else:
        wasted, spent = spec["discarded_s"], spec["kept_s"] + spec["discarded_s"]
        over_cpu = _ratio_cell(spec.get("discarded_over_cpu"), f"{wasted:.1f} s of {spec.get('server_cpu_s')} CPU-s")
        share = _ratio_cell(spec.get("discarded_share"), f"{wasted:.1f} of {spent:.1f} s")
    rows["speculation discarded / server CPU"] = over_cpu
    rows["speculation discarded / (kept + discarded)"] = share
    return rows


def _ratio_cell(value: float | None, detail: str) -> str:
    return MISSING if value is None else f"{100 * value:.1f} % ({detail})"


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:,.0f}"


def _barge_in_table(summary: dict[str, Any]) -> list[str]:
    barge = summary.get("barge_in", {})
    if not any(barge.get(k) for k in BARGE_IN_STAGES):
        return []
    lines = ["| barge-in (ms from the interrupting speech) | p50 | p90 | p95 | p99 | n |",
             "|---|---:|---:|---:|---:|---:|"]
    for key, title in BARGE_IN_STAGES.items():
        if v := barge.get(key):
            cells = " | ".join(_fmt(v.get(q)) for q in BARGE_IN_PERCENTILES)
            lines.append(f"| {title} | {cells} | {v['n']} |")
    return lines + [""]


def markdown(run: dict[str, Any]) -> str:
    lines = [f"# tingshuo bench: {run['config']['label'] or run['config']['url']}", "",
             f"{run['machine']['cpu_model']}, {run['machine']['cores']} cores; server {run['config']['url']}; "
             f"{run['started_at']}", ""]
    clips = run.get("false_interruption_clips") or {}
    if clips.get("problems"):
        lines += ["False interruptions played noise only where a voice was missing: " + "; ".join(clips["problems"]), ""]
    for level in run["levels"]:
        s, c = level["summary"], level["concurrency"]
        res = level["resources"]
        lines += [f"## {c} concurrent session{'s' if c > 1 else ''}: {s['turns']} turns {s['statuses']}", ""]
        if "cpu_percent_mean" in res:
            lines += [f"Server CPU {res['cpu_percent_mean']} % mean, {res['cpu_percent_max']} % max; RSS "
                      f"{res['rss_mb_start']} → {res['rss_mb_max']} MB max ({res['source']}).", ""]
        lines += ["| stage (ms) | p50 | p90 | p99 | n |", "|---|---:|---:|---:|---:|"]
        for key, title in CLIENT_STAGES.items():
            v = s["client"].get(key)
            lines.append(f"| {title} | {_fmt(v and v['p50'])} | {_fmt(v and v['p90'])} | {_fmt(v and v['p99'])} | {v['n'] if v else 0} |")
        for key in SERVER_SEGMENTS:
            v = s["server"][key]
            lines.append(f"| server: {key} | {_fmt(v and v['p50'])} | {_fmt(v and v['p90'])} | {_fmt(v and v['p99'])} | {v['n'] if v else 0} |")
        lines.append("")
        lines += _barge_in_table(s)
        robustness = robustness_rows(level)
        lines += ["| false interruptions and speculation | |", "|---|---:|"]
        lines += [f"| {title} | {cell} |" for title, cell in robustness.items()] + [""]
        for language, t in s["transcripts"].items():
            lines.append(f"- {language}: {t['metric']} {100 * t['mean_error_rate']:.1f} % (mean over {t['turns']} turns)")
            if (v := t.get("voice_to_voice")) is not None:
                lines.append(f"  - {language} voice-to-voice p50 / p90: {_fmt(v['p50'])} / {_fmt(v['p90'])} ms "
                             f"({v['n']} answers)")
            if t.get("turns_with_partials") is not None:
                live = t.get("first_partial")
                when = f", first words p50 / p90 {_fmt(live['p50'])} / {_fmt(live['p90'])} ms after speech began" \
                    if live else ""
                lines.append(f"  - {language} live transcript: {t['turns_with_partials']} of {t['turns']} turns{when}")
        if s["barge_in_outcomes"]:
            lines.append(f"- barge-in outcomes: {s['barge_in_outcomes']}")
        if s["split_turns"]:
            lines.append(f"- {s['split_turns']} utterances were cut at a pause by the server's turn detection "
                         "(the answer to the first part was cancelled when the user went on)")
        lines.append("")
    return "\n".join(lines)


def compare_markdown(a: dict[str, Any], b: dict[str, Any]) -> str:
    """B over A, stage by stage, for every concurrency level both runs have."""
    lines = [f"# B / A: {b['config']['label'] or 'B'} over {a['config']['label'] or 'A'} (below 1: B is faster)", ""]
    levels_a = {lv["concurrency"]: lv for lv in a["levels"]}
    for level_b in b["levels"]:
        level_a = levels_a.get(level_b["concurrency"])
        if level_a is None:
            continue
        lines += [f"## {level_b['concurrency']} concurrent", "", "| stage | p50 | p90 | p99 |", "|---|---:|---:|---:|"]
        for part in ("client", "server", "barge_in"):
            ratios = compare_summaries(level_a["summary"][part], level_b["summary"][part])
            for stage, r in ratios.items():
                if any(v is not None for v in r.values()):
                    cells = " | ".join("–" if v is None else f"{v:.2f}×" for v in r.values())
                    lines.append(f"| {part}: {stage} | {cells} |")
        lines.append("")
    lines += side_by_side(a, b)
    return "\n".join(lines)


def side_by_side(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """A's and B's values next to each other for the barge-in percentiles (p95 included), the false
    interruptions and the speculation waste; ``—`` where a run did not measure a row."""
    levels_a = {lv["concurrency"]: lv for lv in a["levels"]}
    lines = []
    for level_b in b["levels"]:
        level_a = levels_a.get(level_b["concurrency"], {})
        barge_a = level_a.get("summary", {}).get("barge_in", {})
        barge_b = level_b["summary"].get("barge_in", {})
        lines += [f"## {level_b['concurrency']} concurrent: A and B side by side", "",
                  "| barge-in (ms) | A p50 | B p50 | A p95 | B p95 |", "|---|---:|---:|---:|---:|"]
        for key, title in BARGE_IN_STAGES.items():
            cells = [_cell(side.get(key), q) for q in ("p50", "p95") for side in (barge_a, barge_b)]
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        rows_a = robustness_rows(level_a) if level_a else {}
        rows_b = robustness_rows(level_b)
        lines += ["", "| false interruptions and speculation | A | B |", "|---|---:|---:|"]
        lines += [f"| {title} | {rows_a.get(title, MISSING)} | {cell} |" for title, cell in rows_b.items()] + [""]
    return lines


def _cell(summary: dict[str, float] | None, q: str) -> str:
    value = None if not summary else summary.get(q)
    return MISSING if value is None else f"{value:,.0f}"


def plot(run: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    first = run["levels"][0]
    answered = [t for t in first["turns"] if t["status"] in ("completed", "cancelled")]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key in ("endpointing_ms", "transcript_ms", "first_text_ms", "first_audio_ms"):
        values = sorted(t[key] for t in answered if t[key] is not None)
        if values:
            ax.step(values, [(i + 1) / len(values) for i in range(len(values))], where="post",
                    label=CLIENT_STAGES[key])
    ax.set(xlabel="ms from the end of the user's audio", ylabel="fraction of turns",
           title=f"Latency CDF per stage, {first['concurrency']} session(s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    paths.append(out_dir / "latency_cdf.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    labels = [str(lv["concurrency"]) for lv in run["levels"]]
    bottoms = [0.0] * len(labels)
    for key in SERVER_SEGMENTS:
        heights = [(lv["summary"]["server"][key] or {}).get("mean", 0.0) for lv in run["levels"]]
        ax.bar(labels, heights, bottom=bottoms, label=key)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set(xlabel="concurrent sessions", ylabel="ms (mean)", title="Where the time goes: server stages to first audio")
    ax.legend(fontsize=8)
    paths.append(out_dir / "stage_breakdown.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    xs = [lv["concurrency"] for lv in run["levels"]]
    for q in ("p50", "p90"):
        ys = [(lv["summary"]["client"]["first_audio_ms"] or {}).get(q) for lv in run["levels"]]
        ax.plot(xs, ys, marker="o", label=f"voice-to-voice {q}")
    ax.set(xlabel="concurrent sessions", ylabel="ms", title="Voice-to-voice latency against concurrency", xticks=xs)
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(out_dir / "latency_vs_concurrency.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def write_json(run: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(run, ensure_ascii=False, indent=1), encoding="utf-8")
