from streaming.audio_rate_limit import AudioRateLimit


def test_real_time_audio_is_never_refused():
    limit = AudioRateLimit(max_speed=2.0, burst_s=5.0)
    assert all(limit.take(0.02, now=i * 0.02) for i in range(10_000))  # 200 s of 20 ms frames


def test_a_burst_is_allowed_then_the_rate_holds():
    limit = AudioRateLimit(max_speed=2.0, burst_s=5.0)
    assert limit.take(5.0, now=0.0)
    assert not limit.take(0.1, now=0.0)  # the bucket is empty
    assert limit.take(1.0, now=0.5)  # half a second refills one second at 2x
    assert not limit.take(0.5, now=0.5)
    refused = sum(not limit.take(1.0, now=1.0 + i * 0.1) for i in range(100))  # 10 s/s offered for 10 s
    assert 75 <= refused <= 85  # about 2 of every 10 seconds get through
