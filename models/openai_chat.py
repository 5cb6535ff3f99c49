"""Any OpenAI-compatible chat endpoint (a vLLM server, llama.cpp's server) as the chat model.

Streams Server-Sent Events over aiohttp; closing the iterator closes the HTTP
response, which vLLM treats as an abort of the request, freeing the GPU slot.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import aiohttp

from models.interfaces import ChatMessage, GenerationParams


class ChatEndpointError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class OpenAIChatParams:
    base_url: str
    model: str
    api_key: str = ""
    connect_timeout_s: float = 10.0


class OpenAIChatModel:
    def __init__(self, *, params: OpenAIChatParams) -> None:
        self.params = params
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.params.connect_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def stream_chat(self, messages: Sequence[ChatMessage], params: GenerationParams) -> AsyncIterator[str]:
        headers = {"Authorization": f"Bearer {self.params.api_key}"} if self.params.api_key else {}
        body = {
            "model": params.adapter or self.params.model,  # vLLM serves each LoRA adapter under its own name
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "stream": True,
        }
        url = self.params.base_url.rstrip("/") + "/chat/completions"
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
                    return
                choices = json.loads(data).get("choices") or []
                if choices and (text := (choices[0].get("delta") or {}).get("content")):
                    yield text
