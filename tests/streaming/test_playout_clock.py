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


def _send_paced(clock: PlayoutClock, fake: FakeClock, frames: int, frame_ms: float = 40) -> None:
    """What the runner's sender does: wait out the lead, then send a frame."""
    for _ in range(frames):
        fake.now += clock.delay_before_send_s()
        clock.mark_sent(frame_ms)


def test_a_pause_counts_no_time_once_the_lead_has_drained():
    """Paused at the onset of speech: the client plays what it holds (the lead), then hears nothing.
    Played stops at what was sent; the time paused is never counted as played."""
    fake = FakeClock()
    clock = PlayoutClock(max_lead_ms=120, clock=fake)
    _send_paced(clock, fake, 25)  # 1 s sent
    paused_played = clock.played_ms()
    assert clock.sent_ms - paused_played <= 120 + 40  # the lead the client still holds
    fake.now += 0.05  # 50 ms into the pause: the client is still playing its buffer
    assert abs(clock.played_ms() - (paused_played + 50)) < 1e-6
    fake.now += 2.0  # a long pause: the buffer ran dry long ago
    assert clock.played_ms() == clock.sent_ms == 1000
    assert clock.remaining_ms() == 0
    assert clock.delay_before_send_s() == 0  # resume at once: the client is waiting
    # Resumed: playback restarts from the next frame, as if the pause had not happened.
    resumed_at = fake.now
    _send_paced(clock, fake, 10)
    fake.now += 0.1
    assert abs(clock.played_ms() - (1000 + (fake.now - resumed_at) * 1000)) < 1e-6
    fake.now += 10
    assert clock.played_ms() == clock.sent_ms == 1400


def test_a_pause_shorter_than_the_lead_is_no_gap():
    """A click: paused and resumed before the client's buffer ran dry; playback never stopped."""
    fake = FakeClock()
    clock = PlayoutClock(max_lead_ms=120, clock=fake)
    _send_paced(clock, fake, 25)
    start = fake.now - clock.played_ms() / 1000  # wall time at which playback began
    fake.now += 0.06  # paused 60 ms, less than the lead
    _send_paced(clock, fake, 5)
    assert abs(clock.played_ms() - (fake.now - start) * 1000) < 1e-6  # still continuous from the start
    assert clock.remaining_ms() <= 120 + 40


def test_truncation_during_a_pause_is_at_what_was_sent():
    """A barge-in confirmed a second into the pause cuts the answer at everything sent before it:
    the client played its whole buffer before falling silent."""
    fake = FakeClock()
    clock = PlayoutClock(max_lead_ms=120, clock=fake)
    _send_paced(clock, fake, 12)
    fake.now += 1.0
    assert clock.played_ms() == 480
