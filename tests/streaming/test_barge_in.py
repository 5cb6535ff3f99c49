import pytest

from streaming.barge_in import (
    BargeInPolicy,
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
    ("yeah " * 7, False),  # a long run is talk, not a nod
])
def test_backchannels(text, is_backchannel):
    assert BargeInPolicy().is_backchannel(text) is is_backchannel


POLICY = BargeInPolicy(params=InterruptionParams(confirm_speech_ms=1200, max_pause_ms=3000))


@pytest.mark.parametrize("evidence,turn_started,verdict", [
    (OnsetWithdrawn(), False, Verdict.RESUME),  # a click: the answer goes on
    (OnsetWithdrawn(), True, Verdict.WAIT),  # a turn began: its words decide
    (SpeechLasted(600), True, Verdict.WAIT),  # as long as an "uh-huh"
    (SpeechLasted(1200), True, Verdict.CONFIRM),  # longer than any backchannel
    (WordsHeard("Uh-huh."), True, Verdict.RESUME),
    (WordsHeard(""), True, Verdict.RESUME),  # noise the VAD took for speech: no words
    (WordsHeard("嗯"), True, Verdict.RESUME),
    (WordsHeard("Stop, what about Paris?"), True, Verdict.CONFIRM),
    (WordsHeard("等一下"), True, Verdict.CONFIRM),
    (PauseExpired(), True, Verdict.CONFIRM),  # never hangs paused
    (PauseExpired(), False, Verdict.CONFIRM),
])
def test_judge(evidence, turn_started, verdict):
    assert POLICY.judge(evidence, turn_started=turn_started) is verdict
