"""A small raw Realtime WebSocket client for end-to-end tests (the SDK path has its own test)."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import soundfile as sf
import soxr

AUDIO_DIR = Path(__file__).resolve().parents[3] / "shared" / "audio"


def load_speech(relative: str, *, rate: int = 24_000) -> np.ndarray:
    """A shared recording as int16 at ``rate``."""
    audio, sr = sf.read(AUDIO_DIR / relative, dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if sr != rate:
        audio = soxr.resample(audio, sr, rate)
    return np.clip(audio * 32768, -32768, 32767).astype(np.int16)


def silence(secs: float, *, rate: int = 24_000) -> np.ndarray:
    return np.zeros(int(secs * rate), dtype=np.int16)


@dataclass
class RealtimeTestClient:
    ws: aiohttp.ClientWebSocketResponse
    events: list[dict[str, Any]] = field(default_factory=list)
    binary_frames: list[bytes] = field(default_factory=list)
    _new: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task | None = None

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.events.append(json.loads(msg.data))
            elif msg.type == aiohttp.WSMsgType.BINARY:
                self.binary_frames.append(msg.data)
            self._new.set()

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(event))

    async def send_audio(self, pcm: np.ndarray, *, rate: int = 24_000, chunk_ms: int = 40,
                         realtime_factor: float = 0.0, binary: bool = False) -> None:
        """Append audio in chunks; ``realtime_factor`` 1.0 paces like a microphone, 0 sends at once."""
        step = rate * chunk_ms // 1000
        for start in range(0, len(pcm), step):
            data = pcm[start : start + step].astype("<i2").tobytes()
            if binary:
                await self.ws.send_bytes(data)
            else:
                await self.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode()})
            if realtime_factor:
                await asyncio.sleep(chunk_ms / 1000 * realtime_factor)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]

    async def wait_for(self, type_: str, *, timeout: float = 60.0, count: int = 1, where=None) -> dict[str, Any]:
        async def _wait() -> dict[str, Any]:
            while True:
                matches = [e for e in self.of_type(type_) if where is None or where(e)]
                if len(matches) >= count:
                    return matches[count - 1]
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(_wait(), timeout)

    def response_audio(self, response_id: str) -> np.ndarray:
        chunks = [base64.b64decode(e["delta"]) for e in self.of_type("response.output_audio.delta")
                  if e["response_id"] == response_id]
        return np.frombuffer(b"".join(chunks), dtype="<i2")

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
