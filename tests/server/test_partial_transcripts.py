"""The per-session preview driver with a scripted recogniser: append-only deltas, one job in flight, bounded backlog."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from server.partial_transcripts import PartialTranscripts

BLOCK = np.zeros(1600, dtype=np.float32)  # 100 ms at 16 kHz


class ScriptedStream:
    def __init__(self, owner: "ScriptedRecognizer") -> None:
        self.owner = owner

    def accept_audio(self, samples: np.ndarray) -> str | None:
        owner = self.owner
        with owner.lock:
            owner.in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
        owner.gate.wait(5)
        owner.fed.append(len(samples))
        owner.samples += len(samples)
        with owner.lock:
            owner.in_flight -= 1
        # One more word per 100 ms of audio this utterance.
        words = owner.words[: owner.samples // 1600]
        return " ".join(words) or None

    def reset(self) -> None:
        self.owner.resets += 1
        self.owner.samples = 0

    def close(self) -> None:
        self.owner.closed += 1


class ScriptedRecognizer:
    language = "en"

    def __init__(self, words: str = "one two three four five six seven eight nine ten") -> None:
        self.words = words.split()
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self.fed: list[int] = []
        self.samples = 0
        self.opened = self.resets = self.closed = 0

    def open_stream(self) -> ScriptedStream:
        self.opened += 1
        return ScriptedStream(self)


@pytest.fixture
def executor():
    pool = ThreadPoolExecutor(1)
    yield pool
    pool.shutdown(wait=True)


def make(recognizer: ScriptedRecognizer, executor, **kwargs) -> tuple[PartialTranscripts, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    tasks: set[asyncio.Task] = set()

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    def spawn(coro, name: str) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        return task

    return PartialTranscripts(recognizer=recognizer, executor=executor, spawn=spawn, send=send, **kwargs), sent


async def settle(recognizer: ScriptedRecognizer, partials: PartialTranscripts) -> None:
    for _ in range(200):
        await asyncio.sleep(0.005)
        if partials._job is None and recognizer.in_flight == 0:
            return


async def test_stable_words_go_out_as_deltas_of_the_item(executor):
    recognizer = ScriptedRecognizer()
    partials, sent = make(recognizer, executor)
    partials.start("item_1")
    for _ in range(8):
        partials.feed(BLOCK)
        await settle(recognizer, partials)
    assert {e["type"] for e in sent} == {"conversation.item.input_audio_transcription.delta"}
    assert {e["item_id"] for e in sent} == {"item_1"}
    text = "".join(e["delta"] for e in sent)
    assert text and "one two three four five six seven eight".startswith(text)
    assert partials.finish("item_1").sent_deltas is True
    assert partials.finish("item_1").sent_deltas is False  # already finished


async def test_one_job_in_flight_and_audio_merged_while_busy(executor):
    recognizer = ScriptedRecognizer()
    recognizer.gate.clear()
    partials, _ = make(recognizer, executor)
    partials.start("item_1")
    for _ in range(10):
        partials.feed(BLOCK)
        await asyncio.sleep(0.01)
    recognizer.gate.set()
    await settle(recognizer, partials)
    assert recognizer.max_in_flight == 1
    assert recognizer.fed == [1600, 9 * 1600]  # the first block, then everything that arrived meanwhile


async def test_small_feeds_wait_for_a_full_block(executor):
    recognizer = ScriptedRecognizer()
    partials, _ = make(recognizer, executor)
    partials.start("item_1")
    partials.feed(BLOCK[:640])
    await settle(recognizer, partials)
    assert recognizer.fed == []
    partials.feed(BLOCK[:960])
    await settle(recognizer, partials)
    assert recognizer.fed == [1600]


async def test_a_decoder_too_far_behind_stops_previews_for_the_turn(executor):
    recognizer = ScriptedRecognizer()
    recognizer.gate.clear()
    partials, sent = make(recognizer, executor, max_backlog_ms=500)
    partials.start("item_1")
    partials.feed(BLOCK)
    await asyncio.sleep(0.02)  # that block is being decoded
    for _ in range(7):
        partials.feed(BLOCK)
    recognizer.gate.set()
    await settle(recognizer, partials)
    assert recognizer.fed == [1600]  # the backlog was dropped, not queued
    partials.feed(BLOCK)
    await settle(recognizer, partials)
    assert recognizer.fed == [1600]
    assert partials.finish("item_1").sent_deltas is False and sent == []
    partials.start("item_2")  # the next turn previews again, on a reset stream
    for _ in range(6):
        partials.feed(BLOCK)
        await settle(recognizer, partials)
    assert recognizer.resets == 1 and recognizer.opened == 1
    assert sent and all(e["item_id"] == "item_2" for e in sent)


async def test_a_recogniser_that_rereads_the_turn_is_never_too_far_behind(executor):
    """Whisper's window decodes all of the turn each time: audio that came during a slow decode
    goes into the next one, however much it is."""
    recognizer = ScriptedRecognizer()
    recognizer.rereads_turn = True
    recognizer.gate.clear()
    partials, _ = make(recognizer, executor, max_backlog_ms=500)
    partials.start("item_1")
    partials.feed(BLOCK)
    await asyncio.sleep(0.02)  # that block is being decoded, slowly
    for _ in range(7):
        partials.feed(BLOCK)
    recognizer.gate.set()
    await settle(recognizer, partials)
    assert recognizer.fed == [1600, 7 * 1600]  # all of it, in the next decode
    partials.feed(BLOCK)
    await settle(recognizer, partials)
    assert recognizer.fed == [1600, 7 * 1600, 1600]  # and the turn is still previewed


async def test_a_recogniser_that_rereads_the_turn_waits_through_the_users_silence(executor):
    """In a pause a re-read would decode only silence, holding the model the pause's transcript needs."""
    reread, incremental = ScriptedRecognizer(), ScriptedRecognizer()
    reread.rereads_turn = True
    for recognizer in (reread, incremental):
        partials, _ = make(recognizer, executor)
        partials.start("item_1")
        partials.feed(BLOCK)
        await settle(recognizer, partials)
        partials.hold()
        for _ in range(3):
            partials.feed(BLOCK)
            await settle(recognizer, partials)
        held = list(recognizer.fed)
        partials.release()
        await settle(recognizer, partials)
        if recognizer is reread:
            assert held == [1600] and recognizer.fed == [1600, 3 * 1600]  # nothing while silent, all of it after
        else:
            assert held == [1600] * 4  # PocketSphinx decodes as it goes: cheap, and not Whisper's lock
        partials.hold()
        partials.start("item_2")  # a new turn is never held by the last one's silence
        partials.feed(BLOCK)
        await settle(recognizer, partials)
        assert recognizer.fed[-1] == 1600 and len(recognizer.fed) == len(held) + (2 if recognizer is reread else 1)


