"""The benchmark's transcript scoring, and the shared recordings' manifest, for the tests."""

from __future__ import annotations

from benchmarks.corpus import read_manifest
from benchmarks.transcript_scoring import edit_distance, error_rate, normalize_en, normalize_zh
from tests.e2e.realtime_client import AUDIO_DIR

__all__ = ["edit_distance", "error_rate", "manifest", "normalize_en", "normalize_zh"]


def manifest() -> list[dict[str, str]]:
    return read_manifest(AUDIO_DIR)
