"""Distributions of the measurements: percentiles, summaries, and the ratio of two runs."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolating linearly between order statistics (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0-100, not {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float
    p90: float
    p99: float
    p95: float
    """Added after the first committed reports: older ``bench.json`` summaries lack it."""
    mean: float
    min: float
    max: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(values: Iterable[float | None]) -> Summary | None:
    """None for a stage nobody reached; missing values (None) are left out, not counted as zero."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return None
    return Summary(n=len(present), p50=percentile(present, 50), p90=percentile(present, 90),
                   p99=percentile(present, 99), p95=percentile(present, 95), mean=sum(present) / len(present),
                   min=min(present), max=max(present))


def ratio(new: float | None, old: float | None) -> float | None:
    """new / old; None when either is missing or old is zero."""
    if new is None or old is None or old == 0:
        return None
    return new / old


def compare_summaries(a: dict[str, dict[str, float] | None], b: dict[str, dict[str, float] | None],
                      keys: tuple[str, ...] = ("p50", "p90", "p99")) -> dict[str, dict[str, float | None]]:
    """Stage by stage, B's percentile over A's (below 1: B is faster)."""
    out: dict[str, dict[str, float | None]] = {}
    for stage in [s for s in a if s in b]:
        sa, sb = a[stage], b[stage]
        out[stage] = {k: ratio(sb[k] if sb else None, sa[k] if sa else None) for k in keys}
    return out
