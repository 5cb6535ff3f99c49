"""A short ``tingshuo soak`` against the real server: sessions come and go, every turn is
answered, no error event, and the report holds the series it promises."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.conftest import API_KEY, REPO
from tests.e2e.realtime_client import AUDIO_DIR

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(900)  # the soak itself may take its 600 s subprocess limit, plus the server's start
def test_short_soak_answers_every_turn_and_reports_memory_and_latency_over_time(server_url, tmp_path):
    out = tmp_path / "soak"
    result = subprocess.run(
        [sys.executable, "-m", "tingshuo", "soak", "--url", server_url.replace("http", "ws") + "/v1/realtime",
         "--api-key", API_KEY, "--audio", str(AUDIO_DIR), "--languages", "en", "--include", "harvard",
         "--sessions", "1", "--minutes", "0.3", "--turns-per-session", "2", "--windows", "2", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    run = json.loads((out / "soak.json").read_text())
    s = run["summary"]
    assert s["error_events"] == 0 and s["session_failures"] == 0
    assert s["sessions_opened"] >= 1 and s["turns"] >= 2
    assert s["turns_completed"] == s["turns"], s["turn_statuses"]
    assert 0 < s["v2v_p50_ms"] <= s["v2v_p95_ms"] < 30_000
    assert len(s["windows"]) == 2 and sum(w["turns"] for w in s["windows"]) == s["turns"]
    assert len(run["samples"]) >= 2 and all(x["rss_mb"] > 100 for x in run["samples"])
    assert run["samples"][-1]["sessions"] == 0  # sampled once every session had closed
    assert "| window (s) |" in (out / "soak.md").read_text()
