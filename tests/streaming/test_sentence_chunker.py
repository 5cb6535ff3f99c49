"""The chunker on realistic English and Chinese token streams."""

import random
import re

import pytest

from streaming.sentence_chunker import ChunkerParams, SentenceChunker


def llm_tokens(text: str) -> list[str]:
    return re.findall(r"\s*[\w']+|\s*[^\w\s]|\s+", text)


def chunk(tokens, params=ChunkerParams()):
    c = SentenceChunker(params)
    out = []
    for t in tokens:
        out += c.push(t)
    return out + c.flush()


CASES = [
    ("Hello! The capital of France is Paris. It has about two million people living in it.",
     ["Hello!", "The capital of France is Paris.", "It has about two million people living in it."]),
    ("The price is $4.99. Call Dr. Smith at 10:30 a.m. tomorrow, please.",
     ["The price is $4.99.", "Call Dr. Smith at 10:30 a.m. tomorrow, please."]),
    ("Sure, I can help with that. Pi is about 3.14159 and e is 2.718 roughly.",
     ["Sure,", "I can help with that.", "Pi is about 3.14159 and e is 2.718 roughly."]),
    ("Visit https://example.com/a.b?x=1 or write to a.b@example.co.uk for help. We reply within a day.",
     ["Visit https://example.com/a.b?x=1 or write to a.b@example.co.uk for help.", "We reply within a day."]),
    ("Well, J. K. Rowling lives in the U.S. now? No, she lives in the U.K. today.",
     ["Well,", "J. K. Rowling lives in the U.S. now?", "No, she lives in the U.K. today."]),
    ("你好！我是听说助手，很高兴认识你。今天天气怎么样？",
     ["你好！", "我是听说助手，很高兴认识你。", "今天天气怎么样？"]),
    ("好的。北京今天晴，气温二十度，适合出门散步。",
     ["好的。", "北京今天晴，气温二十度，适合出门散步。"]),
    ("It costs 1,000,000 dollars. That's a lot.", ["It costs 1,000,000 dollars.", "That's a lot."]),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_chunks_word_tokens(text, expected):
    assert chunk(llm_tokens(text)) == expected


@pytest.mark.parametrize("text,expected", CASES)
def test_chunks_character_tokens(text, expected):
    assert chunk(list(text)) == expected


def test_first_chunk_cut_at_a_clause_when_long_enough():
    text = "Absolutely, here is what I found about the weather in Berlin today."
    assert chunk(llm_tokens(text)) == ["Absolutely,", "here is what I found about the weather in Berlin today."]


@pytest.mark.parametrize("text,first", [("Yes, platforms one and three are in use today.", "Yes,"),
                                        ("是的，我们今天用一号和三号站台。", "是的，"), ("OK, here it is.", "OK,")])
def test_a_short_opening_word_is_said_before_the_rest_of_its_sentence(text, first):
    assert chunk(llm_tokens(text))[0] == first
    assert chunk(list(text))[0] == first


def test_a_lone_letter_before_a_comma_is_not_a_first_chunk():
    assert chunk(llm_tokens("I, for one, agree with you.")) == ["I, for one,", "agree with you."]


def test_short_later_sentences_are_merged():
    out = chunk(llm_tokens("First sentence here. Yes. No. Maybe so. Done now, thanks."))
    assert out == ["First sentence here.", "Yes. No. Maybe so. Done now, thanks."]


def test_max_chars_forces_a_cut():
    text = "word " * 100
    out = chunk(llm_tokens(text), ChunkerParams(max_chars=60))
    assert all(len(c) <= 60 for c in out)
    assert " ".join(out).split() == text.split()
    zh = "这是一个非常长的句子没有任何标点符号" * 10
    out = chunk(list(zh), ChunkerParams(max_chars=50))
    assert "".join(out) == zh and all(len(c) <= 50 for c in out)


@pytest.mark.parametrize("text,_", CASES)
def test_no_text_lost_under_random_token_splits(text, _):
    rng = random.Random(7)
    expected = chunk([text])
    for _ in range(30):
        cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 25))))
        tokens = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
        out = chunk(tokens)
        assert out == expected
        assert re.sub(r"\s", "", "".join(out)) == re.sub(r"\s", "", text)


# Qwen2.5's pieces for a Mandarin answer with no comma (one or two characters each).
QWEN_PIECES = ["洗澡", "你", "以后", "能够", "做的", "比我", "还", "好用", "。", "谢谢", "你", "。"]


def test_a_first_mandarin_chunk_is_cut_between_pieces_for_a_slow_voice():
    params = ChunkerParams(first_chunk_cjk_chars=6)
    # Six ideographs are reached inside "能够" (5 -> 7): the cut falls after the piece, never inside it.
    assert chunk(QWEN_PIECES, params) == ["洗澡你以后能够", "做的比我还好用。谢谢你。"]
    assert chunk(QWEN_PIECES) == ["洗澡你以后能够做的比我还好用。", "谢谢你。"]  # the default waits for the sentence


def test_the_short_mandarin_cut_leaves_clauses_english_and_later_sentences_alone():
    params = ChunkerParams(first_chunk_cjk_chars=6)
    # A clause mark before six ideographs cuts as before.
    assert chunk(["北京", "今天", "晴，", "气温", "二十", "度。"], params) == ["北京今天晴，", "气温二十度。"]
    # English is never cut by it.
    text = "Absolutely here is what I found about the weather in Berlin today."
    assert chunk(llm_tokens(text), params) == [text]
    # Only the first chunk: later Mandarin sentences stay whole.
    out = chunk(["好的", "。"] + QWEN_PIECES, params)
    assert out == ["好的。", "洗澡你以后能够做的比我还好用。", "谢谢你。"]
    # Nothing lost under any split.
    text = "".join(QWEN_PIECES)
    rng = random.Random(3)
    for _ in range(30):
        cuts = sorted(rng.sample(range(1, len(text)), k=rng.randint(1, 10)))
        tokens = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
        assert "".join(chunk(tokens, params)) == text


def test_a_first_clause_is_cut_as_its_comma_arrives_after_a_word_but_waits_after_a_digit():
    c = SentenceChunker()
    assert c.push("Absolutely") == []
    assert c.push(",") == ["Absolutely,"]  # not one token later, when the space comes
    assert c.push(" here") == []
    c = SentenceChunker()
    assert c.push("It weighs about 1") == [] and c.push(",") == []  # maybe "1,000"
    assert c.push("000 tonnes, give or take.") == ["It weighs about 1,000 tonnes,"]
    c = SentenceChunker()
    assert c.push("We open at 10") == [] and c.push(":") == [] and c.push("30 on Sundays.") == []
    assert c.push(" ") == ["We open at 10:30 on Sundays."]
