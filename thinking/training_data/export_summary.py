"""What an export wrote and what it left out, printed by ``tingshuo data export`` and kept beside
the files (``summary.json``, and the length histogram as a PNG) so a training run can be traced
back to what went into it."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUMMARY_FILE = "summary.json"


@dataclass
class ExportSummary:
    fmt: str
    out_dir: Path
    length_unit: str = "tokens"
    """What ``lengths`` measure: "tokens" (chat formats, the target model's) or "seconds" (ASR)."""
    cutoff_len: int | None = None
    conversations: int = 0
    """Conversations read."""
    conversations_exported: int = 0
    eval_conversations: int = 0
    examples: int = 0
    """Records written, train and eval together (utterances for ASR)."""
    eval_examples: int = 0
    turns: int = 0
    """Distinct user turns in the examples (a turn repeated as a window's history counts once)."""
    windowed: int = 0
    """Examples longer than ``cutoff_len`` that were split into windows."""
    windows: int = 0
    """The examples those became."""
    cuts: int = 0
    """Conversations cut in two at a left-out pair (each cut makes one more example)."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Pairs (ASR: utterances) left out, by reason."""
    lengths: list[float] = field(default_factory=list)
    """One per example written."""
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    histogram: Path | None = None

    def length_stats(self) -> dict[str, float]:
        """p50, p95 (nearest rank) and max of ``lengths``; empty when nothing was written."""
        if not self.lengths:
            return {}
        ordered = sorted(self.lengths)
        return {"p50": _nearest_rank(ordered, 0.50), "p95": _nearest_rank(ordered, 0.95), "max": ordered[-1]}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.fmt, "out_dir": str(self.out_dir), "length_unit": self.length_unit,
            "cutoff_len": self.cutoff_len, "conversations": self.conversations,
            "conversations_exported": self.conversations_exported, "eval_conversations": self.eval_conversations,
            "examples": self.examples, "eval_examples": self.eval_examples, "turns": self.turns,
            "windowed": self.windowed, "windows": self.windows, "cuts_at_left_out_pairs": self.cuts,
            "dropped": dict(sorted(self.dropped.items())), "length_stats": self.length_stats(),
            "lengths": self.lengths, "notes": self.notes, "files": [str(p) for p in self.files],
            "histogram": str(self.histogram) if self.histogram else None,
        }

    def write(self) -> None:
        """``summary.json`` and the histogram PNG into ``out_dir``."""
        if self.lengths:
            try:
                self.histogram = write_histogram(self.lengths, self.out_dir / f"{self.length_unit}_histogram.png",
                                                 unit=self.length_unit, cutoff=self.cutoff_len)
            except ImportError:
                self.notes.append("no histogram: matplotlib is not installed (pip install 'tingshuo[bench]')")
        path = self.out_dir / SUMMARY_FILE
        self.files.append(path)
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    def text(self) -> str:
        unit = "utterances" if self.fmt == "asr" else "examples"
        lines = [f"{self.fmt} export in {self.out_dir}",
                 f"  conversations: {self.conversations} read, {self.conversations_exported} exported"
                 + (f" ({self.eval_conversations} held out for eval)" if self.eval_conversations else ""),
                 f"  {unit}: {self.examples}" + (f" ({self.eval_examples} eval)" if self.eval_examples else "")
                 + (f", turns: {self.turns}" if self.fmt != "asr" else "")]
        if self.windowed:
            lines.append(f"  longer than {self.cutoff_len} tokens: {self.windowed}, split into {self.windows} "
                         "overlapping windows")
        if self.dropped:
            what = "utterance(s)" if self.fmt == "asr" else "pair(s)"
            lines.append(f"  left out: {sum(self.dropped.values())} {what}")
            lines += [f"    {reason}: {n}" for reason, n in sorted(self.dropped.items())]
        if self.cuts:
            lines.append(f"  conversations cut at a left-out pair: {self.cuts} times (no history across a cut)")
        if stats := self.length_stats():
            unit_text = "tokens" if self.length_unit == "tokens" else "s"
            limit = f" (cutoff {self.cutoff_len})" if self.cutoff_len else ""
            lines.append(f"  {self.length_unit} per {unit[:-1]}: p50 {_fmt(stats['p50'])}, p95 {_fmt(stats['p95'])}, "
                         f"max {_fmt(stats['max'])} {unit_text}{limit}"
                         + (f", total {_total_duration(sum(self.lengths))}" if self.length_unit == "seconds" else ""))
        if self.histogram:
            lines.append(f"  histogram: {self.histogram}")
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  wrote {path}" for path in self.files]
        return "\n".join(lines)


def write_histogram(lengths: list[float], path: Path, *, unit: str, cutoff: int | None = None) -> Path:
    """A PNG of the length distribution: matplotlib's Agg canvas, no display, and no pyplot, so the
    process-wide backend is left as it was."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.hist(lengths, bins=min(50, max(5, int(math.sqrt(len(lengths))) * 2)), color="#4878a8")
    if cutoff and unit == "tokens":
        axes.axvline(cutoff, color="#c03030", linestyle="--", label=f"cutoff_len {cutoff}")
        axes.legend()
    axes.set_xlabel(unit)
    axes.set_ylabel("examples" if unit == "tokens" else "utterances")
    axes.set_title(f"{len(lengths)} {'examples' if unit == 'tokens' else 'utterances'}: length in {unit}")
    figure.tight_layout()
    figure.savefig(path)
    return path


def _nearest_rank(ordered: list[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _total_duration(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
