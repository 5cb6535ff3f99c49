import pytest

from streaming.turn_policy import MAX_SILENCE_MS_BY_EAGERNESS, SEMANTIC_VAD_STOP_MS, TurnPolicy


def test_server_vad_ends_at_vad_stop():
    policy = TurnPolicy(mode="server_vad")
    assert policy.vad_stop_ms(700) == 700
    assert policy.decide(None).ends_now


@pytest.mark.parametrize("probability,ends_now", [(0.9, True), (0.5, True), (0.2, False), (None, False)])
def test_semantic_vad_uses_the_model(probability, ends_now):
    policy = TurnPolicy(mode="semantic_vad", eagerness="auto")
    assert policy.vad_stop_ms(700) == SEMANTIC_VAD_STOP_MS
    decision = policy.decide(probability)
    assert decision.ends_now is ends_now
    if not ends_now:
        assert decision.wait_ms == MAX_SILENCE_MS_BY_EAGERNESS["auto"] - SEMANTIC_VAD_STOP_MS


def test_eagerness_orders_the_longest_wait():
    waits = [TurnPolicy(mode="semantic_vad", eagerness=e).decide(0.0).wait_ms for e in ("high", "medium", "low")]
    assert waits == sorted(waits) and waits[0] < waits[-1]
