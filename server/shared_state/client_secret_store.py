"""Where client secrets live: this process (one worker) or Redis (any worker finds any secret).

A kiosk's back end mints a secret through one worker and its page connects through whichever
worker the front door picks, so in a fleet the secret must be in Redis. Redis keeps each one
under a hash of its value (a dump of Redis holds no usable secret) with the secret's own expiry
as the key's TTL: Redis forgets it when it expires, and nothing needs purging.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any, Protocol

from server.client_secrets import DEFAULT_TTL_S, MAX_TTL_S, ClientSecret, ClientSecretError, ClientSecrets
from server.shared_state.state_errors import SharedStateError


class ClientSecretStore(Protocol):
    async def mint(self, *, ttl_s: float = DEFAULT_TTL_S, session: dict[str, Any] | None = None,
                   user: str | None = None) -> ClientSecret: ...

    async def find(self, value: str) -> ClientSecret | None:
        """The live secret, or None; ``SharedStateError`` when the store cannot be asked."""
        ...


class LocalClientSecretStore:
    """The one-machine store: :class:`server.client_secrets.ClientSecrets` in this process."""

    def __init__(self, secrets_: ClientSecrets | None = None) -> None:
        self.secrets = secrets_ or ClientSecrets()

    async def mint(self, *, ttl_s: float = DEFAULT_TTL_S, session: dict[str, Any] | None = None,
                   user: str | None = None) -> ClientSecret:
        return self.secrets.mint(ttl_s=ttl_s, session=session, user=user)

    async def find(self, value: str) -> ClientSecret | None:
        return self.secrets.find(value)


class RedisClientSecretStore:
    def __init__(self, redis: Any, *, url: str, prefix: str = "tingshuo:secret:") -> None:
        self._redis = redis
        self._url = url
        self._prefix = prefix

    def _key(self, value: str) -> str:
        return self._prefix + hashlib.sha256(value.encode()).hexdigest()

    async def mint(self, *, ttl_s: float = DEFAULT_TTL_S, session: dict[str, Any] | None = None,
                   user: str | None = None) -> ClientSecret:
        if not 10 <= ttl_s <= MAX_TTL_S:
            raise ClientSecretError(f"expires_after.seconds must be between 10 and {MAX_TTL_S}")
        secret = ClientSecret(value="ek_" + secrets.token_urlsafe(24), expires_at=time.time() + ttl_s,
                              session=dict(session or {}), user=user)
        body = json.dumps({"expires_at": secret.expires_at, "session": secret.session, "user": user})
        await self._ask(self._redis.set(self._key(secret.value), body, px=int(ttl_s * 1000)))
        return secret

    async def find(self, value: str) -> ClientSecret | None:
        body = await self._ask(self._redis.get(self._key(value)))
        if body is None:
            return None
        stored = json.loads(body)
        if stored["expires_at"] <= time.time():
            return None
        return ClientSecret(value=value, expires_at=stored["expires_at"], session=stored["session"],
                            user=stored.get("user"))

    async def _ask(self, call: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await call
        except (RedisError, OSError, TimeoutError) as exc:
            raise SharedStateError("Redis", self._url, exc) from exc
