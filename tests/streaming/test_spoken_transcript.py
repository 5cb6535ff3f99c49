import pytest

from streaming.spoken_transcript import SpokenTranscript


def transcript(*chunks):
    t = SpokenTranscript()
    for text, ms in chunks:
        t.add_text(text)
        t.add_audio(ms)
    return t


def test_full_and_heard_text():
    t = transcript(("Hello there.", 1000), ("The capital of France is Paris.", 2000))
    assert t.full_text() == "Hello there. The capital of France is Paris."
    assert t.heard_text(0) == ""
    assert t.heard_text(1000) == "Hello there."
    assert t.heard_text(3000) == t.full_text()


@pytest.mark.parametrize("played,expected", [
    (1500, "Hello there. The"),  # 25 % of 31 chars ends inside "capital": cut back to a word
    (2000, "Hello there. The capital of"),
    (1100, "Hello there."),
])
def test_partial_chunk_cuts_at_a_word(played, expected):
    t = transcript(("Hello there.", 1000), ("The capital of France is Paris.", 2000))
    assert t.heard_text(played) == expected


def test_chinese_cut_by_character_and_joined_without_spaces():
    t = transcript(("你好！", 600), ("我是听说助手。", 1400))
    assert t.full_text() == "你好！我是听说助手。"
    assert t.heard_text(600 + 700) == "你好！我是听"
