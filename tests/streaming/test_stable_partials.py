import pytest

from streaming.stable_partials import StablePartials

# PocketSphinx's hypotheses every 100 ms on en_harvard_spk1_snt5 ("Sunday is the best part of the week").
SUNDAY = [None, None, "so", "san", "sunday", "sunday", "sunday", "sunday it", "sunday is", "sunday is",
          "sunday is that", "sunday is that the", "sunday is but then", "sunday is the best", "sunday is the best",
          "sunday is the best", "sunday is the best part", "sunday is the best part of", "sunday is the best part of",
          "sunday is the best part of the wii", "sunday is the best part of the week",
          "sunday is the best part of the week"]
# ... and on en_vosk_digits ("one zero zero zero one ..."): "what's" is later split into "what zero".
DIGITS = ["what", "what's", "what's", "what's your", "what zero", "what zeros", "what zeros", "what zero zero",
          "what zero zero", "what zero zero", "what zero zero was", "what zero zero zero", "what zero zero zero one",
          "what zero zero zero one", "what zero zero zero one"]


def run(hypotheses: list[str | None], **params) -> list[str]:
    stable = StablePartials(**params)
    return [stable.update(h) for h in hypotheses]


def test_words_are_emitted_once_stable_and_deltas_concatenate():
    deltas = run(SUNDAY)
    assert [(i, d) for i, d in enumerate(deltas) if d] == [
        (10, "sunday"), (11, " is"), (16, " the"), (17, " best"), (19, " part of")]
    assert "".join(deltas) == "sunday is the best part of"


def test_a_passing_word_is_not_emitted():
    # Two agreeing hypotheses and one held-back word would have sent "that", which the recogniser then dropped.
    assert "".join(run(SUNDAY, agreement=2, hold_back_words=1)) == "sunday is that"
    assert " that" not in run(SUNDAY)


def test_holding_back_two_words_keeps_a_split_word_from_stalling_the_preview():
    assert "".join(run(DIGITS, hold_back_words=1)) == "what's"  # then nothing: no hypothesis starts with it again
    assert "".join(run(DIGITS)) == "what zero zero"


def test_nothing_new_is_emitted_until_the_hypothesis_agrees_with_what_was_sent():
    stable = StablePartials(agreement=2, hold_back_words=0)
    assert stable.update("he was") == ""
    assert stable.update("he was") == "he was"
    for hyp in ["still mostly new", "still mostly new", "still mostly new home"]:
        assert stable.update(hyp) == ""
    assert stable.update("he was signed in") == ""
    assert stable.update("he was signed in you") == " signed in"
    assert stable.text == "he was signed in"


def test_empty_and_missing_hypotheses_emit_nothing():
    assert run([None, "", None, "   ", None]) == [""] * 5


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError):
        StablePartials(agreement=0)
    with pytest.raises(ValueError):
        StablePartials(hold_back_words=-1)


# Hypotheses of a growing turn, each a decode of all of it so far (as models.whisper_partials makes them);
# the third one misheard its last character, which was still held back.
GUANGZHOU = ["广州", "广州市房", "广州市房地铲", "广州市房地产中介", "广州市房地产中介协会分析"]


def test_each_ideograph_is_a_word():
    deltas = run(GUANGZHOU, agreement=1, hold_back_words=2)
    assert deltas == ["", "广州", "市房", "地产", "中介协会"]  # "铲" was never sent
    assert "".join(deltas) == "广州市房地产中介协会"


def test_spaces_are_kept_where_the_recogniser_wrote_them():
    stable = StablePartials(agreement=1, hold_back_words=0)
    assert stable.update("我用Wi-Fi 上网") == "我用Wi-Fi 上网"
    assert stable.update("我用Wi-Fi 上网 very fast") == " very fast"
    assert stable.text == "我用Wi-Fi 上网 very fast"
