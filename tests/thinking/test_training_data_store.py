"""The data stage's store: conversations and turns round-trip, audio is written beside them, a
correction replaces the transcript, purging takes audio with it, and every failure is a
DataStoreError (so the server's recorder can drop one turn and go on)."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import pytest

from thinking.training_data.data_store import DataStoreError, TrainingDataStore
from thinking.training_data.dataset_records import RecordedTurn, StoredConversation, ToolCallRecord


def _conversation(cid: str = "sess_1", user: str = "anna", started_at: float = 0.0) -> StoredConversation:
    return StoredConversation(id=cid, source="recorded", user_id=user, persona_id="museum_guide",
                              persona_version="1", instructions="You are Ada.", adapter="museum-lora",
                              tools=[{"type": "function", "name": "get_current_time", "parameters": {}}],
                              started_at=started_at)


def _turn(item: str, **fields) -> RecordedTurn:
    return RecordedTurn(item_id=item, user_text=fields.pop("user_text", "When do you open?"),
                        answer_generated="At nine.", answer_heard="At nine.", language="en", **fields)


def test_recorded_turns_come_back_in_order_with_every_field(tmp_path: Path):
    with TrainingDataStore(tmp_path) as store:
        call = ToolCallRecord(name="get_current_time", arguments='{"timezone": "UTC"}', result="10:00", call_id="c1")
        store.record_turn(_conversation(), _turn("item_a", tool_calls=[call], latency_ms={"voice_to_voice": 812.0}))
        store.record_turn(_conversation(), _turn("item_b", user_text="And on Monday?", interrupted=True,
                                                 failure="", started_at=5.0))
        (conversation,) = store.conversations()
    assert (conversation.persona_id, conversation.adapter, conversation.instructions) == (
        "museum_guide", "museum-lora", "You are Ada.")
    assert conversation.tools[0]["name"] == "get_current_time"
    assert [t.item_id for t in conversation.turns] == ["item_a", "item_b"]
    assert conversation.turns[0].tool_calls == [call]
    assert conversation.turns[0].latency_ms == {"voice_to_voice": 812.0}
    assert conversation.turns[1].interrupted and conversation.turns[1].user_text == "And on Monday?"


def test_a_correction_replaces_the_transcript_in_what_exports_read(tmp_path: Path):
    with TrainingDataStore(tmp_path) as store:
        store.record_turn(_conversation(), _turn("item_a", user_text="when do you often"))
        assert store.correct("item_a", "When do you open?")
        assert not store.correct("item_unknown", "text")
        with pytest.raises(ValueError):
            store.correct("item_a", "  ")
        (turn,) = store.conversations()[0].turns
    assert (turn.user_text, turn.user_words) == ("when do you often", "When do you open?")


def test_audio_is_written_as_16_bit_mono_and_purged_with_its_conversation(tmp_path: Path):
    with TrainingDataStore(tmp_path) as store:
        relative = store.write_wav("sess_1", "item_a", "user", b"\x01\x00" * 16000, 16000)
        store.record_turn(_conversation(started_at=time.time() - 10 * 86400), _turn("item_a", user_audio=relative))
        store.record_turn(_conversation("sess_2", user="li"), _turn("item_c"))
        with wave.open(str(tmp_path / relative)) as wav:
            assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()) == (1, 2, 16000, 16000)
        report = store.purge(older_than_days=5)
        assert (report.conversations, report.turns, report.audio_files) == (1, 1, 1)
        assert not (tmp_path / relative).exists()
        assert [c.id for c in store.conversations()] == ["sess_2"]
        assert store.purge(user_id="li").conversations == 1
        assert store.conversations() == []


def test_an_import_replaces_a_conversation_with_the_same_id(tmp_path: Path):
    with TrainingDataStore(tmp_path) as store:
        imported = StoredConversation(id="jsonl:chat", source="jsonl", turns=[_turn("jsonl:chat/1")])
        store.add_conversation(imported)
        imported.turns.append(_turn("jsonl:chat/2"))
        store.add_conversation(imported)
        assert store.turn_count() == 2
        assert store.conversations(sources=("recorded",)) == []


def test_a_store_that_cannot_be_written_raises_its_own_error(tmp_path: Path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the store's directory should be")
    with TrainingDataStore(blocker / "data") as store:
        with pytest.raises(DataStoreError):
            store.record_turn(_conversation(), _turn("item_a"))
        with pytest.raises(DataStoreError):
            store.write_wav("sess_1", "item_a", "user", b"\x00\x00", 16000)


def test_a_foreign_sqlite_file_is_refused_not_overwritten(tmp_path: Path):
    import sqlite3

    conn = sqlite3.connect(tmp_path / "data.sqlite")
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    with TrainingDataStore(tmp_path) as store, pytest.raises(DataStoreError, match="schema version 7"):
        store.conversations()
