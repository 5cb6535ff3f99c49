"""Short-lived client secrets, so a browser never holds the long-lived API key.

``POST /v1/realtime/client_secrets`` (as in OpenAI's Realtime API) mints one for a caller that
holds the API key: a kiosk's back end asks for one per visitor and hands it to the page, which
presents it like a key (the ``openai-insecure-api-key.`` subprotocol). A secret works until it
expires and may carry session settings (instructions, voice...) that every session it opens
starts with, so a page cannot drop the persona its operator pinned.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TTL_S = 600
MAX_TTL_S = 7200
MAX_LIVE_SECRETS = 10_000
"""Bounded: minting more evicts the ones closest to expiry."""


class ClientSecretError(ValueError):
    pass


@dataclass(frozen=True)
class ClientSecret:
    value: str
    expires_at: float
    session: dict[str, Any]
    user: str | None = None
    """Whose long-term memory sessions opened with it may use: set by the backend that minted
    it (tingshuo extension ``"user"`` in the request body), never chosen by the browser."""


@dataclass
class ClientSecrets:
    secrets: dict[str, ClientSecret] = field(default_factory=dict)

    def mint(self, *, ttl_s: float = DEFAULT_TTL_S, session: dict[str, Any] | None = None,
             now: float | None = None, user: str | None = None) -> ClientSecret:
        if not 10 <= ttl_s <= MAX_TTL_S:
            raise ClientSecretError(f"expires_after.seconds must be between 10 and {MAX_TTL_S}")
        now = time.time() if now is None else now
        self._purge(now)
        if len(self.secrets) >= MAX_LIVE_SECRETS:
            oldest = min(self.secrets.values(), key=lambda s: s.expires_at)
            del self.secrets[oldest.value]
        secret = ClientSecret(value="ek_" + secrets.token_urlsafe(24), expires_at=now + ttl_s,
                              session=dict(session or {}), user=user)
        self.secrets[secret.value] = secret
        return secret

    def find(self, value: str, *, now: float | None = None) -> ClientSecret | None:
        """The live secret with this value; compared in constant time per candidate."""
        now = time.time() if now is None else now
        secret = self.secrets.get(value)
        if secret is None or not hmac.compare_digest(secret.value, value):
            return None
        if secret.expires_at <= now:
            del self.secrets[value]
            return None
        return secret

    def _purge(self, now: float) -> None:
        for value in [v for v, s in self.secrets.items() if s.expires_at <= now]:
            del self.secrets[value]
