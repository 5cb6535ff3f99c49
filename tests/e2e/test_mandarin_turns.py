"""Mandarin sentences with a pause in the middle, spoken into the real server: one turn each.

The recordings are the shared Mandarin speech with a 0.6-1.0 s pause spliced in at a quiet
point mid-sentence (benchmarks/paused_corpus.py). Smart Turn takes the first half of each of
these three for a finished turn (0.96-0.99 offline); the embedded LLM's reading of the words
(models/llama_turn_judge.py) keeps the turn open. Everything is the product's: the VAD, Smart
Turn, Whisper, llama-server, over a WebSocket at a microphone's pace.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soxr

from benchmarks.paused_corpus import paused_utterances
from tests.e2e.realtime_client import silence

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
AUDIO = Path(__file__).resolve().parents[3] / "shared" / "audio"
SMART_TURN_CUTS = ("zh_aishell_BAC009S0724W0121_paused", "zh_masr_test_paused", "long_zh_1_paused")
COMMITTED = "input_audio_buffer.committed"
COMPLETED = "conversation.item.input_audio_transcription.completed"


async def test_a_pause_mid_sentence_does_not_end_a_mandarin_turn(connect):
    client = await connect()
    await client.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "semantic_vad", "create_response": False},
        "transcription": {"model": "whisper-base", "language": "zh"}}}}})
    await client.wait_for("session.updated")
    utterances = {u.name: u for u in paused_utterances(AUDIO)}
    for n, name in enumerate(SMART_TURN_CUTS, start=1):
        u = utterances[name]
        pcm = np.clip(soxr.resample(u.audio, 16_000, 24_000) * 32768, -32768, 32767).astype(np.int16)
        await client.send_audio(np.concatenate([pcm, silence(1.0)]), realtime_factor=1.0)
        completed = await client.wait_for(COMPLETED, count=n, timeout=60)
        commits = client.of_type(COMMITTED)
        print(f"{name}: {len(commits)} commits so far, heard {completed['transcript']!r}")
        assert len(commits) == n, f"{name} was cut at its pause: {[e['transcript'] for e in client.of_type(COMPLETED)]}"
        assert len(completed["transcript"]) >= 0.7 * len(u.reference), completed["transcript"]
