"""The per-user memory store on a real SQLite file: recall, relevance, forgetting, bounds and failures."""

from __future__ import annotations

import itertools
import sqlite3

import pytest

from server.config import load_config
from thinking.memory_intents import ForgetIntent, detect_memory_intent
from thinking.user_memory import MemoryParams, MemoryStoreError, UserMemory


@pytest.fixture
def clock():
    ticks = itertools.count(1_700_000_000)
    return lambda: float(next(ticks))


@pytest.fixture
def memory(tmp_path, clock):
    store = UserMemory(path=tmp_path / "nested" / "dir" / "memory.sqlite", clock=clock)
    yield store
    store.close()


def test_missing_directory_is_created_on_first_use(tmp_path):
    path = tmp_path / "a" / "b" / "memory.sqlite"
    store = UserMemory(path=path)
    assert not path.parent.exists()  # nothing touched the disk at construction
    store.remember("alice", "my name is Alice")
    assert path.exists()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    store.close()


def test_remember_and_recall_newest_first_with_last_summaries(memory):
    memory.remember("li.wei@example.com", "my name is Li Wei")
    memory.remember("li.wei@example.com", "I'm allergic to peanuts")
    memory.remember("li.wei@example.com", "我的生日是五月三日")
    for n in range(5):
        memory.add_summary("li.wei@example.com", f"conversation {n}", session_id=f"sess_{n}")
    got = memory.recall("li.wei@example.com", limit=2, summaries=3)
    assert [f.text for f in got.facts] == ["我的生日是五月三日", "I'm allergic to peanuts"]
    assert [s.text for s in got.summaries] == ["conversation 2", "conversation 3", "conversation 4"]
    prompt = got.prompt_text()
    assert "我的生日是五月三日" in prompt and "conversation 4" in prompt and "Li Wei" not in prompt
    assert memory.recall("nobody").prompt_text() == ""


def test_repeating_a_fact_refreshes_it_instead_of_duplicating(memory):
    first = memory.remember("u1", "My name is Li Wei.")
    memory.remember("u1", "I live in Beijing")
    again = memory.remember("u1", "my name is li wei")
    assert again.id == first.id
    assert [f.text for f in memory.facts("u1")] == ["my name is li wei", "I live in Beijing"]


def test_a_session_summary_is_replaced_by_its_later_version(memory):
    memory.add_summary("u1", "We talked about tea.", session_id="sess_a")
    memory.add_summary("u1", "We talked about tea and then about Hangzhou.", session_id="sess_a")
    assert [s.text for s in memory.summaries("u1")] == ["We talked about tea and then about Hangzhou."]


@pytest.mark.parametrize("query,expected", [
    ("what is my wife called?", "My wife's name is Anna"),
    ("which foods should I avoid, any allergies?", "I'm allergic to peanuts"),
    ("Where do I work?", "I work at the Beijing office of Acme"),
    ("我老婆叫什么名字", "我老婆的名字是王芳"),
    ("我的生日是哪天", "我的生日是五月三日"),
    ("我的猫叫什么", "我养了一只猫叫咪咪"),
])
def test_relevant_ranks_by_word_and_character_overlap(memory, query, expected):
    for text in ["My wife's name is Anna", "I'm allergic to peanuts", "I work at the Beijing office of Acme",
                 "My name is Li Wei", "我老婆的名字是王芳", "我的生日是五月三日", "我养了一只猫叫咪咪", "我住在上海"]:
        memory.remember("u1", text)
    assert memory.relevant("u1", query, k=3)[0].text == expected


def test_relevant_returns_nothing_for_an_unrelated_query(memory):
    memory.remember("u1", "I'm allergic to peanuts")
    assert memory.relevant("u1", "tell me a joke", k=3) == []
    assert memory.relevant("u2", "peanuts", k=3) == []


@pytest.mark.parametrize("request_text,forgotten,kept", [
    ("my wife's name", ["My wife's name is Anna"], ["My name is Li Wei", "My wife's birthday is June 3"]),
    ("my wife's birthday", ["My wife's birthday is June 3"], ["My wife's name is Anna", "My name is Li Wei"]),
    ("peanuts", ["I'm allergic to peanuts"], ["My name is Li Wei"]),
    ("我老婆的名字", ["我老婆的名字是王芳"], ["我的名字是李伟", "我的生日是五月三日"]),
    ("我的生日", ["我的生日是五月三日"], ["我的名字是李伟", "我老婆的名字是王芳"]),
    ("it", [], ["My name is Li Wei"]),  # nothing but function words: matches nothing
])
def test_forget_by_fuzzy_text(memory, request_text, forgotten, kept):
    for text in forgotten + kept:
        memory.remember("u1", text)
    assert memory.forget("u1", request_text) == len(forgotten)
    assert sorted(f.text for f in memory.facts("u1")) == sorted(kept)


def test_forget_a_spoken_request_end_to_end(memory):
    memory.remember("u1", "My wife's name is Anna")
    memory.remember("u1", "My name is Li Wei")
    intent = detect_memory_intent("Please forget my wife's name.")
    assert intent == ForgetIntent("my wife's name")
    assert memory.forget("u1", intent.text) == 1
    assert [f.text for f in memory.facts("u1")] == ["My name is Li Wei"]


