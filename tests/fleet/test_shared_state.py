"""The shared-state back ends against real Redis and PostgreSQL servers (Debian's, started here):
what two workers share, and what happens while a service is down and after it comes back."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from server.config import Config, StateSection
from server.shared_state.fleet_state import FleetState, check_state_services, redis_fleet_state
from server.shared_state.postgres_memory import PostgresUserMemory
from server.shared_state.session_registry import SESSION_TTL_S, SessionEntry
from server.shared_state.state_errors import SharedStateError
from tests.fleet.services import PostgresServer, RedisServer
from thinking.user_memory import MemoryStoreError


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def fleet_config(redis_url: str, postgres_url: str, worker: str = "w1") -> Config:
    return dataclasses.replace(Config(), state=StateSection(backend="redis+postgres", redis_url=redis_url,
                                                            postgres_url=postgres_url, worker_id=worker))


def entry(session: str, client: str = "203.0.113.7", worker: str = "w1") -> SessionEntry:
    return SessionEntry(id=session, worker=worker, client=client, started_at=time.time())


# -- PostgreSQL: user memory -----------------------------------------------------------------

def test_two_workers_share_one_users_memory_and_migrations_run_once(postgres):
    first = PostgresUserMemory(url=postgres.url)
    second = PostgresUserMemory(url=postgres.url)
    try:
        applied = first.open()
        assert second.open() == [], "the second worker finds the schema already there"
        assert applied in ([1, 2], []), applied
        first.remember("anna", "My daughter's name is Mei")
        first.remember("anna", "my daughter's name is mei.")  # the same fact, refreshed
        second.remember("anna", "我最喜欢的茶是龙井")
        second.add_summary("anna", "We talked about tea in Hangzhou.", "sess_1")
        recalled = first.recall("anna")
        assert [f.text for f in recalled.facts] == ["我最喜欢的茶是龙井", "my daughter's name is mei."]
        assert [s.text for s in recalled.summaries] == ["We talked about tea in Hangzhou."]
        assert [f.text for f in second.relevant("anna", "what is my daughter called, her name?")][0].startswith("my")
        assert first.forget("anna", "龙井") == 1
        assert [f.text for f in second.facts("anna")] == ["my daughter's name is mei."]
        assert second.export("anna")["summaries"][0]["session_id"] == "sess_1"
        assert first.delete_user("anna") == 2
        assert second.recall("anna").facts == ()
    finally:
        first.close()
        second.close()


def test_the_oldest_facts_go_beyond_the_limit(postgres):
    from thinking.user_memory import MemoryParams

    memory = PostgresUserMemory(url=postgres.url, params=MemoryParams(max_facts_per_user=3))
    memory.open()
    try:
        for n in range(5):
            memory.remember("bounded", f"fact number {n}")
        assert [f.text for f in memory.facts("bounded")] == ["fact number 4", "fact number 3", "fact number 2"]
    finally:
        memory.delete_user("bounded")
        memory.close()


def test_memory_fails_while_postgres_is_down_and_comes_back_with_it(postgres):
    memory = PostgresUserMemory(url=postgres.url, call_timeout_s=2.0)
    memory.open()
    try:
        memory.remember("bo", "I park on level 3")
        postgres.stop()
        with pytest.raises(MemoryStoreError, match="PostgreSQL at postgresql://tingshuo:\\*\\*\\*@"):
            memory.remember("bo", "I am allergic to peanuts")
        with pytest.raises(MemoryStoreError):
            memory.recall("bo")
        postgres.start()
        memory.remember("bo", "I am allergic to peanuts")
        assert [f.text for f in memory.facts("bo")] == ["I am allergic to peanuts", "I park on level 3"]
    finally:
        if not postgres.running:
            postgres.start()
        memory.delete_user("bo")
        memory.close()


def test_a_database_with_a_newer_schema_is_refused(postgres):
    import asyncpg

    async def add_future_migration(sql: str) -> None:
        conn = await asyncpg.connect(postgres.url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    memory = PostgresUserMemory(url=postgres.url)
    memory.open()
    memory.close()
    asyncio.run(add_future_migration("INSERT INTO tingshuo_schema (version, description) VALUES (999, 'future')"))
    try:
        with pytest.raises(MemoryStoreError, match="999"):
            PostgresUserMemory(url=postgres.url).open()
    finally:
        asyncio.run(add_future_migration("DELETE FROM tingshuo_schema WHERE version = 999"))


def test_an_unreachable_service_at_start_is_named(postgres, redis_server):
    from tests.fleet.services import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(SharedStateError, match=r"Redis at redis://127\.0\.0\.1:\d+/0 is unavailable"):
        check_state_services(fleet_config(dead, postgres.url), timeout_s=2)
    dead_pg = f"postgresql://tingshuo:secret@127.0.0.1:{free_port()}/tingshuo"
    with pytest.raises(SharedStateError, match=r"PostgreSQL at postgresql://tingshuo:\*\*\*@127\.0\.0\.1"):
        check_state_services(fleet_config(redis_server.url, dead_pg), timeout_s=2)
    with pytest.raises(SharedStateError, match="needs state.redis_url"):
        check_state_services(fleet_config("", postgres.url))
    check_state_services(fleet_config(redis_server.url, postgres.url))


# -- Redis: client secrets and the session registry ---------------------------------------------

async def two_workers(redis_server) -> tuple[FleetState, FleetState]:
    return (redis_fleet_state(fleet_config(redis_server.url, "", "w1")),
            redis_fleet_state(fleet_config(redis_server.url, "", "w2")))


async def test_a_secret_minted_by_one_worker_is_found_by_the_other_until_it_expires(redis_server):
    a, b = await two_workers(redis_server)
    try:
        secret = await a.secrets.mint(ttl_s=10, session={"voice": "zh"}, user="kiosk-7")
        found = await b.secrets.find(secret.value)
        assert found is not None and found.session == {"voice": "zh"} and found.user == "kiosk-7"
        assert await b.secrets.find(secret.value + "x") is None
        keys = await a.redis.keys("tingshuo:secret:*")
        assert keys and all(secret.value not in k for k in keys), "Redis holds a hash, not the secret"
        ttl_ms = await a.redis.pttl(keys[0])
        assert 0 < ttl_ms <= 10_000, "Redis forgets it when it expires"
    finally:
        await a.aclose()
        await b.aclose()


async def test_the_per_client_limit_holds_across_workers_even_when_they_race(redis_server):
    a, b = await two_workers(redis_server)
    try:
        results = await asyncio.gather(*(w.admit(entry(f"race{i}", client="198.51.100.1", worker=w.worker), limit=3)
                                         for i, w in enumerate([a, b] * 5)))
        assert sum(results) == 3, "ten concurrent admissions through two workers, three places"
        fleet, complete = await b.fleet()
        assert complete and {e.id for e in fleet} >= {f"race{i}" for i, ok in enumerate(results) if ok}
        admitted = [f"race{i}" for i, ok in enumerate(results) if ok]
        owner = {f"race{i}": w for i, w in enumerate([a, b] * 5)}
        await owner[admitted[0]].release(entry(admitted[0], client="198.51.100.1"))
        assert await b.admit(entry("after", client="198.51.100.1", worker="w2"), limit=3)
        assert not await a.admit(entry("one-too-many", client="198.51.100.1"), limit=3)
        assert await a.admit(entry("other-client", client="198.51.100.2"), limit=3)
    finally:
        await a.redis.flushdb()
        await a.aclose()
        await b.aclose()


async def test_a_killed_workers_sessions_stop_counting_after_their_ttl(redis_server):
    a, b = await two_workers(redis_server)
    try:
        assert await a.admit(entry("ghost", client="192.0.2.50"), limit=1)
        await a.redis.expire("tingshuo:session:ghost", 1)  # as if its worker stopped refreshing it
        assert not await b.admit(entry("blocked", client="192.0.2.50", worker="w2"), limit=1)
        deadline = time.monotonic() + 5
        while await a.redis.exists("tingshuo:session:ghost") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await b.admit(entry("next", client="192.0.2.50", worker="w2"), limit=1)
        assert SESSION_TTL_S <= 60
    finally:
        await a.redis.flushdb()
        await a.aclose()
        await b.aclose()


async def test_with_redis_down_sessions_are_counted_per_worker_and_come_back_after_it(redis_server):
    errors: list[str] = []
    a, b = await two_workers(redis_server)
    a.on_error = errors.append
    try:
        assert await a.admit(entry("before", client="192.0.2.9"), limit=2)
        redis_server.stop()
        assert await a.admit(entry("during", client="192.0.2.9"), limit=2), "this worker's own count: 1 < 2"
        assert not await a.admit(entry("third", client="192.0.2.9"), limit=2), "this worker's own count is 2"
        fleet, complete = await a.fleet()
        assert not complete and {e.id for e in fleet} == {"before", "during"}
        with pytest.raises(SharedStateError, match="Redis at redis://127.0.0.1"):
            await a.secrets.mint()
        assert errors and set(errors) == {"Redis"}
        redis_server.start()  # empty: it keeps nothing on disk
        await a.registry.heartbeat()
        fleet, complete = await b.fleet()
        assert complete and {e.id for e in fleet} == {"before", "during"}, "the heartbeat put them back"
        assert not await b.admit(entry("elsewhere", client="192.0.2.9", worker="w2"), limit=2)
        secret = await a.secrets.mint()
        assert await b.secrets.find(secret.value) is not None
    finally:
        if not redis_server.running:
            redis_server.start()
        await a.aclose()
        await b.aclose()


async def test_a_session_released_while_a_heartbeat_is_on_its_way_is_not_written_back(redis_server):
    a, _ = await two_workers(redis_server)
    real_pipeline, held = a.registry._redis.pipeline, asyncio.Event()

    class HeldPipeline:
        """The heartbeat's pipeline, held until the release has gone through (as a slow reconnect would)."""

        def __init__(self, pipe) -> None:
            self.pipe = pipe

        def __getattr__(self, name):
            return getattr(self.pipe, name)

        async def execute(self):
            await held.wait()
            return await self.pipe.execute()

    try:
        gone = entry("released-mid-beat", client="192.0.2.77")
        assert await a.admit(gone, limit=1)
        a.registry._redis.pipeline = lambda **kw: HeldPipeline(real_pipeline(**kw))
        beat = asyncio.create_task(a.registry.heartbeat())  # takes its snapshot, then waits
        await asyncio.sleep(0.05)
        a.registry._redis.pipeline = real_pipeline
        await a.release(gone)
        assert not await a.redis.exists("tingshuo:session:released-mid-beat")
        held.set()
        await beat
        assert not await a.redis.exists("tingshuo:session:released-mid-beat"), "written back by the late beat"
        assert await a.admit(entry("next", client="192.0.2.77"), limit=1), "the client's one place is free"
    finally:
        a.registry._redis.pipeline = real_pipeline
        await a.redis.flushdb()
        await a.aclose()


