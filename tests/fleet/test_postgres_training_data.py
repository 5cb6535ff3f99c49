"""The data stage's store in a real PostgreSQL (Debian's, started here): the same conversations as
the SQLite store, shared by two workers, audio that round-trips to files for an ASR export, the
purges, and a server that stops mid-way costing a recorded turn, never the recorder."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter

from server.config import Config, DataSection, StateSection
from server.shared_state.postgres_training_data import PostgresTrainingDataStore
from server.training_store import open_training_store
from server.turn_recorder import TurnRecorder, TurnToKeep
from tests.fleet.services import REPO, PostgresServer
from thinking.training_data.data_store import DataStoreError, TrainingDataStore
from thinking.training_data.dataset_records import RecordedTurn, StoredConversation, ToolCallRecord

pytestmark = pytest.mark.timeout(120)
REDACTED = r"PostgreSQL at postgresql://tingshuo:\*\*\*@127\.0\.0\.1"


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg(postgres, tmp_path):
    """A worker's store on an empty data stage (the module shares one server)."""
    if not postgres.running:
        postgres.start()
    store = PostgresTrainingDataStore(url=postgres.url, root=tmp_path / "worker-1", call_timeout_s=5.0)
    store.open()
    store.purge(everything=True)
    yield store
    store.close()


def _conversation(cid: str, *, user: str = "", started_at: float = 1_700_000_000.0,
                  source: str = "recorded") -> StoredConversation:
    return StoredConversation(id=cid, source=source, started_at=started_at, user_id=user, persona_id="guide",
                              persona_version="v3", instructions="你是博物馆的导览员。", adapter="guide-lora",
                              tools=[{"type": "function", "function": {"name": "clock", "parameters": {}}}],
                              title="museum")


def _turn(item: str, text: str = "When does the museum open?", **kw) -> RecordedTurn:
    return RecordedTurn(item_id=item, user_text=text, answer_generated="At nine. 九点开门。",
                        answer_heard="At nine.", language="en", started_at=1_700_000_001.25, interrupted=True,
                        tool_calls=[ToolCallRecord(name="clock", arguments='{"tz": "Asia/Shanghai"}',
                                                   result="09:00", call_id="call_1")],
                        latency_ms={"asr": 120.5, "llm_first_token": 340.0}, **kw)


def _pcm(seconds: float, rate: int, value: int = 1200) -> bytes:
    return np.full(int(seconds * rate), value, np.int16).tobytes()


def _record_the_same(store, *, audio: bool = True) -> None:
    imported = _conversation("chatgpt:museum", source="chatgpt", started_at=1_600_000_000.0)
    imported.turns = [_turn("imp_0"), _turn("imp_1", "And on Monday?", corrected_text="And on Mondays?")]
    store.add_conversation(imported)
    for n, cid in enumerate(("sess_b", "sess_a")):  # same start: ordered by id
        for item in (f"{cid}_item_0", f"{cid}_item_1"):
            turn = _turn(item)
            if audio:
                turn.user_audio = store.write_wav(cid, item, "user", _pcm(0.5, 16_000), 16_000)
                turn.assistant_audio = store.write_wav(cid, item, "assistant", _pcm(0.25, 24_000, -700), 24_000)
            store.record_turn(_conversation(cid, user=f"visitor-{n}"), turn)


def test_the_same_conversations_come_back_equal_from_sqlite_and_postgres(pg, tmp_path):
    with TrainingDataStore(tmp_path / "sqlite") as local:
        _record_the_same(local)
        _record_the_same(pg)
        expected = local.conversations()
        assert [c.id for c in expected] == ["chatgpt:museum", "sess_a", "sess_b"]
        assert pg.conversations() == expected
        assert pg.conversations(sources=("recorded",)) == local.conversations(sources=("recorded",))
        assert pg.conversations(sources=("jsonl",)) == []
        assert pg.turn_count() == local.turn_count() == 6
        _record_the_same(pg, audio=False)  # the import replaced, the live conversations appended to
        _record_the_same(local, audio=False)
        assert pg.conversations() == local.conversations()
        assert [t.item_id for t in pg.conversations()[1].turns] == ["sess_a_item_0", "sess_a_item_1"] * 2