def test_forget_also_removes_summaries_that_mention_it(memory):
    memory.add_summary("u1", "The user said his wife's name is Anna and asked about flowers.", "s1")
    memory.add_summary("u1", "The user asked about the weather in Beijing.", "s2")
    assert memory.forget("u1", "my wife's name") == 1
    assert [s.session_id for s in memory.summaries("u1")] == ["s2"]


def test_forget_by_id_only_touches_that_users_fact(memory):
    a = memory.remember("alice", "I like jazz")
    memory.remember("bob", "I like rock")
    assert memory.forget("bob", a.id) == 0
    assert memory.forget("alice", a.id) == 1
    assert memory.facts("alice") == [] and len(memory.facts("bob")) == 1


def test_forget_everything_and_delete_user_isolation(memory):
    for user in ("alice", "bob"):
        memory.remember(user, f"{user} likes tea")
        memory.remember(user, f"{user} lives in Hangzhou")
        memory.add_summary(user, f"{user} talked about tea", session_id="s1")
    assert detect_memory_intent("forget everything") == ForgetIntent(everything=True)
    assert memory.delete_user("alice") == 3  # what "forget everything" does
    assert memory.export("alice") == {"user_id": "alice", "facts": [], "summaries": []}
    bob = memory.export("bob")
    assert [f["text"] for f in bob["facts"]] == ["bob lives in Hangzhou", "bob likes tea"]
    assert [s["text"] for s in bob["summaries"]] == ["bob talked about tea"]
    assert set(bob["facts"][0]) == {"id", "text", "created_at"}


def test_facts_are_bounded_oldest_evicted_and_clipped(tmp_path, clock):
    store = UserMemory(path=tmp_path / "m.sqlite", params=MemoryParams(max_facts_per_user=3, max_fact_chars=500),
                       clock=clock)
    for n in range(5):
        store.remember("u1", f"fact number {n}")
    store.remember("u2", "another user's fact")
    assert [f.text for f in store.facts("u1")] == ["fact number 4", "fact number 3", "fact number 2"]
    assert len(store.facts("u2")) == 1
    long = store.remember("u1", "x" * 2000)
    assert len(long.text) == 500 and long.text.endswith("…")
    assert len(store.facts("u1")[0].text) == 500
    with pytest.raises(ValueError):
        store.remember("u1", "   ")
    store.close()


@pytest.mark.parametrize("user_id", ["", "a" * 129, "bob smith", "x;DROP TABLE facts", "名字", "a/b", "new\nline"])
def test_invalid_user_ids_are_refused(memory, user_id):
    with pytest.raises(ValueError):
        memory.remember(user_id, "anything")
    with pytest.raises(ValueError):
        memory.recall(user_id)


@pytest.mark.parametrize("user_id", ["a", "a" * 128, "Li.Wei-2024_x@example.com"])
def test_valid_user_ids_are_accepted(memory, user_id):
    memory.remember(user_id, "hello there")
    assert memory.recall(user_id).facts[0].text == "hello there"


def test_a_locked_file_raises_memory_store_error(tmp_path):
    path = tmp_path / "m.sqlite"
    store = UserMemory(path=path, params=MemoryParams(busy_timeout_ms=50))
    store.remember("u1", "before the lock")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(MemoryStoreError, match="locked"):
            store.remember("u1", "during the lock")
        with pytest.raises(MemoryStoreError):
            store.delete_user("u1")
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.remember("u1", "after the lock")  # the store recovers once the lock is gone
    assert [f.text for f in store.facts("u1")] == ["after the lock", "before the lock"]
    store.close()


def test_a_locked_file_at_first_use_raises_memory_store_error(tmp_path):
    path = tmp_path / "m.sqlite"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(MemoryStoreError):
            UserMemory(path=path, params=MemoryParams(busy_timeout_ms=50)).recall("u1")
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_corrupt_file_raises_memory_store_error(tmp_path):
    path = tmp_path / "m.sqlite"
    path.write_bytes(b"this is not an sqlite database, just some bytes " * 100)
    store = UserMemory(path=path)
    with pytest.raises(MemoryStoreError, match="corrupt"):
        store.recall("u1")
    with pytest.raises(MemoryStoreError):
        store.remember("u1", "anything")


def test_a_foreign_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "m.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE songs (title TEXT)")
    with pytest.raises(MemoryStoreError, match="not a tingshuo memory store"):
        UserMemory(path=path).recall("u1")


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "m.sqlite"
    UserMemory(path=path).remember("u1", "hello there")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(MemoryStoreError, match="schema 99"):
        UserMemory(path=path).recall("u1")


def test_a_directory_that_cannot_be_created_raises_memory_store_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(MemoryStoreError):
        UserMemory(path=tmp_path / "file" / "memory.sqlite").recall("u1")


def test_memory_section_is_configurable():
    config = load_config(environ={"TINGSHUO_MEMORY_ENABLED": "false"},
                         assignments=["memory.max_facts_per_user=50", "memory.summary_timeout_s=5"])
    m = config.memory
    assert (m.enabled, m.max_facts_per_user, m.summary_timeout_s) == (False, 50, 5.0)
    assert (m.path, m.history_token_budget, m.recall_facts) == ("var/memory.sqlite", 1500, 10)
