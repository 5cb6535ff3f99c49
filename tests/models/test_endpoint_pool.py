"""EndpointPool's choices and health, on a fake clock and a scripted probe (no network, no waiting):
least-loaded placement, stickiness, the LRU bound, a fall forgetting its conversations, the backoff
doubling to its cap and resetting after a success; and the real prober task, started and closed."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from models.endpoint_pool import EndpointPool, EndpointSnapshot, PoolParams

A, B, C = "http://a/v1", "http://b/v1", "http://c/v1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScriptedProbe:
    """Answers each probe from ``healthy``; records the URLs asked."""

    def __init__(self) -> None:
        self.healthy: set[str] = set()
        self.asked: list[str] = []
        self.called = asyncio.Event()

    async def __call__(self, url: str) -> bool:
        self.asked.append(url)
        self.called.set()
        return url in self.healthy


def make_pool(*urls: str, **params) -> tuple[EndpointPool, FakeClock, ScriptedProbe]:
    clock, probe = FakeClock(), ScriptedProbe()
    return EndpointPool(urls or (A, B), PoolParams(**params), clock=clock, probe=probe), clock, probe


def counts(pool: EndpointPool) -> dict[str, int]:
    return {s.url: s.conversations for s in pool.snapshot()}


def test_new_conversations_go_to_the_least_loaded_and_stay():
    pool, _, _ = make_pool(A, B, C)
    placed = {f"c{i}": pool.choose(f"c{i}") for i in range(6)}
    assert list(placed.values()) == [A, B, C, A, B, C]  # ties broken by list order
    assert counts(pool) == {A: 2, B: 2, C: 2}
    for _ in range(3):
        assert all(pool.choose(c) == url for c, url in placed.items())
    assert counts(pool) == {A: 2, B: 2, C: 2}


def test_ties_in_conversations_are_broken_by_requests_in_flight():
    pool, _, _ = make_pool(A, B)
    with pool.in_flight(A):
        assert pool.choose(None) == B
        assert pool.choose("x") == B  # both have 0 conversations; A is busy
    assert [s.in_flight for s in pool.snapshot()] == [0, 0]
    assert pool.choose("y") == A  # now A has fewer conversations


def test_a_request_without_a_conversation_is_placed_but_not_remembered():
    pool, _, _ = make_pool(A, B)
    pool.choose("x")  # on A
    assert pool.choose(None) == B  # fewer in flight is equal, A has more conversations
    assert counts(pool) == {A: 1, B: 0}


def test_the_least_recently_used_assignments_are_forgotten_beyond_the_bound():
    pool, _, _ = make_pool(A, B, max_conversations=3)
    for c in ("c0", "c1", "c2"):
        pool.choose(c)
    pool.choose("c0")  # refreshed: c1 is now the oldest
    pool.choose("c3")
    assert pool.assigned("c1") is None
    assert [pool.assigned(c) for c in ("c0", "c2", "c3")] == [A, A, B]
    assert counts(pool) == {A: 2, B: 1}  # c1 was on B
    for i in range(100):
        pool.choose(f"many{i}")
    assert sum(counts(pool).values()) == 3


def test_a_fall_moves_its_conversations_and_the_probe_brings_it_back():
    pool, clock, probe = make_pool(A, B)
    assert [pool.choose(c) for c in ("c0", "c1", "c2")] == [A, B, A]
    pool.mark_down(A, "ConnectionRefused")
    assert pool.snapshot() == (EndpointSnapshot(A, False, 0, 0), EndpointSnapshot(B, True, 1, 0))
    assert pool.choose("c0") == B and pool.choose("new") == B
    assert pool.choose(None, exclude=[B]) is None
    assert pool.down_reason(A) == "ConnectionRefused"
    probe.healthy.add(A)
    clock.now += 0.9
    asyncio.run(pool.probe_due())
    assert probe.asked == [] and not pool.snapshot()[0].healthy  # its backoff (1 s) has not passed
    clock.now += 0.1
    asyncio.run(pool.probe_due())
    assert probe.asked == [A] and pool.snapshot()[0].healthy
    assert pool.choose("c0") == B  # sticky where it moved
    assert pool.choose("later") == A  # the emptier endpoint again


def test_the_backoff_doubles_to_its_cap_and_resets_after_a_success():
    pool, clock, probe = make_pool(A, B, first_backoff_s=1.0, max_backoff_s=8.0)
    fell_at = clock.now
    pool.mark_down(A, "refused")
    probed_at = []
    for _ in range(80):  # 40 s in half-second steps; the probe fails every time
        clock.now += 0.5
        asked = len(probe.asked)
        asyncio.run(pool.probe_due())
        if len(probe.asked) > asked:
            probed_at.append(clock.now)
    times = [fell_at, *probed_at]
    assert [b - a for a, b in itertools.pairwise(times)][:6] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    probe.healthy.add(A)
    clock.now += 8.0
    asyncio.run(pool.probe_due())
    assert pool.snapshot()[0].healthy
    pool.mark_down(A, "refused")  # fell again without a success in between: still backing off
    assert pool._endpoints[A].next_probe_at - clock.now == 8.0
    clock.now += 8.0
    asyncio.run(pool.probe_due())
    pool.mark_ok(A)  # a request succeeded there
    pool.mark_down(A, "refused")
    assert pool._endpoints[A].next_probe_at - clock.now == 1.0


def test_a_second_report_of_the_same_fall_is_one_backoff_step():
    pool, clock, _ = make_pool(A, B)
    pool.mark_down(A, "refused")
    pool.mark_down(A, "reset")
    assert pool._endpoints[A].next_probe_at - clock.now == 1.0 and pool.down_reason(A) == "refused"


def test_an_endpoint_listed_twice_or_none_is_refused():
    with pytest.raises(ValueError, match="twice"):
        EndpointPool([A, A])
    with pytest.raises(ValueError):
        EndpointPool([])


async def test_the_prober_task_probes_a_fallen_endpoint_and_stops_with_the_pool():
    probe = ScriptedProbe()
    probe.healthy.add(A)
    pool = EndpointPool([A, B], PoolParams(first_backoff_s=0.01), probe=probe)
    pool.start()
    pool.start()  # idempotent
    try:
        pool.mark_down(A, "refused")
        await asyncio.wait_for(probe.called.wait(), 5)
        async with asyncio.timeout(5):
            while not pool.snapshot()[0].healthy:
                await asyncio.sleep(0.005)
        prober = pool._prober
    finally:
        await pool.aclose()
    assert prober is not None and prober.done() and pool._prober is None
    pool.start()  # closed: never restarts
    assert pool._prober is None
    await pool.aclose()  # idempotent


def test_an_ended_conversation_no_longer_loads_its_endpoint():
    pool, _, _ = make_pool(A, B)
    assert [pool.choose("c1"), pool.choose("c2"), pool.choose("c3")] == [A, B, A]
    pool.forget("c1")
    pool.forget("c3")
    pool.forget("never-seen")  # a session that asked nothing: nothing to forget
    assert counts(pool) == {A: 0, B: 1}
    assert pool.choose("c4") == A, "the endpoint whose conversations ended takes the next one"
