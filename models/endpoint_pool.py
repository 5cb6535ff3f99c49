"""Several OpenAI-compatible servers serving one model: which one a conversation goes to, and which are up.

Each conversation is kept on one endpoint (sticky) because its growing prompt is cached there
(vLLM's prefix cache, llama-server's slots): moving it costs a full re-read of the prompt. A new
conversation goes to the healthy endpoint with the fewest conversations (ties: fewest requests in
flight, then list order), which spreads the caches evenly. The assignments are an LRU of bounded
size: a server that runs for months must not remember every session it ever saw.

Health is learned from traffic, not polled: a request that cannot reach an endpoint (connection
refused or reset, connect timeout, HTTP 502/503/504 before any token) marks it down. Its
conversations are forgotten at once (each moves to another endpoint at its next request, and the
counts stay true for new ones). A background probe, owned by the pool (:meth:`EndpointPool.start`,
:meth:`EndpointPool.aclose`), asks a down endpoint ``GET /health`` (else ``/v1/models``) after a
backoff of 1 s, doubling to 30 s while it keeps failing, and brings it back on a 2xx. The backoff
returns to its first step only once a request succeeds there, so an endpoint that answers its
probe but fails every request is not hammered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass

import aiohttp

log = logging.getLogger(__name__)

Probe = Callable[[str], Awaitable[bool]]
"""``await probe(url)``: True when the endpoint at ``url`` can take requests."""


@dataclass(frozen=True, slots=True)
class PoolParams:
    max_conversations: int = 4096
    """Conversation assignments remembered; the least recently used beyond this are forgotten."""
    first_backoff_s: float = 1.0
    """A down endpoint's first probe comes this long after it went down."""
    max_backoff_s: float = 30.0
    """The delay between probes doubles while they fail, up to this."""
    probe_timeout_s: float = 2.0
    """A probe that takes longer counts as failed: a healthy server answers /health in milliseconds."""


@dataclass(frozen=True, slots=True)
class EndpointSnapshot:
    """One endpoint as metrics and /readyz show it."""

    url: str
    healthy: bool
    conversations: int
    in_flight: int


@dataclass(slots=True)
class _Endpoint:
    url: str
    index: int
    healthy: bool = True
    conversations: int = 0
    in_flight: int = 0
    next_probe_at: float = 0.0
    """While down: when the prober asks it next (the pool's clock)."""
    backoff_s: float = 0.0
    """The delay before the next probe after this one fails (or after the next fall)."""
    reason: str = ""
    """Why it went down (for logs and the all-down error)."""


