"""The recorder's own guarantees, at their worst moments: a full queue never blocks the offer, a
store that fails every write never raises, retention deletes old conversations, and an erase
takes the turns still queued before it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter

from server.turn_capture import heard_prefix
from server.turn_recorder import TurnRecorder, TurnToKeep
from thinking.training_data.data_store import TrainingDataStore
from thinking.training_data.dataset_records import RecordedTurn, StoredConversation

pytestmark = pytest.mark.timeout(30)


def _turn(conversation: str = "sess_1", item: str = "item_1", *, user: str = "", started_at: float = 0.0,
          **audio) -> TurnToKeep:
    return TurnToKeep(conversation=StoredConversation(id=conversation, source="recorded", user_id=user,
                                                      started_at=started_at),
                      turn=RecordedTurn(item_id=item, user_text="hello", answer_generated="Hi there.",
                                        answer_heard="Hi there.", language="en"), **audio)


def _counter() -> Counter:
    return Counter("recorded", "test", ["outcome"], registry=CollectorRegistry())


class BlockedStore(TrainingDataStore):
    """A real store whose writes wait until the test lets them go: the writer stuck on a slow disk."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.entered = threading.Event()
        self.release = threading.Event()

    def record_turn(self, conversation, turn) -> None:
        self.entered.set()
        assert self.release.wait(20)
        super().record_turn(conversation, turn)


def test_a_full_queue_drops_the_turn_at_once_and_counts_it(tmp_path):
    store = BlockedStore(tmp_path / "data")
    counter = _counter()
    recorder = TurnRecorder(tmp_path / "data", capacity=2, counter=counter, store=store)
    recorder.start()
    try:
        assert recorder.offer(_turn(item="item_0"))
        assert store.entered.wait(5)  # the writer holds the first turn, blocked in its write
        assert recorder.offer(_turn(item="item_1")) and recorder.offer(_turn(item="item_2"))  # the queue is full now
        took = []
        for n in range(3, 103):
            started = time.perf_counter()
            assert not recorder.offer(_turn(item=f"item_{n}"))
            took.append(time.perf_counter() - started)
        assert max(took) < 0.05, max(took)  # never waits for the writer
        assert recorder.outcomes["dropped"] == 100
        assert counter.labels(outcome="dropped")._value.get() == 100
    finally:
        store.release.set()
        assert recorder.close(timeout_s=10)
    assert recorder.outcomes["written"] == 3
    with TrainingDataStore(tmp_path / "data") as check:
        assert [t.item_id for t in check.conversations()[0].turns] == ["item_0", "item_1", "item_2"]


def test_a_store_that_cannot_be_written_costs_a_count_and_a_log_line_never_an_exception(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    recorder = TurnRecorder(blocker / "data", counter=_counter())
    recorder.start()
    for n in range(3):
        assert recorder.offer(_turn(item=f"item_{n}", user_audio=np.zeros(16_000, np.float32)))
    assert recorder.close(timeout_s=10)
    assert recorder.outcomes == {"written": 0, "dropped": 0, "failed": 3}
    assert "was not kept" in caplog.text
    assert blocker.read_text() == "not a directory"


def test_audio_is_converted_and_written_on_the_writer_thread(tmp_path):
    recorder = TurnRecorder(tmp_path / "data")
    recorder.start()
    frames = [np.full(960, 1000, np.int16), np.full(480, -1000, np.int16)]
    recorder.offer(_turn(user_audio=np.full(8_000, 0.5, np.float32), assistant_audio=frames, assistant_rate_hz=24_000))
    assert recorder.close(timeout_s=10)
    import soundfile as sf

    with TrainingDataStore(tmp_path / "data") as store:
        (turn,) = store.conversations()[0].turns
    user, user_rate = sf.read(tmp_path / "data" / turn.user_audio, dtype="int16")
    answer, answer_rate = sf.read(tmp_path / "data" / turn.assistant_audio, dtype="int16")
    assert user_rate == 16_000 and len(user) == 8_000 and user[0] == 16384
    assert answer_rate == 24_000 and list(answer) == [1000] * 960 + [-1000] * 480


def test_retention_purges_old_conversations_when_the_writer_starts(tmp_path):
    with TrainingDataStore(tmp_path / "data") as store:
        for conversation, age_days in (("sess_old", 40), ("sess_new", 1)):
            old = _turn(conversation, started_at=time.time() - age_days * 86400)
            store.record_turn(old.conversation, old.turn)
    recorder = TurnRecorder(tmp_path / "data", retention_days=30)
    recorder.start()
    assert recorder.close(timeout_s=10)
    with TrainingDataStore(tmp_path / "data") as store:
        assert [c.id for c in store.conversations()] == ["sess_new"]


def test_nothing_is_created_on_disk_when_nothing_is_recorded(tmp_path):
    recorder = TurnRecorder(tmp_path / "data", retention_days=30)
    recorder.start()
    assert recorder.correct("item_1", "hello").result(5) is False
    assert recorder.erase_user("visitor-1").result(5).conversations == 0
    assert recorder.close(timeout_s=10)
    assert not (tmp_path / "data").exists()


def test_an_erase_takes_the_turns_queued_before_it_and_a_correction_replaces_the_transcript(tmp_path):
    store = BlockedStore(tmp_path / "data")
    recorder = TurnRecorder(tmp_path / "data", store=store)
    recorder.start()
    recorder.offer(_turn("sess_a", "item_a", user="visitor-1"))
    recorder.offer(_turn("sess_b", "item_b", user="visitor-2"))
    erased = recorder.erase_user("visitor-1")
    corrected = recorder.correct("item_b", "  hello there ")
    store.release.set()
    assert erased.result(10).conversations == 1
    assert corrected.result(10) is True
    assert recorder.correct("item_nope", "x").result(10) is False
    assert recorder.close(timeout_s=10)
    with TrainingDataStore(tmp_path / "data") as check:
        (left,) = check.conversations()
    assert left.id == "sess_b" and left.turns[0].user_words == "hello there"


@pytest.mark.parametrize("generated, heard, expected", [
    ("Once upon a time,\nthere was a dragon.", "Once upon a time, there was", "Once upon a time,\nthere was"),
    ("Hello there.", "Hello there.", "Hello there."),
    ("Hello there.", "", ""),
    ("你好。我是小听。", "你好。 我是", "你好。我是"),
    ("The answer.", "One moment, let me check. The answer.", "One moment, let me check. The answer."),
])
def test_what_was_heard_is_kept_as_a_prefix_of_what_was_generated(generated, heard, expected):
    assert heard_prefix(generated, heard) == expected
