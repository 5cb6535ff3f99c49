"""One chat model over several OpenAI-compatible servers serving the same model, with fail-over.

Each request goes where :class:`models.endpoint_pool.EndpointPool` says (the conversation's own
endpoint, where its prompt is cached). If that endpoint cannot be reached before the first piece
of the answer arrives, it is marked down and the same request goes to the next best healthy one,
each endpoint at most once per request: the user hears the answer a little later, never an error.
Once a piece has been yielded, an error propagates: the answer cannot be replayed from another
server without saying its beginning twice.

Closing the iterator (barge-in) closes the underlying HTTP stream at once, which the server
treats as an abort, and releases the endpoint's in-flight count.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing

import aiohttp

from models.endpoint_pool import EndpointPool, EndpointSnapshot, PoolParams
from models.interfaces import ChatMessage, GenerationParams, ToolCall
from models.openai_chat import ChatEndpointError, OpenAIChatModel, OpenAIChatParams

log = logging.getLogger(__name__)

UNAVAILABLE_STATUSES = frozenset({502, 503, 504})
"""A proxy without a backend, a server loading or overloaded: another server may answer. Other
statuses (400: a bad request, 500: the model failed) would fail the same way everywhere."""
_STATUS = re.compile(r"answered HTTP (\d{3})")


def _unreachable(exc: BaseException) -> str | None:
    """Why the endpoint could not serve the request, when another endpoint might; None otherwise."""
    if isinstance(exc, aiohttp.ClientConnectionError):  # refused, reset, connect timeout
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ClientPayloadError):  # the server died after its headers
        return f"stream broken: {exc}"
    if isinstance(exc, ChatEndpointError):
        # openai_chat reports the status only in its message ("answered HTTP 503: ...").
        status = getattr(exc, "status", None)
        if status is None and (match := _STATUS.search(str(exc))):
            status = int(match.group(1))
        if status in UNAVAILABLE_STATUSES:
            return f"HTTP {status}"
    return None


class PooledChatModel:
    """A :class:`models.interfaces.ChatModel`; :meth:`astart` with the event loop (the prober),
    :meth:`aclose` at shutdown."""

    def __init__(self, urls: Sequence[str], *, model: str, api_key: str = "",
                 pool: PoolParams | None = None, connect_timeout_s: float = 3.0) -> None:
        """``connect_timeout_s`` is shorter than a lone endpoint's 10 s: a live server accepts in
        milliseconds even when busy, and a dead host that drops packets (no reset) would otherwise
        hold the answer that long before it fails over."""
        self.pool = EndpointPool(urls, pool or PoolParams(), api_key=api_key)
        self._models = {url: OpenAIChatModel(params=OpenAIChatParams(
            base_url=url, model=model, api_key=api_key, connect_timeout_s=connect_timeout_s)) for url in urls}

    @property
    def ready(self) -> bool:
        """Some endpoint can take requests (``/readyz`` says not ready while none can)."""
        return self.pool.any_healthy

    def endpoints(self) -> tuple[EndpointSnapshot, ...]:
        """Each endpoint's health, conversations and requests in flight, for metrics and /readyz."""
        return self.pool.snapshot()

    def end_conversation(self, conversation: str) -> None:
        """Called when a session closes, so least-loaded counts only conversations still open."""
        self.pool.forget(conversation)

    async def astart(self) -> None:
        self.pool.start()

    async def aclose(self) -> None:
        await self.pool.aclose()
        for model in self._models.values():
            await model.aclose()

    async def stream_chat(self, messages: Sequence[ChatMessage],
                          params: GenerationParams) -> AsyncIterator[str | ToolCall]:
        if self.pool.closed:
            raise ChatEndpointError("the LLM endpoints are closed (the server is shutting down)")
        self.pool.start()  # a model used without astart (a script) must still see endpoints come back
        tried: list[str] = []
        failures: list[str] = []
        while (url := self.pool.choose(params.conversation, exclude=tried)) is not None:
            tried.append(url)
            yielded = False
            with self.pool.in_flight(url):
                stream = self._models[url].stream_chat(messages, params)
                try:
                    async with aclosing(stream):
                        async for item in stream:
                            if not yielded:
                                yielded = True
                                self.pool.mark_ok(url)
                            yield item
                    if not yielded:
                        self.pool.mark_ok(url)  # an empty answer is still an answer
                    return
                except Exception as exc:
                    reason = _unreachable(exc)
                    if yielded or reason is None:
                        raise
                    self.pool.mark_down(url, reason)
                    failures.append(f"{url} ({reason})")
                    log.warning("LLM endpoint %s failed before its first token (%s); trying another", url, reason)
        down = [f"{u} ({self.pool.down_reason(u) or 'down'})" for u in self.pool.urls if u not in tried]
        raise ChatEndpointError("no LLM endpoint could take the request: "
                                + "; ".join([*(f"tried {f}" for f in failures), *(f"down {d}" for d in down)]))
