"""A backchannel said over an answer, end to end: the real server, VAD, Whisper, LLM and voice.

The backchannels are the bench's (``benchmarks/false_interruptions.py``): synthesized with the
embedded voices and slowed to 0.6x, so that each lasts longer than the 0.4 s that used to cut an
answer off. The answer must pause, resume and complete whole; the client never hears of the turn.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from benchmarks.false_interruptions import backchannel_clips
from tests.e2e.realtime_client import silence

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    found, problems = backchannel_clips(tmp_path_factory.mktemp("backchannels"), languages=("en", "zh"))
    assert not problems, problems
    return {clip.name: clip for clip in found}


@pytest.mark.parametrize("name", ["uh-huh@0.6x", "嗯@0.6x"])
async def test_a_backchannel_over_an_answer_loses_nothing(connect, clips, name):
    clip = clips[name]
    assert clip.seconds > 0.4
    client = await connect()
    await client.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "Tell me a story about a dragon who learns to bake bread, "
                                                   "in five sentences."}]}})
    await client.send({"type": "response.create", "response": {"max_output_tokens": 160}})
    created = await client.wait_for("response.created")
    first = created["response"]["id"]
    await client.wait_for("response.output_audio.delta", timeout=120)  # a cold model on a busy CPU
    await asyncio.sleep(1.0)
    # Said at microphone pace while the answer plays.
    await client.send_audio(np.concatenate([clip.pcm16(24_000), silence(2.0)]), realtime_factor=1.0)
    done = await client.wait_for("response.done", where=lambda e: e["response"]["id"] == first, timeout=180)
    assert done["response"]["status"] == "completed", f"{name} cut the answer off"
    streamed = "".join(e["delta"] for e in client.of_type("response.output_audio_transcript.delta")
                       if e["response_id"] == first)
    assert done["response"]["output"][0]["content"][0]["transcript"].strip() == streamed.strip()
    assert client.of_type("input_audio_buffer.speech_started") == []
    assert client.of_type("input_audio_buffer.committed") == []
    assert client.of_type("conversation.item.truncated") == []
    assert len(client.of_type("response.created")) == 1
