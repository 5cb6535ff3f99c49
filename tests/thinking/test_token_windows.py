"""Long examples split into overlapping windows of whole turns within ``cutoff_len``: with a word
counter whose numbers can be worked out by hand, and with the embedded Qwen2.5 tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinking.training_data.dataset_records import RecordedTurn, StoredConversation
from thinking.training_data.token_windows import TURN_LONGER_THAN_CUTOFF, fit_to_cutoff
from thinking.training_data.training_examples import ChatExample, chat_examples

GGUF = Path(__file__).resolve().parents[2] / "var" / "models" / "qwen2.5-0.5b" / "model.gguf"


class WordCounter:
    """10 tokens for the prompt and system prompt, then a turn of ``question N`` and an answer of
    ``words`` words costs 2 + words: a budget that can be worked out by hand."""

    calls = 0

    def count(self, messages, tools) -> int:
        self.calls += 1
        return 10 + sum(len(str(m.get("content", "")).split()) for m in messages if m["role"] != "system")


def example(*answer_words: int) -> ChatExample:
    turns = [RecordedTurn(item_id=f"t{i}", user_text=f"question {i}", answer_generated=" ".join(["w"] * n),
                          answer_heard="") for i, n in enumerate(answer_words)]
    (built,) = chat_examples(StoredConversation(id="c", source="recorded", instructions="be kind",
                                                turns=turns)).examples
    return built


def spans(fitted) -> list[tuple[list[str], int]]:
    return [([t.item_id for t in e.turns], e.context_turns) for e in fitted.examples]


def test_an_example_that_fits_is_one_window_with_its_length():
    fitted = fit_to_cutoff(example(3, 3), WordCounter(), cutoff_len=100)
    assert spans(fitted) == [(["t0", "t1"], 0)]
    assert fitted.examples[0].tokens == 10 + 5 + 5 and not fitted.windowed and not fitted.dropped


def test_windows_overlap_by_history_capped_to_half_the_room_and_each_turn_is_new_once():
    # Room for turns: 40 - 10 = 30 tokens, history at most half of it (15). Each turn costs 10:
    # three fit; each next window repeats one turn (10 <= 15, two would be 20) and adds two.
    fitted = fit_to_cutoff(example(8, 8, 8, 8, 8, 8, 8), WordCounter(), cutoff_len=40)
    assert spans(fitted) == [(["t0", "t1", "t2"], 0), (["t2", "t3", "t4"], 1), (["t4", "t5", "t6"], 1)]
    assert fitted.windowed and all(e.tokens <= 40 for e in fitted.examples)
    new_turns = [t.item_id for e in fitted.examples for t in e.turns[e.context_turns:]]
    assert new_turns == [f"t{i}" for i in range(7)]  # every turn learned in exactly one window


def test_more_history_when_the_share_allows_it():
    fitted = fit_to_cutoff(example(3, 3, 3, 3, 3, 3), WordCounter(), cutoff_len=30, history_share=0.9)
    # Turns of 5: four fit in the room of 20; history up to 18 tokens: three turns.
    assert spans(fitted) == [(["t0", "t1", "t2", "t3"], 0), (["t1", "t2", "t3", "t4"], 3),
                             (["t2", "t3", "t4", "t5"], 3)]


def test_the_turn_before_is_history_even_past_the_share_when_the_two_fit():
    # Turns of 12 and a room of 26: history over the share (13) would be none; one turn before still fits.
    fitted = fit_to_cutoff(example(10, 10, 10, 10), WordCounter(), cutoff_len=36, history_share=0.1)
    assert spans(fitted) == [(["t0", "t1"], 0), (["t1", "t2"], 1), (["t2", "t3"], 1)]


def test_a_turn_longer_than_the_cutoff_alone_is_dropped_and_no_history_crosses_it():
    fitted = fit_to_cutoff(example(3, 3, 50, 3, 3), WordCounter(), cutoff_len=30)
    assert spans(fitted) == [(["t0", "t1"], 0), (["t3", "t4"], 0)]
    assert fitted.dropped == {TURN_LONGER_THAN_CUTOFF: 1}


def test_without_room_for_history_a_window_starts_at_its_new_turn():
    fitted = fit_to_cutoff(example(15, 15, 15), WordCounter(), cutoff_len=30)
    assert spans(fitted) == [(["t0"], 0), (["t1"], 0), (["t2"], 0)]


def test_each_range_is_counted_once():
    counter = WordCounter()
    fit_to_cutoff(example(*[8] * 30), counter, cutoff_len=40)
    assert counter.calls < 30 * 4


def test_a_non_positive_cutoff_is_refused():
    with pytest.raises(ValueError):
        fit_to_cutoff(example(1), WordCounter(), cutoff_len=0)


@pytest.fixture(scope="module")
def qwen():
    if not GGUF.exists():
        pytest.skip(f"{GGUF} missing: run `tingshuo models install`")
    from models.chat_template_tokens import ChatTemplateTokenizer

    return ChatTemplateTokenizer.from_gguf(GGUF)


def test_a_long_conversation_windowed_for_qwen_fits_256_tokens_rendered(qwen):
    turns = [RecordedTurn(item_id=f"t{i}", user_text=f"Tell me about the planet number {i} of the solar system.",
                          answer_generated=f"Planet {i} is far away; its day is long and its nights are cold, "
                                           "and people have sent probes there for decades.", answer_heard="")
             for i in range(16)]
    (long,) = chat_examples(StoredConversation(id="c", source="recorded", turns=turns,
                                               instructions="You are a patient astronomy teacher.")).examples
    assert qwen.count(long.chat_messages(), long.tools) > 3 * 256
    fitted = fit_to_cutoff(long, qwen, cutoff_len=256)
    assert fitted.windowed and len(fitted.examples) >= 4 and not fitted.dropped
    previous_end = None
    for window in fitted.examples:
        messages = window.chat_messages()
        assert messages[0]["role"] == "system" and messages[1]["role"] == "user"
        assert messages[-1]["role"] == "assistant" and messages[-1]["content"].startswith("Planet")
        assert window.tokens == len(qwen.tokenize(qwen.render(messages))) <= 256
        indices = [int(t.item_id[1:]) for t in window.turns]
        assert indices == list(range(indices[0], indices[-1] + 1))  # whole consecutive turns
        if previous_end is not None:
            assert indices[0] < previous_end <= indices[-1]  # overlaps the window before, then goes on
            assert window.context_turns == previous_end - indices[0] >= 1
        previous_end = indices[-1] + 1
    assert previous_end == 16
