import math

import pytest

from models.llama_turn_judge import ending_probability, prompt_for


def test_the_endings_among_the_top_tokens_are_summed_in_either_format():
    new = {"completion_probabilities": [{"top_logprobs": [
        {"token": "。", "logprob": math.log(0.2)}, {"token": "<|im_end|>", "logprob": math.log(0.1)},
        {"token": "，", "logprob": math.log(0.5)}]}]}
    old = {"completion_probabilities": [{"probs": [{"tok_str": "？\n", "prob": 0.3}, {"tok_str": "的", "prob": 0.6}]}]}
    assert ending_probability(new) == pytest.approx(0.3)
    assert ending_probability(old) == pytest.approx(0.3)


def test_a_message_end_sampled_at_once_is_an_ending_and_no_answer_is_an_error():
    assert ending_probability({"completion_probabilities": [], "stop_type": "eos"}) == 1.0
    with pytest.raises(ValueError):
        ending_probability({"content": ""})


def test_the_prompt_leaves_the_message_open_without_its_trailing_punctuation():
    prompt = prompt_for("我想问一下，")
    assert prompt.endswith("<|im_start|>user\n我想问一下") and prompt.count("<|im_end|>") == 1
