import pytest

from streaming.speakable_text import SpeakableFilter, speakable_text


@pytest.mark.parametrize("text,spoken", [
    ("**Paris** is the *capital* of France.", "Paris is the capital of France."),
    ("## Summary\n- first point\n- second point", "Summary first point second point"),
    ("See [the docs](https://example.com/docs) for more.", "See the docs for more."),
    ("Run `pip install x` now.", "Run now."),
    ("Great job! 🎉👍🏽 Keep going ❤️", "Great job! Keep going"),
    ("Go to https://example.com/a?b=1 today.", "Go to today."),
    ("> quoted wisdom", "quoted wisdom"),
    ("| a | b |", "a b"),
    ("snake_case stays", "snake_case stays"),
    ("你好😀，世界！", "你好，世界！"),
    ("🎉", ""),
])
def test_speakable_text(text, spoken):
    assert speakable_text(text) == spoken


def test_code_block_across_chunks_is_not_spoken():
    f = SpeakableFilter()
    assert f.push("Here is code: ```python") == "Here is code:"
    assert f.push("print('hi')") == ""
    assert f.push("``` That prints hi.") == "That prints hi."
