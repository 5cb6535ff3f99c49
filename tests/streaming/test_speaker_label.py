"""A speaker label in front of an answer is dropped; everything else goes out as written, unheld."""

import random

import pytest

from streaming.speaker_label import MAX_HELD_CHARS, SpeakerLabelFilter


def filtered(pieces: list[str], names: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    f = SpeakerLabelFilter(names)
    out = [f.push(p) for p in pieces]
    return "".join(out) + f.finish(), out


@pytest.mark.parametrize("pieces,expected", [
    (["T", "ings", "huo", ":", " We", " only", " have", " two", "."], "We only have two."),
    (["Tingshuo", ":", " (", "smiling", ")", " Sure", "."], "Sure."),
    (["Assistant", " :", " Hello", "!"], "Hello!"),
    (["听说", "：", "你好", "。"], "你好。"),
    (["助手", ":", "（微笑）", "好的", "。"], "好的。"),
    (["Mei", ":", " Hi", "."], "Hi."),  # the persona's own name
    (["tingshuo:", " hi"], "hi"),
])
def test_a_label_and_its_stage_direction_are_dropped(pieces, expected):
    assert filtered(pieces, names=("Mei",))[0] == expected


@pytest.mark.parametrize("pieces", [
    ["I", "'m", " sorry", ",", " but", " no", "."],
    ["AI", " is", " a", " field", "."],
    ["As", " a", " rule", ":", " yes", "."],
    ["Note", ":", " the", " shop", " is", " closed", "."],
    ["Tingshuo", " is", " my", " name", "."],
    ["好的", "。"],
    ["Sure", ":", " here", "."],
])
def test_anything_else_goes_out_as_written(pieces):
    assert filtered(pieces)[0] == "".join(pieces)


def test_text_that_cannot_be_a_label_is_not_held():
    _, out = filtered(["I", "'m", " here", "."])
    assert out == ["I", "'m", " here", "."]  # each piece out as it came
    _, out = filtered(["Ti", "red", " of", " it", "."])
    assert out == ["", "Tired", " of", " it", "."]  # held one piece while it could be "Tingshuo"


def test_an_answer_that_is_only_a_label_prefix_or_a_long_aside_is_kept():
    assert filtered(["Ass"])[0] == "Ass"  # the stream ended before it could be a label
    aside = "Tingshuo: (" + "x" * MAX_HELD_CHARS
    assert filtered([aside, " y"])[0] == aside + " y"  # no closing bracket in reach: not a stage direction


def test_no_text_lost_or_label_kept_under_any_split():
    rng = random.Random(5)
    for text, expected in [("Tingshuo: (smiling) We only have two.", "We only have two."),
                           ("AI helps. Tingshuo: no.", "AI helps. Tingshuo: no.")]:
        for _ in range(40):
            cuts = sorted(rng.sample(range(1, len(text)), k=rng.randint(1, 12)))
            pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
            assert filtered(pieces)[0] == expected, pieces
