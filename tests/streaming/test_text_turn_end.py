from __future__ import annotations

import pytest

from streaming.text_turn_end import sounds_finished


@pytest.mark.parametrize("text", [
    "The child almost hurt the small dog.", "What's the weather like today?", "Tell me a joke!",
    "今天天气怎么样？", "甚至出现交易几乎停滞的情况。", "Mr. Quilter is the apostle of the middle classes.",
])
def test_finished_messages(text):
    assert sounds_finished(text)


@pytest.mark.parametrize("text", [
    "", "Yes.", "And so my fellow Americans,", "I want to ask about", "我想问……", "我想问", "So um...",
    "I went there and.", "Drop the two when you add the", "然后。", "因为我觉得就是。", "Can you tell me",
    "好。",
])
def test_unfinished_messages(text):
    assert not sounds_finished(text)
