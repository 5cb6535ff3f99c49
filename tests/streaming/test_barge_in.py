import pytest

from streaming.barge_in import (
    BargeInPolicy,
    word_count,
    InterruptionParams,
    OnsetWithdrawn,
    PauseExpired,
    SpeechLasted,
    Verdict,
    WordsHeard,
)


@pytest.mark.parametrize("text,is_backchannel", [
    ("Mm-hm.", True), ("uh huh", True), ("Okay!", True), ("嗯。", True), ("好的", True), ("", True),
    ("Yeah, yeah.", True), ("Uh-huh, right.", True), ("嗯嗯，对对。", True), ("对的", True), ("Oh, I see.", True),
    ("Wait, stop.", False), ("What about Germany?", False), ("不对，我问的是上海", False), ("不对", False),
    ("yeah but what about tomorrow", False), ("Yes, please book it.", False), ("好好学习", False),
    ("Right. " * 40, True),  # Whisper looping on a short "right"
    ("Ah ha...", True),
])
def test_backchannels(text, is_backchannel):
    assert BargeInPolicy().is_backchannel(text) is is_backchannel


POLICY = BargeInPolicy(params=InterruptionParams(confirm_speech_ms=1200, max_pause_ms=3000))


@pytest.mark.parametrize("evidence,words_pending,verdict", [
    (OnsetWithdrawn(), False, Verdict.RESUME),  # a click: the answer goes on
    (OnsetWithdrawn(), True, Verdict.WAIT),  # a turn ended and its words are awaited: they decide
    (SpeechLasted(600), True, Verdict.WAIT),  # as long as an "uh-huh"
    (SpeechLasted(1200), True, Verdict.CONFIRM),  # longer than any backchannel
    (WordsHeard("Uh-huh."), True, Verdict.RESUME),
    (WordsHeard(""), True, Verdict.RESUME),  # noise the VAD took for speech: no words
    (WordsHeard("嗯"), True, Verdict.RESUME),
    (WordsHeard("Stop, what about Paris?"), True, Verdict.CONFIRM),
    (WordsHeard("等一下"), True, Verdict.CONFIRM),
    # What Whisper base made of synthesized backchannels: short speech, a few made-up words.
    (WordsHeard("2", speech_ms=416), True, Verdict.RESUME),
    (WordsHeard("我呢", speech_ms=448), True, Verdict.RESUME),
    (WordsHeard("一毫ester", speech_ms=864), True, Verdict.RESUME),
    (WordsHeard("我呢", speech_ms=None), True, Verdict.CONFIRM),  # length unknown: words are words
    (WordsHeard("What about tomorrow?", speech_ms=900), True, Verdict.CONFIRM),  # three words: a question
    (WordsHeard("Stop.", speech_ms=300), True, Verdict.CONFIRM),  # short, but a stop word
    (WordsHeard("Okay, wait.", speech_ms=500), True, Verdict.CONFIRM),
    (WordsHeard("等等", speech_ms=400), True, Verdict.CONFIRM),
    (WordsHeard("北京呢", speech_ms=1400), True, Verdict.CONFIRM),  # long enough to be meant
    # Never hangs paused: a short sound resumes (its late words still judge it), long speech cancels.
    (PauseExpired(speech_ms=700), True, Verdict.RESUME),
    (PauseExpired(speech_ms=0), False, Verdict.RESUME),
    (PauseExpired(speech_ms=1200), True, Verdict.CONFIRM),
    (PauseExpired(speech_ms=1500), False, Verdict.CONFIRM),
])
def test_judge(evidence, words_pending, verdict):
    assert POLICY.judge(evidence, words_pending=words_pending) is verdict


@pytest.mark.parametrize("text,count", [("Hello there.", 2), ("我想问", 2), ("一毫ester", 2), ("我呢", 1), ("", 0)])
def test_word_count(text, count):
    assert word_count(text) == count


@pytest.mark.parametrize("text,stops", [
    ("Stop!", True), ("wait a second", True), ("Hold on.", True), ("等一下，我说", True), ("不对", True),
    ("now", False), ("waiting room", False), ("对", False), ("I know", False),
])
def test_stop_phrases(text, stops):
    assert BargeInPolicy().asks_to_stop(text) is stops
