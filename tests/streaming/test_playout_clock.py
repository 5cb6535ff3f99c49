from streaming.playout_clock import PlayoutClock


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_lead_is_bounded_and_played_follows_wall_time():
    fake = FakeClock()
    clock = PlayoutClock(max_lead_ms=200, clock=fake)
    assert clock.delay_before_send_s() == 0
    for _ in range(5):
        clock.mark_sent(40)
    assert clock.sent_ms == 200
    assert clock.delay_before_send_s() == 0  # exactly at the lead
    clock.mark_sent(40)
    assert abs(clock.delay_before_send_s() - 0.04) < 1e-9
    fake.now += 0.1
    assert abs(clock.played_ms() - 100) < 1e-6
    assert abs(clock.remaining_ms() - 140) < 1e-6


def test_underrun_restarts_playback_from_the_new_frame():
    fake = FakeClock()
    clock = PlayoutClock(max_lead_ms=200, clock=fake)
    clock.mark_sent(100)
    fake.now += 1.0  # the client played 100 ms, then sat idle for 900 ms
    assert clock.played_ms() == 100
    clock.mark_sent(100)
    fake.now += 0.05
    assert abs(clock.played_ms() - 150) < 1e-6
