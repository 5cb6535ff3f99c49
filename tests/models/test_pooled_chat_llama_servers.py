"""PooledChatModel over two real llama-server processes (the binary scripts/setup.sh builds, the embedded
SmolLM2-135M GGUF): conversations go to both; one server SIGKILLed, the next answers still arrive."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from models.endpoint_pool import PoolParams
from models.interfaces import ChatMessage, GenerationParams
from models.llama_server_process import LlamaServerParams, free_port
from models.pooled_chat import PooledChatModel

REPO = Path(__file__).resolve().parents[2]
BINARY = REPO / "var" / "bin" / "llama-server"
READY_S = 60.0
ANSWER_S = 60.0
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def gguf() -> Path:
    if not BINARY.is_file():
        pytest.skip(f"{BINARY} missing: run scripts/setup.sh (it builds llama-server)")
    from models import embedded_store

    return embedded_store.ensure_model(embedded_store.SMOLLM2_135M, REPO / "var" / "models") / "model.gguf"


async def wait_healthy(url: str, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + READY_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url + "/health") as response:
                    if response.status == 200:
                        return
            assert proc.returncode is None, f"llama-server at {url} exited with {proc.returncode}"
            assert time.monotonic() < deadline, f"llama-server at {url} not healthy within {READY_S} s"
            await asyncio.sleep(0.05)


@pytest.fixture
async def two_servers(gguf) -> AsyncIterator[list[tuple[str, asyncio.subprocess.Process]]]:
    """Two plain children (not LlamaServerProcess: its supervisor would restart the killed one)."""
    params = LlamaServerParams(binary=BINARY, model_path=gguf, slots=2, context_tokens_per_slot=1024, threads=1,
                               nice=0)
    servers = []
    try:
        for _ in range(2):
            port = free_port()
            proc = await asyncio.create_subprocess_exec(*params.arguments(port), stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.DEVNULL)
            servers.append((f"http://127.0.0.1:{port}", proc))
        for url, proc in servers:
            await wait_healthy(url, proc)
        yield servers
    finally:
        for _, proc in servers:
            if proc.returncode is None:
                proc.kill()
            await asyncio.wait_for(proc.wait(), 10)


async def answer(model: PooledChatModel, conversation: str) -> str:
    messages = [ChatMessage("system", "Answer in one short sentence."), ChatMessage("user", "What colour is the sky?")]

    async def run() -> str:
        stream = model.stream_chat(messages, GenerationParams(max_tokens=12, temperature=0.0,
                                                              conversation=conversation))
        return "".join([str(piece) async for piece in stream])
    return await asyncio.wait_for(run(), ANSWER_S)


async def test_answers_still_arrive_after_one_server_is_killed(two_servers):
    (url0, proc0), (url1, _) = two_servers
    model = PooledChatModel([url0 + "/v1", url1 + "/v1"], model="smollm2",
                            pool=PoolParams(first_backoff_s=0.2, max_backoff_s=1.0))
    await model.astart()
    try:
        assert (await answer(model, "c0")).strip() and (await answer(model, "c1")).strip()
        assert model.pool.assigned("c0") == url0 + "/v1" and model.pool.assigned("c1") == url1 + "/v1"

        os.kill(proc0.pid, signal.SIGKILL)
        await asyncio.wait_for(proc0.wait(), 10)
        for conversation in ("c0", "c1", "c2", "c0"):
            assert (await answer(model, conversation)).strip(), conversation
        assert [(e.healthy, e.conversations, e.in_flight) for e in model.endpoints()] == [(False, 0, 0), (True, 3, 0)]
        assert model.ready
    finally:
        await model.aclose()
