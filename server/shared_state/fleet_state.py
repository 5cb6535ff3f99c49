"""The worker's shared state, as ``state.backend`` chooses: local, or Redis (PostgreSQL for memory
is opened with the thinking services, ``server/thinking_services.py``).

Degradation with Redis down at run time (README "Scaling out"), each logged and counted in
``tingshuo_shared_state_errors_total{service="Redis"}``:
- a new session is admitted against this worker's own count of the client's sessions;
- a client secret cannot be looked up or minted: the connection gets an ``error`` event
  (``state_unavailable``) and closes 1013 (try again later); minting answers 503;
- sessions already open go on untouched; ``GET /v1/sessions`` lists this worker's alone.
Every call tries Redis again, and the heartbeat puts this worker's sessions back once it returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from server.config import Config
from server.shared_state.client_secret_store import (ClientSecretStore, LocalClientSecretStore,
                                                     RedisClientSecretStore)
from server.shared_state.session_registry import (HEARTBEAT_S, LocalSessionRegistry, RedisSessionRegistry,
                                                  SessionEntry)
from server.shared_state.state_errors import SharedStateError

log = logging.getLogger(__name__)


def worker_name(config: Config) -> str:
    return config.state.worker_id or f"{socket.gethostname()}:{config.server.port}:{os.getpid()}"


@dataclass
class FleetState:
    worker: str
    secrets: ClientSecretStore
    registry: LocalSessionRegistry | RedisSessionRegistry
    redis: Any | None = None
    on_error: Any = None
    """Called with the service's name when a call to it fails (the metric)."""
    _heartbeat: asyncio.Task | None = field(default=None, repr=False)

    @property
    def shared(self) -> bool:
        return self.redis is not None

    async def admit(self, entry: SessionEntry, *, limit: int) -> bool:
        """Whether the client may open one more session; a Redis failure falls back to this worker's count."""
        try:
            return await self.registry.admit(entry, limit=limit)
        except SharedStateError as exc:
            self.failed(exc)
            assert isinstance(self.registry, RedisSessionRegistry)
            if self.registry.local.count(entry.client) >= limit:
                return False
            self.registry.admit_locally(entry)
            return True

    async def release(self, entry: SessionEntry) -> None:
        try:
            await self.registry.release(entry)
        except SharedStateError as exc:  # its key expires by itself
            self.failed(exc)

    async def fleet(self) -> tuple[list[SessionEntry], bool]:
        """(the sessions, whether that is the whole fleet's)."""
        try:
            return await self.registry.fleet(), True
        except SharedStateError as exc:
            self.failed(exc)
            assert isinstance(self.registry, RedisSessionRegistry)
            return await self.registry.local.fleet(), False

    def failed(self, exc: SharedStateError) -> None:
        log.warning("%s", exc)
        if self.on_error is not None:
            self.on_error(exc.service)

    async def astart(self) -> None:
        if isinstance(self.registry, RedisSessionRegistry):
            self._heartbeat = asyncio.create_task(self._beat(self.registry), name="session-registry-heartbeat")

    async def _beat(self, registry: RedisSessionRegistry) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await registry.heartbeat()
            except SharedStateError as exc:
                self.failed(exc)

    async def aclose(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            self._heartbeat = None
        if self.redis is not None:
            await self.redis.aclose()


def local_fleet_state(config: Config) -> FleetState:
    return FleetState(worker=worker_name(config), secrets=LocalClientSecretStore(), registry=LocalSessionRegistry())


def redis_client(config: Config) -> Any:
    """Every call is bounded by ``state.call_timeout_s``: a hung Redis costs a session that long, once.
    A connection error is retried once, at once, on a new connection: after Redis restarts, every
    pooled connection is dead, and without the retry each one failed its next call (a session's
    release among them, which then counted for its client until its TTL)."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    timeout = config.state.call_timeout_s
    return aioredis.Redis.from_url(config.state.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                   decode_responses=True, retry_on_timeout=False,
                                   retry=Retry(NoBackoff(), 1), retry_on_error=[RedisConnectionError])


def redis_fleet_state(config: Config) -> FleetState:
    """Call on the server's event loop (the client belongs to it)."""
    client = redis_client(config)
    url = config.state.redis_url
    return FleetState(worker=worker_name(config), secrets=RedisClientSecretStore(client, url=url),
                      registry=RedisSessionRegistry(client, url=url), redis=client)


def check_state_services(config: Config, *, timeout_s: float = 5.0) -> None:
    """At start, before the models load: each configured service answers, or ``SharedStateError``
    names the one that does not (``tingshuo serve`` prints it and stops)."""
    if config.state.backend == "local":
        return
    for name, setting in (("Redis", "redis_url"), ("PostgreSQL", "postgres_url")):
        if not getattr(config.state, setting):
            raise SharedStateError(name, "(not set)", f"state.backend = {config.state.backend!r} needs state.{setting}")
    asyncio.run(_check(config, timeout_s))


async def _check(config: Config, timeout_s: float) -> None:
    import asyncpg

    client = redis_client(config)
    try:
        await asyncio.wait_for(client.ping(), timeout_s)
    except Exception as exc:  # noqa: BLE001 (any failure to answer a PING is "unavailable")
        raise SharedStateError("Redis", config.state.redis_url, exc) from exc
    finally:
        await client.aclose()
    try:
        conn = await asyncpg.connect(config.state.postgres_url, timeout=timeout_s)
        await conn.close()
    except Exception as exc:  # noqa: BLE001
        raise SharedStateError("PostgreSQL", config.state.postgres_url, exc) from exc
