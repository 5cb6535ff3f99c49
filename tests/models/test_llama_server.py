"""The managed llama-server, for real: the binary scripts/setup.sh builds and the SmolLM2-135M GGUF.

Start, health and stop; a restart after SIGKILL; each request naming its slot (read back from the
server's own /slots: the slot that ran the newest task); streaming; and a closed stream stopping
the generation in the server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from contextlib import aclosing
from pathlib import Path

import aiohttp
import pytest

from models.interfaces import ChatMessage, GenerationParams
from models.llama_server_chat import LlamaServerChatModel, LlamaServerChatParams
from models.llama_server_process import LlamaServerError, LlamaServerParams, LlamaServerProcess

REPO = Path(__file__).resolve().parents[2]
BINARY = REPO / "var" / "bin" / "llama-server"
READY_S = 60.0
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def gguf() -> Path:
    if not BINARY.is_file():
        pytest.skip(f"{BINARY} missing: run scripts/setup.sh (it builds llama-server)")
    from models import embedded_store

    return embedded_store.ensure_model(embedded_store.SMOLLM2_135M, REPO / "var" / "models") / "model.gguf"


def server_params(model: Path, **changes) -> LlamaServerParams:
    return LlamaServerParams(binary=BINARY, model_path=model, slots=3, context_tokens_per_slot=1024, threads=2,
                             **changes)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead too
        return fh.read().split(")")[-1].split()[0] != "Z"


async def until(condition, *, timeout_s: float, what: str) -> None:
    """For what only polling can see (a process gone, a slot idle): checked every 20 ms."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.02)


async def get_json(url: str):
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


async def test_starts_healthy_and_stops_with_its_child(gguf):
    process = LlamaServerProcess(server_params(gguf))
    assert not process.ready
    process.start()
    try:
        url = await process.wait_ready(READY_S)
        assert process.ready and url.startswith("http://127.0.0.1:")
        assert await get_json(url + "/health") == (200, {"status": "ok"})
        pid = process.pid
        assert pid is not None and alive(pid)
    finally:
        await process.aclose()
    assert not process.ready and not alive(pid)
    with pytest.raises(LlamaServerError):
        process.base_url


async def test_a_killed_server_is_restarted_on_a_fresh_child(gguf):
    process = LlamaServerProcess(server_params(gguf, first_restart_delay_s=0.1))
    process.start()
    try:
        await process.wait_ready(READY_S)
        first = process.pid
        os.kill(first, signal.SIGKILL)

        async def restarted() -> bool:
            return process.ready and process.pid not in (None, first)

        await until(restarted, timeout_s=READY_S, what="a new healthy child")
        assert process.restarts == 1
        assert await get_json(process.base_url + "/health") == (200, {"status": "ok"})
    finally:
        await process.aclose()


async def test_a_server_that_cannot_start_is_retried_and_requests_fail_clearly(tmp_path):
    if not BINARY.is_file():
        pytest.skip(f"{BINARY} missing: run scripts/setup.sh (it builds llama-server)")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model")
    process = LlamaServerProcess(server_params(broken, first_restart_delay_s=0.05, max_restart_delay_s=0.2))
    process.start()
    try:
        with pytest.raises(LlamaServerError, match="not ready within"):
            await process.wait_ready(3.0)
        assert process.restarts >= 2 and not process.ready
    finally:
        await process.aclose()


def test_a_missing_binary_is_refused_at_once(tmp_path):
    with pytest.raises(LlamaServerError, match="scripts/setup.sh"):
        LlamaServerProcess(LlamaServerParams(binary=tmp_path / "nope", model_path=tmp_path / "m.gguf"))


async def newest_slot(base_url: str) -> int:
    status, slots = await get_json(base_url + "/slots")
    assert status == 200
    return max(slots, key=lambda s: s["id_task"])["id"]


async def reply(llm, text: str, **params) -> str:
    parts = []
    async with aclosing(llm.stream_chat([ChatMessage("user", text)],
                                        GenerationParams(max_tokens=8, temperature=0.0, **params))) as stream:
        async for item in stream:
            parts.append(item)
    return "".join(parts)


@pytest.fixture
async def llm(gguf):
    model = LlamaServerChatModel(server=server_params(gguf), params=LlamaServerChatParams(model_name="smollm2-135m"))
    await model.astart()
    yield model
    await model.aclose()


async def test_each_conversation_is_served_on_its_own_slot_and_summaries_on_theirs(llm):
    assert (await reply(llm, "Say hello.", conversation="sess_a")).strip()
    base = llm.process.base_url
    slot_a = await newest_slot(base)
    assert (await reply(llm, "Say hi.", conversation="sess_b")).strip()
    slot_b = await newest_slot(base)
    await reply(llm, "Summarise: nothing.", purpose="background")
    assert await newest_slot(base) == 2  # the last of the three
    await reply(llm, "And again.", conversation="sess_a")
    assert await newest_slot(base) == slot_a
    assert {slot_a, slot_b} == {0, 1}


async def test_closing_the_stream_stops_the_generation_in_the_server(llm):
    stream = llm.stream_chat([ChatMessage("user", "Count from one to five hundred in words.")],
                             GenerationParams(max_tokens=1500, temperature=0.0, conversation="sess_long"))
    pieces = 0
    async for _ in stream:
        pieces += 1
        if pieces == 5:
            break
    await stream.aclose()
    base = llm.process.base_url

    async def idle() -> bool:
        status, slots = await get_json(base + "/slots")
        return status == 200 and not any(s["is_processing"] for s in slots)

    await until(idle, timeout_s=3.0, what="every slot idle after the stream was closed")
    _, slots = await get_json(base + "/slots")
    assert all(s["next_token"][0]["n_decoded"] < 1000 if isinstance(s["next_token"], list)
               else s["next_token"]["n_decoded"] < 1000 for s in slots)
