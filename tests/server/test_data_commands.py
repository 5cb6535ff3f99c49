"""``tingshuo data import|purge|correct`` on the hand-written chat-log fixtures: the cleaned
conversations are stored whole (context kept), redaction and what was left out are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.cli import main
from thinking.training_data.data_store import TrainingDataStore

FIXTURES = Path(__file__).parents[1] / "thinking" / "fixtures" / "chat_logs"


def _run(tmp_path: Path, *argv: str) -> int:
    return main(["--set", f"data.dir={tmp_path / 'data'}", *argv])


def test_a_chatgpt_export_imports_as_whole_conversations_with_redaction_reported(tmp_path, capsys):
    assert _run(tmp_path, "data", "import", str(FIXTURES / "chatgpt_conversations.json"), "--from", "chatgpt") == 0
    out = capsys.readouterr().out
    assert "redacted" in out and "stored 1 conversations, 2 turns" in out
    with TrainingDataStore(tmp_path / "data") as store:
        (conversation,) = store.conversations()
    assert conversation.source == "chatgpt" and conversation.id == "chatgpt:6e1c0d2a-museum"
    assert [t.user_text for t in conversation.turns] == ["When does the museum open?", "And on Monday?"]
    assert "010-6512-3456" not in conversation.turns[1].answer_generated
    assert "info@museum.example.org" not in conversation.turns[1].answer_generated


def test_a_wechat_chat_over_midnight_is_split_at_the_gap_not_the_date(tmp_path, capsys):
    assert _run(tmp_path, "data", "import", str(FIXTURES / "wechat_pywxdump.csv"), "--from", "wechat-csv",
                "--assistant", "me", "--gap", "30m") == 0
    with TrainingDataStore(tmp_path / "data") as store:
        conversations = store.conversations()
    assert len(conversations) >= 2
    # The first session crosses midnight (23:50 → after 00:00) and stays one conversation.
    first = conversations[0]
    assert first.turns[0].user_text.startswith("在吗")  # two messages of the friend merged
    assert "明天一起去博物馆吗" in first.turns[0].user_text
    assert first.turns[0].answer_generated.startswith("好啊")
    assert all(t.user_text and t.answer_generated for c in conversations for t in c.turns)


def test_a_jsonl_log_imports_and_a_bad_file_is_an_error_not_a_crash(tmp_path, capsys):
    assert _run(tmp_path, "data", "import", str(FIXTURES / "chat.jsonl"), "--from", "jsonl") == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"role": "user", "content": "hi"}\nnot json\n')
    assert _run(tmp_path, "data", "import", str(bad), "--from", "jsonl") == 2
    assert "bad.jsonl:2: not JSON" in capsys.readouterr().err


def test_correct_and_purge_through_the_command(tmp_path, capsys):
    assert _run(tmp_path, "data", "import", str(FIXTURES / "chat.jsonl"), "--from", "jsonl") == 0
    with TrainingDataStore(tmp_path / "data") as store:
        item = store.conversations()[0].turns[0].item_id
    assert _run(tmp_path, "data", "correct", item, "What is the Wi-Fi password?") == 0
    assert _run(tmp_path, "data", "correct", "no/such", "text") == 1
    with TrainingDataStore(tmp_path / "data") as store:
        assert store.conversations()[0].turns[0].user_words == "What is the Wi-Fi password?"
    assert _run(tmp_path, "data", "purge", "--all") == 0
    assert "deleted 1 conversations" in capsys.readouterr().out
    with TrainingDataStore(tmp_path / "data") as store:
        assert store.conversations() == []


def test_purge_wants_to_be_told_what(tmp_path):
    with pytest.raises(SystemExit):
        _run(tmp_path, "data", "purge")


def test_no_redact_keeps_the_personal_data_and_reports_no_replacement(tmp_path, capsys):
    assert _run(tmp_path, "data", "import", str(FIXTURES / "chatgpt_conversations.json"), "--from", "chatgpt",
                "--no-redact") == 0
    assert "redacted" not in capsys.readouterr().out
    with TrainingDataStore(tmp_path / "data") as store:
        (conversation,) = store.conversations()
    assert "010-6512-3456" in conversation.turns[1].answer_generated