async def test_a_result_arriving_after_the_commit_is_dropped(executor):
    recognizer = ScriptedRecognizer()
    partials, sent = make(recognizer, executor)
    partials.start("item_1")
    for _ in range(3):
        partials.feed(BLOCK)
        await settle(recognizer, partials)
    recognizer.gate.clear()
    partials.feed(BLOCK)
    await asyncio.sleep(0.02)
    for _ in range(5):
        partials.feed(BLOCK)
    before = list(sent)
    assert partials.finish("item_1").sent_deltas is True
    recognizer.gate.set()
    await settle(recognizer, partials)
    assert recognizer.fed == [1600] * 4  # the job in flight ended; the audio queued behind it was not decoded
    assert sent == before


async def test_aclose_closes_the_stream_after_the_running_job(executor):
    recognizer = ScriptedRecognizer()
    partials, _ = make(recognizer, executor)
    partials.start("item_1")
    recognizer.gate.clear()
    partials.feed(BLOCK)
    await asyncio.sleep(0.02)
    closing = asyncio.create_task(partials.aclose())
    await asyncio.sleep(0.02)
    assert recognizer.closed == 0  # still decoding
    recognizer.gate.set()
    await closing
    assert recognizer.closed == 1 and recognizer.in_flight == 0
    partials.start("item_2")
    partials.feed(BLOCK)
    await asyncio.sleep(0.02)
    assert recognizer.fed == [1600]
