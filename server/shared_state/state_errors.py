"""One error type for a shared-state service that cannot be reached, naming the service."""

from __future__ import annotations


class SharedStateError(RuntimeError):
    """Redis or PostgreSQL failed or did not answer in time. At start it stops ``tingshuo serve``;
    at run time the caller degrades (README "Scaling out" lists how) and tries again next time."""

    def __init__(self, service: str, url: str, reason: object) -> None:
        self.service = service
        super().__init__(f"{service} at {redacted_url(url)} is unavailable: {reason or type(reason).__name__}")


def redacted_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
