"""Any OpenAI-compatible chat endpoint (a vLLM server, llama.cpp's server) as the chat model.

Streams Server-Sent Events over aiohttp; closing the iterator closes the HTTP
response, which vLLM treats as an abort of the request, freeing the GPU slot.

Tools: ``tools`` and ``tool_choice`` go in the request, and the calls come back as
``delta.tool_calls`` fragments (name and id first, the arguments JSON in pieces), which
are assembled and yielded when the choice finishes. vLLM parses calls only when it was
started with ``--enable-auto-tool-choice --tool-call-parser hermes`` (the parser for
Qwen2.5 and other Hermes-format models, per vLLM's tool-calling docs); without those flags
it answers every request carrying tools with HTTP 400, reported as a
:class:`ChatEndpointError`. Servers that take tools but do not parse calls
(llama-cpp-python's server) leave them in the text, and a parser can miss a call the model
wrote without its tags: so the text goes through :class:`models.text_tool_calls.TextToolCalls`
as well.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from models.chat_payloads import tool_payload, wire_messages
from models.interfaces import ChatMessage, GenerationParams, ToolCall
from models.text_tool_calls import TextToolCalls, new_call_id

log = logging.getLogger(__name__)


class ChatEndpointError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class OpenAIChatParams:
    base_url: str
    model: str
    api_key: str = ""
    connect_timeout_s: float = 10.0
    keep_alive: bool = True
    """Reuse connections between requests. Off for a llama-server on this machine: it can close
    an idle kept-alive connection just as the next request takes it ("Cannot write to closing
    transport"), and a local connection costs well under a millisecond."""


@dataclass(slots=True)
class _PartialCall:
    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class StreamedToolCalls:
    """Assembles ``delta.tool_calls`` fragments, keyed by their ``index``, into whole calls."""

    def __init__(self) -> None:
        self._calls: dict[int, _PartialCall] = {}

    def add(self, fragments: list[dict[str, Any]]) -> None:
        for position, fragment in enumerate(fragments):
            call = self._calls.setdefault(fragment.get("index", position), _PartialCall())
            call.call_id = call.call_id or fragment.get("id") or ""
            function = fragment.get("function") or {}
            # Strings are concatenated, as the OpenAI SDK's stream accumulator does: the name
            # usually comes whole in the first fragment, the arguments in many.
            call.name += function.get("name") or ""
            call.arguments.append(function.get("arguments") or "")

    def finish(self) -> list[ToolCall]:
        """The calls so far, in index order; the assembler is empty afterwards."""
        calls, self._calls = self._calls, {}
        out = []
        for _, call in sorted(calls.items()):
            if not call.name:
                log.warning("a streamed tool call without a name was dropped")
                continue
            out.append(ToolCall(call.call_id or new_call_id(), call.name, "".join(call.arguments) or "{}"))
        return out


class OpenAIChatModel:
    def __init__(self, *, params: OpenAIChatParams) -> None:
        self.params = params
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def client(self) -> aiohttp.ClientSession:
        """The adapter's HTTP session, for other requests to the same server (models/llama_turn_judge.py)."""
        return self._client()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.params.connect_timeout_s)
            self._session = aiohttp.ClientSession(
                timeout=timeout, connector=aiohttp.TCPConnector(force_close=not self.params.keep_alive))
        return self._session

    async def stream_chat(self, messages: Sequence[ChatMessage], params: GenerationParams, *,
                          base_url: str | None = None,
                          extra_body: Mapping[str, Any] | None = None) -> AsyncIterator[str | ToolCall]:
        """``base_url`` and ``extra_body`` (server-specific fields such as llama-server's ``id_slot``)
        are for a wrapper that knows its server (models/llama_server_chat.py)."""
        headers = {"Authorization": f"Bearer {self.params.api_key}"} if self.params.api_key else {}
        body: dict[str, Any] = {
            "model": params.adapter or self.params.model,  # vLLM serves each LoRA adapter under its own name
            "messages": wire_messages(messages),
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "stream": True,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.tools:
            body |= {"tools": tool_payload(params.tools), "tool_choice": params.tool_choice}
        if extra_body:
            body |= extra_body
        offered = [t.name for t in params.tools] if params.tool_choice != "none" else []
        streamed = StreamedToolCalls()
        in_text = TextToolCalls(offered=offered)
        url = (base_url or self.params.base_url).rstrip("/") + "/chat/completions"
        if log.isEnabledFor(logging.DEBUG):  # the whole prompt, for a wrong answer's post-mortem
            log.debug("POST %s %s", url, json.dumps({k: v for k, v in body.items() if k != "tools"},
                                                    ensure_ascii=False))
        async with self._client().post(url, json=body, headers=headers) as response:
            if response.status != 200:
                detail = (await response.text())[:500]
                raise ChatEndpointError(f"chat endpoint answered HTTP {response.status}: {detail}")
            async for raw_line in response.content:
                line = raw_line.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    break
                choices = json.loads(data).get("choices") or []
                if not choices:
                    continue
                delta = choices[0].get("delta") or {}
                if text := delta.get("content"):
                    for item in in_text.push(text):
                        yield item
                if fragments := delta.get("tool_calls"):
                    streamed.add(fragments)
                if choices[0].get("finish_reason") == "tool_calls":
                    for call in _offered(streamed.finish(), offered):
                        yield call
        # Also reached when a server closes the stream without [DONE].
        for item in in_text.flush():
            yield item
        for call in _offered(streamed.finish(), offered):
            yield call


def _offered(calls: list[ToolCall], offered: list[str]) -> list[ToolCall]:
    """A call to a tool nobody declared would reach the client as a function it does not have."""
    kept = [c for c in calls if c.name in offered]
    for call in calls:
        if call.name not in offered:
            log.warning("the endpoint returned a call to %r, which was not offered; dropped", call.name)
    return kept
