"""Which utterance a commit belongs to: by where the server heard its speech start on the
microphone's timeline, not by the order commits arrive. A loaded server commits the rest of a
split utterance after the probe has said the next one; that rest belongs to the first."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from benchmarks.corpus import Recording
from benchmarks.false_interruptions import FalseInterruptionRecord
from benchmarks.paced_microphone import PacedMicrophone, Utterance
from benchmarks.realtime_probe import ProbeConfig, SessionProbe

pytestmark = pytest.mark.timeout(30)


def _said(mic: PacedMicrophone, owner: object, start_ms: float) -> None:
    loop = asyncio.get_running_loop()
    mic._said.append(Utterance(pcm=np.zeros(10, np.int16), started=loop.create_future(),
                               finished=loop.create_future(), owner=owner, start_ms=start_ms))


async def _send(_frame) -> None:
    return None


async def test_a_late_commit_goes_to_the_utterance_its_speech_came_from(tmp_path):
    probe = SessionProbe(ProbeConfig(url="ws://unused"), session_index=0, concurrency=1)
    mic = probe._mic = PacedMicrophone(_send, rate=24_000, frame_ms=20)
    first = probe._new_turn(0, Recording(tmp_path / "a.wav", "en", "one two"), np.zeros(10, np.int16), barge_in=False)
    second = probe._new_turn(1, Recording(tmp_path / "b.wav", "en", "three"), np.zeros(10, np.int16), barge_in=False)
    clip = FalseInterruptionRecord(concurrency=1, session=0, turn=1, recording="b.wav", kind="noise", clip="click",
                                   clip_secs=0.5, offset_ms=1000)
    _said(mic, first, 1_000)
    _said(mic, second, 9_000)
    _said(mic, clip, 14_000)
    probe._awaiting_commit.extend([first])
    probe._on_event({"type": "input_audio_buffer.speech_started", "item_id": "i1", "audio_start_ms": 900}, 1.0)
    probe._on_event({"type": "input_audio_buffer.committed", "item_id": "i1"}, 2.0)
    # The first utterance's rest (heard from 4.2 s) is committed only after the second was said.
    probe._awaiting_commit.append(second)
    probe._current = second
    probe._on_event({"type": "input_audio_buffer.speech_started", "item_id": "i2", "audio_start_ms": 4_200}, 3.0)
    probe._on_event({"type": "input_audio_buffer.speech_started", "item_id": "i3", "audio_start_ms": 8_750}, 3.1)
    probe._on_event({"type": "input_audio_buffer.committed", "item_id": "i2"}, 10.0)
    probe._on_event({"type": "input_audio_buffer.committed", "item_id": "i3"}, 11.0)
    assert probe._by_item == {"i1": first, "i2": first, "i3": second}
    assert (first.record.commits, second.record.commits) == (2, 1)
    assert first.unanswered == {"i1", "i2"} and second.unanswered == {"i3"}
    probe._on_event({"type": "conversation.item.input_audio_transcription.completed", "item_id": "i2",
                     "transcript": "two"}, 12.0)
    assert first.record.transcript == "two"
    # A noise clip's commit is the clip's, even when no clip is being judged any more.
    probe._on_event({"type": "input_audio_buffer.speech_started", "item_id": "i4", "audio_start_ms": 14_100}, 15.0)
    probe._on_event({"type": "input_audio_buffer.committed", "item_id": "i4"}, 16.0)
    assert "i4" not in probe._by_item and second.record.commits == 1