def test_serve_stops_at_once_naming_the_service_it_cannot_reach(postgres, redis_server):
    import subprocess
    import sys

    from tests.e2e.conftest import REPO
    from tests.fleet.services import free_port

    def serve(redis_url: str, postgres_url: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tingshuo", "serve", "--set", "state.backend=redis+postgres",
                               "--set", f"state.redis_url={redis_url}", "--set", f"state.postgres_url={postgres_url}",
                               "--set", f"server.port={free_port()}"],
                              cwd=REPO, capture_output=True, text=True, timeout=120)

    no_redis = serve(f"redis://127.0.0.1:{free_port()}/0", postgres.url)
    assert no_redis.returncode == 2 and "cannot start: Redis at redis://127.0.0.1:" in no_redis.stderr, no_redis.stderr
    no_postgres = serve(redis_server.url, f"postgresql://tingshuo:hunter2@127.0.0.1:{free_port()}/tingshuo")
    assert no_postgres.returncode == 2 and "PostgreSQL at postgresql://tingshuo:***@" in no_postgres.stderr
    assert "hunter2" not in no_postgres.stderr + no_postgres.stdout
    assert "loaded" not in no_redis.stderr, "it stopped before any model loaded (engines log \"loaded X in N s\")"


async def test_after_redis_restarts_the_first_calls_on_old_connections_go_through(redis_server):
    a, _ = await two_workers(redis_server)
    try:
        sessions = [entry(f"pooled-{i}", client="192.0.2.88") for i in range(3)]
        # Several calls at once, so the pool holds several connections, all dead after the restart.
        assert all(await asyncio.gather(*(a.admit(s, limit=5) for s in sessions)))
        redis_server.restart()  # empty: nothing on disk
        assert await a.admit(entry("after-restart", client="192.0.2.88"), limit=5)
        errors: list[str] = []
        a.on_error = errors.append
        await asyncio.gather(*(a.release(s) for s in sessions))
        await a.release(entry("after-restart", client="192.0.2.88"))
        assert errors == [], "a release on a pooled connection from before the restart failed"
        assert await a.redis.scard("tingshuo:client:192.0.2.88") == 0
        secret = await a.secrets.mint()
        assert await a.secrets.find(secret.value) is not None
    finally:
        if not redis_server.running:
            redis_server.start()
        await a.redis.flushdb()
        await a.aclose()