class EndpointPool:
    """Chooses an endpoint per conversation and tracks their health. Everything but the probe
    runs synchronously on the event loop, so no locks are needed."""

    def __init__(self, urls: Sequence[str], params: PoolParams = PoolParams(), *,
                 clock: Callable[[], float] = time.monotonic, probe: Probe | None = None,
                 api_key: str = "") -> None:
        """``clock`` and ``probe`` are for tests; the default probe uses ``api_key`` for ``/v1/models``."""
        if not urls:
            raise ValueError("an endpoint pool needs at least one endpoint")
        if len(set(urls)) != len(urls):
            raise ValueError(f"an endpoint is listed twice: {list(urls)}")
        self.params = params
        self._clock = clock
        self._probe = probe or self._http_probe
        self._api_key = api_key
        self._endpoints = {url: _Endpoint(url, i, backoff_s=params.first_backoff_s) for i, url in enumerate(urls)}
        self._assigned: OrderedDict[str, str] = OrderedDict()  # conversation -> url, oldest first
        self._wake = asyncio.Event()
        self._prober: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._closed = False

    # -- choice -------------------------------------------------------------------------
    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(self._endpoints)

    @property
    def any_healthy(self) -> bool:
        return any(e.healthy for e in self._endpoints.values())

    def assigned(self, conversation: str) -> str | None:
        """The endpoint the conversation is kept on, if it is remembered (does not refresh its LRU place)."""
        return self._assigned.get(conversation)

    def choose(self, conversation: str | None, *, exclude: Collection[str] = ()) -> str | None:
        """The endpoint for the conversation's next request; None when no healthy one is left
        outside ``exclude`` (the ones this request already tried)."""
        if conversation is not None and (url := self._assigned.get(conversation)) is not None:
            endpoint = self._endpoints[url]
            if endpoint.healthy and url not in exclude:
                self._assigned.move_to_end(conversation)
                return url
            self._unassign(conversation)
        candidates = [e for e in self._endpoints.values() if e.healthy and e.url not in exclude]
        if not candidates:
            return None
        if conversation is None:
            # No cache to keep: what matters is the work running there now.
            return min(candidates, key=lambda e: (e.in_flight, e.conversations, e.index)).url
        best = min(candidates, key=lambda e: (e.conversations, e.in_flight, e.index))
        self._assigned[conversation] = best.url
        best.conversations += 1
        if len(self._assigned) > self.params.max_conversations:
            self._unassign(next(iter(self._assigned)))
        return best.url

    def forget(self, conversation: str) -> None:
        """The conversation ended: it no longer counts towards its endpoint's load."""
        if conversation in self._assigned:
            self._unassign(conversation)

    def _unassign(self, conversation: str) -> None:
        url = self._assigned.pop(conversation)
        self._endpoints[url].conversations -= 1

    @contextlib.contextmanager
    def in_flight(self, url: str) -> Iterator[None]:
        """Counts a request running on ``url`` for as long as the block runs."""
        endpoint = self._endpoints[url]
        endpoint.in_flight += 1
        try:
            yield
        finally:
            endpoint.in_flight -= 1

    # -- health -------------------------------------------------------------------------
    def mark_down(self, url: str, reason: str) -> None:
        """A request could not reach ``url``: no new work goes there until a probe succeeds."""
        endpoint = self._endpoints[url]
        if not endpoint.healthy:
            return  # another request saw the same fall: one backoff step per fall
        endpoint.healthy = False
        endpoint.reason = reason
        self._schedule_probe(endpoint)
        for conversation in [c for c, u in self._assigned.items() if u == url]:
            self._unassign(conversation)
        log.warning("LLM endpoint %s is down (%s); next probe in %.1f s", url, reason,
                    endpoint.next_probe_at - self._clock())
        self._wake.set()

    def mark_ok(self, url: str) -> None:
        """A request succeeded on ``url``: its next fall starts the backoff from the first step."""
        self._endpoints[url].backoff_s = self.params.first_backoff_s

    def down_reason(self, url: str) -> str:
        return self._endpoints[url].reason

    def _schedule_probe(self, endpoint: _Endpoint) -> None:
        endpoint.next_probe_at = self._clock() + endpoint.backoff_s
        endpoint.backoff_s = min(endpoint.backoff_s * 2, self.params.max_backoff_s)

    async def probe_due(self) -> None:
        """Probes, concurrently, every down endpoint whose backoff has passed; a 2xx brings it back."""
        now = self._clock()
        due = [e for e in self._endpoints.values() if not e.healthy and e.next_probe_at <= now]
        results = await asyncio.gather(*(self._probe(e.url) for e in due), return_exceptions=True)
        for endpoint, result in zip(due, results):
            if endpoint.healthy:
                continue
            if result is True:
                endpoint.healthy = True
                endpoint.reason = ""
                log.info("LLM endpoint %s is back", endpoint.url)
            else:
                if isinstance(result, BaseException):
                    log.warning("probing LLM endpoint %s failed: %r", endpoint.url, result)
                self._schedule_probe(endpoint)

    def _seconds_to_next_probe(self) -> float | None:
        due = [e.next_probe_at for e in self._endpoints.values() if not e.healthy]
        return max(0.0, min(due) - self._clock()) if due else None

    async def _probe_loop(self) -> None:
        while True:
            self._wake.clear()
            await self.probe_due()
            # Sleeps until the next probe is due, or until a fall wakes it (None: nothing is down).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._seconds_to_next_probe())

    async def _http_probe(self, url: str) -> bool:
        """``GET /health`` on the server's root (vLLM and llama-server both have it); a server without
        one (404, 405, 501) is asked ``GET /v1/models`` instead. Only a 2xx counts as healthy."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.params.probe_timeout_s))
        base = url.rstrip("/")
        root, models = (base[: -len("/v1")], base + "/models") if base.endswith("/v1") else (base, base + "/v1/models")
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            async with self._http.get(root + "/health") as response:
                if response.status not in (404, 405, 501):
                    return 200 <= response.status < 300
            async with self._http.get(models, headers=headers) as response:
                return 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError):
            return False

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Starts the prober (idempotent, on the event loop); a no-op once closed."""
        if self._prober is None and not self._closed:
            self._prober = asyncio.get_running_loop().create_task(self._probe_loop(), name="llm-endpoint-probe")

    async def aclose(self) -> None:
        """Stops the prober and closes its HTTP session. Idempotent."""
        self._closed = True
        prober, self._prober = self._prober, None
        if prober is not None:
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def closed(self) -> bool:
        return self._closed

    def snapshot(self) -> tuple[EndpointSnapshot, ...]:
        return tuple(EndpointSnapshot(e.url, e.healthy, e.conversations, e.in_flight)
                     for e in self._endpoints.values())
