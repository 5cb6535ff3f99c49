"""Chat logs people already have, read and cleaned: a branched ChatGPT export, a WeChat chat over
midnight (PyWxDump CSV), a plain JSONL log. The fixtures are written by hand in each documented
format (tests/thinking/fixtures/chat_logs/)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from thinking.conversation_logs.chatgpt_export import read_chatgpt_export
from thinking.conversation_logs.cleaning import CleaningParams, clean, parse_gap
from thinking.conversation_logs.jsonl_log import read_jsonl
from thinking.conversation_logs.records import ExportFormatError, LoggedConversation
from thinking.conversation_logs.redaction import RedactionReport, redact
from thinking.conversation_logs.wechat_csv import read_wechat_csv

FIXTURES = Path(__file__).parent / "fixtures" / "chat_logs"


def _said(conversation: LoggedConversation) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in conversation.messages]


def test_a_chatgpt_export_keeps_the_branch_the_user_saw_without_hidden_or_tool_messages():
    museum, picture = read_chatgpt_export(FIXTURES / "chatgpt_conversations.json")
    assert museum.id == "6e1c0d2a-museum" and museum.title == "Museum opening hours"
    assert _said(museum) == [
        ("user", "When does the museum open?"),
        ("assistant", "It opens at 9:00, Tuesday to Sunday."),
        ("user", "And on Monday?"),  # the edited prompt, not the abandoned "Mondya" branch
        ("assistant", "It is closed on Mondays. Call 010-6512-3456 or write to info@museum.example.org."),
    ]
    assert museum.messages[0].time is not None and museum.messages[0].time.year == 2024
    assert picture.messages == []  # an image and no text


def test_a_chatgpt_export_cleans_to_one_redacted_conversation_and_drops_one_with_no_answer():
    conversations, report = clean(read_chatgpt_export(FIXTURES / "chatgpt_conversations.json"))
    assert [c.id for c in conversations] == ["6e1c0d2a-museum"]
    assert conversations[0].messages[-1].content == "It is closed on Mondays. Call [PHONE] or write to [EMAIL]."
    assert report.redaction.replaced == {"phone": 1, "email": 1}
    assert all("*" in s for samples in report.redaction.samples.values() for s in samples)  # masked, not the data
    assert report.dropped["conversation without a user message answered"] == 1


def test_a_wechat_chat_splits_at_the_gap_not_at_midnight_and_imitates_the_chosen_side():
    messages = read_wechat_csv(FIXTURES / "wechat_pywxdump.csv", assistant="me")
    assert [m.content for m in messages][:3] == ["在吗", "明天一起去博物馆吗？", "好啊，几点？"]  # the image is gone
    conversations, report = clean([LoggedConversation(id="wechat-friend", messages=messages)],
                                  CleaningParams(gap=parse_gap("30m")))
    evening, morning = conversations
    assert _said(evening) == [
        ("user", "在吗\n明天一起去博物馆吗？"),  # one thought sent in two messages
        ("assistant", "好啊，几点？"),
        ("user", "十点吧，我的电话是[PHONE]"),  # 23:55 to 00:05: one conversation across midnight
        ("assistant", "行，十点见"),  # its repeat a second later is dropped
    ]
    assert _said(morning) == [("user", "到了吗？"), ("assistant", "马上到\n在门口等你")]
    assert [c.id for c in conversations] == ["wechat-friend#1", "wechat-friend#2"]
    assert report.split_at_gaps == 1 and report.merged == 2
    assert report.dropped == {"repeated message": 1, "app noise": 1}
    assert report.redaction.replaced == {"phone": 1}
    # The other side: the friend's messages become the assistant's.
    theirs = read_wechat_csv(FIXTURES / "wechat_pywxdump.csv", assistant="them")
    assert theirs[0].role == "assistant" and theirs[2].role == "user"


def test_a_jsonl_log_drops_empty_messages_and_redacts_a_chinese_id_number():
    conversations, report = clean([LoggedConversation(id="kiosk", messages=read_jsonl(FIXTURES / "chat.jsonl"))])
    (conversation,) = conversations
    assert _said(conversation)[2] == ("user", "Thanks! My ID is [ID].")
    assert report.dropped == {"empty message": 1} and report.redaction.replaced == {"id_number": 1}
    assert report.messages_in == 5 and report.messages_out == 4


def test_an_identical_conversation_imported_twice_is_kept_once():
    messages = read_jsonl(FIXTURES / "chat.jsonl")
    conversations, report = clean([LoggedConversation("a", messages), LoggedConversation("b", messages)])
    assert [c.id for c in conversations] == ["a"] and report.dropped["duplicate conversation"] == 1


@pytest.mark.parametrize(("text", "expected", "kind"), [
    ("邮箱 zhang.san+kiosk@example.com.cn 谢谢", "邮箱 [EMAIL] 谢谢", "email"),
    ("手机 +86 138-1234-5678", "手机 [PHONE]", "phone"),
    ("座机 021-62345678", "座机 [PHONE]", "phone"),
    ("call (415) 555-0134 today", "call [PHONE] today", "phone"),
    ("or +44 20 7946 0958", "or [PHONE]", "phone"),
    ("SSN 078-05-1120", "SSN [ID]", "id_number"),
    ("身份证 11010519491231002X", "身份证 [ID]", "id_number"),
])
def test_personal_data_in_chinese_and_english_formats_is_replaced(text, expected, kind):
    report = RedactionReport()
    assert redact(text, report) == expected
    assert report.replaced == {kind: 1}


def test_numbers_that_are_not_personal_data_stay():
    report = RedactionReport()
    text = "订单号 110105194912310021，票价 28 元，9:30 开门，2024-05-01"
    assert redact(text, report) == text  # 18 digits whose ID checksum fails: an order number
    assert not report.replaced


def test_gaps_and_broken_files_are_refused_with_what_is_wrong(tmp_path):
    assert parse_gap("30m") == timedelta(minutes=30) and parse_gap("2h") == timedelta(hours=2)
    with pytest.raises(ValueError, match="30m"):
        parse_gap("half an hour")
    broken = tmp_path / "chat.jsonl"
    broken.write_text('{"role": "user", "content": "hi"}\n{"role": "robot", "content": "x"}\n', encoding="utf-8")
    with pytest.raises(ExportFormatError, match=r"chat.jsonl:2"):
        read_jsonl(broken)
    not_wechat = tmp_path / "other.csv"
    not_wechat.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ExportFormatError, match="not a PyWxDump CSV"):
        read_wechat_csv(not_wechat, assistant="me")
    not_chatgpt = tmp_path / "conversations.json"
    not_chatgpt.write_text('{"conversations": []}', encoding="utf-8")
    with pytest.raises(ExportFormatError, match="list of conversations"):
        read_chatgpt_export(not_chatgpt)