def test_two_workers_see_each_others_turns_and_corrections(pg, postgres, tmp_path):
    other = PostgresTrainingDataStore(url=postgres.url, root=tmp_path / "worker-2")
    try:
        assert other.open() == [], "the first worker applied the migrations"
        conversation = _conversation("sess_shared", user="anna")
        pg.record_turn(conversation, _turn("item_0"))
        other.record_turn(conversation, _turn("item_1"))
        pg.record_turn(conversation, _turn("item_2"))
        for store in (pg, other):
            (seen,) = store.conversations()
            assert [t.item_id for t in seen.turns] == ["item_0", "item_1", "item_2"]
        assert other.correct("item_0", "  When do you open?  ") is True
        assert pg.conversations()[0].turns[0].user_words == "When do you open?"
        assert other.turn_count() == 3
    finally:
        other.close()


def test_audio_round_trips_through_postgres_into_the_files_an_export_reads(pg, postgres, tmp_path):
    import soundfile as sf

    user_pcm, answer_pcm = _pcm(0.75, 16_000, 4096), _pcm(0.5, 24_000, -1000)
    turn = _turn("item_a")
    turn.user_audio = pg.write_wav("sess/with odd:id", "item_a", "user", user_pcm, 16_000)
    turn.assistant_audio = pg.write_wav("sess/with odd:id", "item_a", "assistant", answer_pcm, 24_000)
    assert turn.user_audio == "audio/sess_with_odd_id/item_a.user.wav"
    assert not (pg.root / turn.user_audio).exists(), "the audio lives in PostgreSQL, not on this disk"
    pg.record_turn(_conversation("sess/with odd:id"), turn)
    with TrainingDataStore(tmp_path / "sqlite") as local:
        same_path = local.write_wav("sess/with odd:id", "item_a", "user", user_pcm, 16_000)
    assert same_path == turn.user_audio

    export_root = tmp_path / "export-machine"
    reader = PostgresTrainingDataStore(url=postgres.url, root=export_root)
    reader.open()
    try:
        conversations = reader.conversations()
        assert reader.materialise_audio(conversations, export_root) == 2
        assert (export_root / turn.user_audio).read_bytes() == (tmp_path / "sqlite" / same_path).read_bytes()
        samples, rate = sf.read(export_root / turn.user_audio, dtype="int16")
        assert rate == 16_000 and len(samples) == 12_000 and samples[0] == 4096
        samples, rate = sf.read(export_root / turn.assistant_audio, dtype="int16")
        assert rate == 24_000 and len(samples) == 12_000 and samples[-1] == -1000
        assert reader.materialise_audio(conversations, export_root) == 0, "already there, the same size"
        (export_root / turn.assistant_audio).write_bytes(b"RIFF")  # a copy cut short
        assert reader.materialise_audio(conversations, export_root) == 1
        assert sf.read(export_root / turn.assistant_audio, dtype="int16")[1] == 24_000
    finally:
        reader.close()


def test_correct(pg):
    pg.record_turn(_conversation("sess_c"), _turn("item_c"))
    assert pg.correct("item_c", " Wann öffnet das Museum? ") is True
    assert pg.correct("no-such-item", "text") is False
    with pytest.raises(ValueError):
        pg.correct("item_c", "   ")
    assert pg.conversations()[0].turns[0].user_words == "Wann öffnet das Museum?"


def test_purge_by_user_by_age_and_everything_counts_and_takes_the_audio(pg, tmp_path):
    now = time.time()
    for cid, user, age_days in (("sess_old", "bo", 40), ("sess_anna", "anna", 1), ("sess_bo", "bo", 2)):
        turn = _turn(f"{cid}_item")
        turn.user_audio = pg.write_wav(cid, turn.item_id, "user", _pcm(0.1, 16_000), 16_000)
        turn.assistant_audio = pg.write_wav(cid, turn.item_id, "assistant", _pcm(0.1, 24_000), 24_000)
        pg.record_turn(_conversation(cid, user=user, started_at=now - age_days * 86400), turn)
        pg.record_turn(_conversation(cid, user=user), _turn(f"{cid}_item_2"))  # a turn without audio
    conversations = pg.conversations()
    assert pg.materialise_audio(conversations, pg.root) == 6
    with pytest.raises(ValueError):
        pg.purge()

    by_age = pg.purge(older_than_days=30)
    assert (by_age.conversations, by_age.turns, by_age.audio_files) == (1, 2, 2)
    assert not (pg.root / "audio" / "sess_old").exists(), "this machine's copies go too"
    by_user = pg.purge(user_id="anna")
    assert (by_user.conversations, by_user.turns, by_user.audio_files) == (1, 2, 2)
    assert [c.id for c in pg.conversations()] == ["sess_bo"]
    assert pg.purge(user_id="anna").conversations == 0
    everything = pg.purge(everything=True)
    assert (everything.conversations, everything.turns, everything.audio_files) == (1, 2, 2)
    assert pg.conversations() == [] and pg.turn_count() == 0
    assert pg.materialise_audio(conversations, tmp_path / "elsewhere") == 0, "no audio left in PostgreSQL"
    assert not list((pg.root / "audio").rglob("*.wav"))


