"""Which sessions are open where: the per-client session limit, and the fleet's session list.

One worker counts its own sessions in memory. A fleet counts them in Redis, so
``server.max_sessions_per_client`` holds across every worker. Each open session is a key with a
short TTL that its worker refreshes (:meth:`RedisSessionRegistry.heartbeat`): a worker that is
killed leaves no session counted for longer than the TTL, and after Redis restarts empty the next
heartbeat puts every open session back. Admission is one Lua script, so two workers admitting the
same client's sessions at once cannot both take the last place.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from server.shared_state.state_errors import SharedStateError

SESSION_TTL_S = 30
"""A session whose worker stopped refreshing it is forgotten after this long."""
HEARTBEAT_S = 10.0


@dataclass(frozen=True, slots=True)
class SessionEntry:
    id: str
    worker: str
    client: str
    started_at: float


class SessionRegistry(Protocol):
    async def admit(self, entry: SessionEntry, *, limit: int) -> bool:
        """Registers the session unless its client already holds ``limit``; False: refused."""
        ...

    async def release(self, entry: SessionEntry) -> None: ...

    async def fleet(self) -> list[SessionEntry]:
        """Every open session the registry knows, on every worker."""
        ...


class LocalSessionRegistry:
    """This process's sessions; the fleet is this worker."""

    def __init__(self) -> None:
        self.entries: dict[str, SessionEntry] = {}

    def count(self, client: str) -> int:
        return sum(e.client == client for e in self.entries.values())

    async def admit(self, entry: SessionEntry, *, limit: int) -> bool:
        if self.count(entry.client) >= limit:
            return False
        self.entries[entry.id] = entry
        return True

    async def release(self, entry: SessionEntry) -> None:
        self.entries.pop(entry.id, None)

    async def fleet(self) -> list[SessionEntry]:
        return list(self.entries.values())


# KEYS: the client's set, the session's key, the registry set. ARGV: limit, session id, TTL (s),
# the entry's JSON, the session key prefix. Members whose key has expired (a killed worker's) are
# dropped before counting.
_ADMIT = """
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[5] .. member) == 0 then
    redis.call('SREM', KEYS[1], member)
    redis.call('SREM', KEYS[3], member)
  end
end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
redis.call('SET', KEYS[2], ARGV[4], 'EX', tonumber(ARGV[3]))
redis.call('SADD', KEYS[3], ARGV[2])
return 1
"""


class RedisSessionRegistry:
    """Redis-backed; the worker keeps a local copy of its own sessions to refresh and to fall back
    on. With Redis down, :meth:`admit` raises ``SharedStateError``: the caller then applies the limit
    to this worker's sessions alone (README "Scaling out": the documented degradation)."""

    def __init__(self, redis: Any, *, url: str, prefix: str = "tingshuo:") -> None:
        self._redis = redis
        self._url = url
        self._prefix = prefix
        self.local = LocalSessionRegistry()
        self._admit = redis.register_script(_ADMIT)

    def _client_key(self, client: str) -> str:
        return f"{self._prefix}client:{client}"

    def _session_key(self, session_id: str) -> str:
        return f"{self._prefix}session:{session_id}"

    @property
    def _registry_key(self) -> str:
        return f"{self._prefix}sessions"

    async def admit(self, entry: SessionEntry, *, limit: int) -> bool:
        keys = [self._client_key(entry.client), self._session_key(entry.id), self._registry_key]
        args = [limit, entry.id, SESSION_TTL_S, json.dumps(asdict(entry)), f"{self._prefix}session:"]
        admitted = bool(await self._ask(self._admit(keys=keys, args=args)))
        if admitted:
            self.local.entries[entry.id] = entry
        return admitted

    def admit_locally(self, entry: SessionEntry) -> None:
        """Redis was down at admission: the session is this worker's alone until a heartbeat registers it."""
        self.local.entries[entry.id] = entry

    async def release(self, entry: SessionEntry) -> None:
        self.local.entries.pop(entry.id, None)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._session_key(entry.id))
        pipe.srem(self._client_key(entry.client), entry.id)
        pipe.srem(self._registry_key, entry.id)
        await self._ask(pipe.execute())

    async def heartbeat(self) -> None:
        """Refreshes this worker's sessions (and registers them again after Redis lost them)."""
        entries = list(self.local.entries.values())
        if not entries:
            return
        pipe = self._redis.pipeline(transaction=False)
        for entry in entries:
            pipe.set(self._session_key(entry.id), json.dumps(asdict(entry)), ex=SESSION_TTL_S)
            pipe.sadd(self._client_key(entry.client), entry.id)
            pipe.expire(self._client_key(entry.client), SESSION_TTL_S * 2)
            pipe.sadd(self._registry_key, entry.id)
        await self._ask(pipe.execute())
        # A session released while the refresh was on its way (a reconnect after Redis came back can
        # take that long) was written back by it: release it again, or it would count for a TTL.
        for entry in entries:
            if entry.id not in self.local.entries:
                await self.release(entry)

    async def fleet(self) -> list[SessionEntry]:
        ids = sorted(await self._ask(self._redis.smembers(self._registry_key)))
        if not ids:
            return []
        bodies = await self._ask(self._redis.mget([self._session_key(i) for i in ids]))
        entries = [SessionEntry(**json.loads(body)) for body in bodies if body is not None]
        if gone := [i for i, body in zip(ids, bodies) if body is None]:
            await self._ask(self._redis.srem(self._registry_key, *gone))
        return entries

    async def _ask(self, call: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await call
        except (RedisError, OSError, TimeoutError) as exc:
            raise SharedStateError("Redis", self._url, exc) from exc
