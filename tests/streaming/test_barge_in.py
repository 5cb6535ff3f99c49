import pytest

from streaming.barge_in import BargeInPolicy


@pytest.mark.parametrize("text,is_backchannel", [
    ("Mm-hm.", True), ("uh huh", True), ("Okay!", True), ("嗯。", True), ("好的", True), ("", True),
    ("Wait, stop.", False), ("What about Germany?", False), ("不对，我问的是上海", False),
])
def test_backchannels(text, is_backchannel):
    assert BargeInPolicy().is_backchannel(text) is is_backchannel