def _counter() -> Counter:
    return Counter("recorded", "test", ["outcome"], registry=CollectorRegistry())


def _wait(predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_postgres_stopped_mid_way_fails_the_turn_not_the_recorder_and_recording_comes_back(postgres, tmp_path):
    store = PostgresTrainingDataStore(url=postgres.url, root=tmp_path / "data", call_timeout_s=2.0)
    store.open()
    store.purge(everything=True)
    counter = _counter()
    recorder = TurnRecorder(tmp_path / "data", counter=counter, store=store)
    recorder.start()

    def keep(item: str) -> TurnToKeep:
        return TurnToKeep(conversation=_conversation("sess_down", user="carl"), turn=_turn(item),
                          user_audio=np.full(8_000, 0.25, np.float32),
                          assistant_audio=[np.full(480, 500, np.int16)], assistant_rate_hz=24_000)

    try:
        assert recorder.offer(keep("item_before"))
        _wait(lambda: recorder.outcomes["written"] == 1)
        postgres.stop()
        with pytest.raises(DataStoreError, match=REDACTED + r":\d+/tingshuo is unavailable"):
            store.turn_count()
        assert recorder.offer(keep("item_during"))
        _wait(lambda: recorder.outcomes["failed"] == 1)
        assert counter.labels(outcome="failed")._value.get() == 1
        with pytest.raises(DataStoreError, match=REDACTED):
            recorder.correct("item_before", "text").result(30)
        postgres.start()
        assert recorder.offer(keep("item_after"))
        _wait(lambda: recorder.outcomes["written"] == 2)
        assert recorder.correct("item_after", "Hello again").result(30) is True
    finally:
        if not postgres.running:
            postgres.start()
        assert recorder.close(timeout_s=30)
    assert recorder.outcomes == {"written": 2, "dropped": 0, "failed": 1}
    assert counter.labels(outcome="written")._value.get() == 2
    check = PostgresTrainingDataStore(url=postgres.url, root=tmp_path / "check")
    check.open()
    try:
        (conversation,) = check.conversations()
        assert [t.item_id for t in conversation.turns] == ["item_before", "item_after"]
        assert conversation.turns[1].user_words == "Hello again"
        assert check.materialise_audio([conversation], tmp_path / "check") == 4, "the failed turn left no audio"
        erase = TurnRecorder(tmp_path / "data", store=check)  # the recorder's erase: PostgreSQL always "exists"
        erase.start()
        assert erase.erase_user("carl").result(30).conversations == 1
        assert erase.close(timeout_s=30)
    finally:
        check.close()


def test_a_store_that_cannot_connect_is_named_without_its_password(tmp_path):
    from tests.fleet.services import free_port

    config = dataclasses.replace(Config(), data=DataSection(dir=str(tmp_path / "data")), state=StateSection(
        backend="redis+postgres", postgres_url=f"postgresql://tingshuo:hunter2@127.0.0.1:{free_port()}/tingshuo"))
    with pytest.raises(DataStoreError, match=REDACTED) as caught:
        open_training_store(config)
    assert "hunter2" not in str(caught.value)
    local = open_training_store(dataclasses.replace(config, state=StateSection()))
    assert isinstance(local, TrainingDataStore) and local.root == tmp_path / "data"


def test_the_asr_export_command_copies_the_audio_out_of_postgres(pg, postgres, tmp_path):
    for cid, user in (("sess_x", "visitor-x"), ("sess_y", "")):
        turn = _turn(f"{cid}_item")
        turn.user_audio = pg.write_wav(cid, turn.item_id, "user", _pcm(0.5, 16_000), 16_000)
        pg.record_turn(_conversation(cid, user=user), turn)
    data_dir, out = tmp_path / "cli-data", tmp_path / "asr"
    argv = [sys.executable, "-m", "tingshuo", "data", "export", "--format", "asr", "--out", str(out),
            "--set", "state.backend=redis+postgres", "--set", f"state.postgres_url={postgres.url}",
            "--set", f"data.dir={data_dir}"]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 audio files copied from PostgreSQL at postgresql://tingshuo:***@" in result.stdout
    assert postgres.password not in result.stdout + result.stderr
    lines = (out / "train" / "wav.scp").read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        _, path = line.split(" ", 1)
        assert path.startswith(str(data_dir.resolve())) and (data_dir / path).is_file(), line
