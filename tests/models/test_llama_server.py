"""The managed llama-server, for real: the binary scripts/setup.sh builds and the SmolLM2-135M GGUF.

Start, health and stop; a restart after SIGKILL; each request naming its slot (read back from the
server's own /slots: the slot that ran the newest task); streaming; and a closed stream stopping
the generation in the server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from contextlib import aclosing
from pathlib import Path

import aiohttp
import pytest

from models.chat_payloads import wire_messages
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
    return LlamaServerParams(binary=BINARY, model_path=model, slots=4, context_tokens_per_slot=1024, threads=2,
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


def niceness(pid: int) -> set[int]:
    """The nice value of every thread of a process (field 19 of each task's stat)."""
    values = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as fh:
            values.add(int(fh.read().split(")")[-1].split()[16]))
    return values


async def test_every_thread_of_the_child_runs_below_this_process(gguf):
    own = os.getpriority(os.PRIO_PROCESS, 0)
    for nice, expected in ((7, min(19, own + 7)), (0, own)):
        process = LlamaServerProcess(server_params(gguf, nice=nice))
        process.start()
        try:
            await process.wait_ready(READY_S)
            assert process.pid is not None
            threads = niceness(process.pid)
            assert len(os.listdir(f"/proc/{process.pid}/task")) > 1  # its worker threads too
            assert threads == {expected}
        finally:
            await process.aclose()


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


async def slots(base_url: str) -> list[dict]:
    status, body = await get_json(base_url + "/slots")
    assert status == 200
    return body


async def newest_slot(base_url: str) -> int:
    """The slot that ran the server's latest task (a slot never used has no ``id_task``)."""
    return max(await slots(base_url), key=lambda s: s.get("id_task", -1))["id"]


async def reply(llm, messages: list[ChatMessage] | str, **params) -> str:
    if isinstance(messages, str):
        messages = [ChatMessage("user", messages)]
    parts = []
    async with aclosing(llm.stream_chat(messages, GenerationParams(max_tokens=8, temperature=0.0, **params))) as stream:
        async for item in stream:
            parts.append(item)
    return "".join(parts)


@pytest.fixture
async def llm(gguf):
    model = LlamaServerChatModel(server=server_params(gguf), params=LlamaServerChatParams(model_name="smollm2-135m"))
    await model.astart()
    yield model
    await model.aclose()


async def test_each_conversation_keeps_its_slot_and_cache_and_summaries_have_their_own(llm):
    first = [ChatMessage("system", "You are a helpful assistant. Answer in one short sentence."),
             ChatMessage("user", "What is the capital of France?")]
    answer = await reply(llm, first, conversation="sess_a")
    assert answer.strip()
    base = llm.process.base_url
    slot_a = await newest_slot(base)
    assert (await reply(llm, "Say hi.", conversation="sess_b")).strip()
    slot_b = await newest_slot(base)
    await reply(llm, "Summarise: nothing happened.", purpose="background")
    assert await newest_slot(base) == 2  # after the two conversations' slots
    assert {slot_a, slot_b} == {0, 1}
    await llm.end_of_message_probability("我想问一下", timeout_s=30)
    assert await newest_slot(base) == 3 == llm.judge_slot  # the last: the Mandarin turn judge's
    await reply(llm, "And again.", conversation="sess_a")
    assert await newest_slot(base) == slot_a


async def test_a_conversation_pinned_to_its_slot_reads_only_its_new_turn(llm):
    """The next turn of a conversation, after another conversation and a summary ran, finds its
    prompt still cached on its slot: llama-server reports the reused tokens as ``timings.cache_n``."""
    first = [ChatMessage("system", "You are a helpful assistant. Answer in one short sentence."),
             ChatMessage("user", "What is the capital of France?")]
    answer = await reply(llm, first, conversation="sess_a")
    await reply(llm, "Say hi, in French.", conversation="sess_b")
    await reply(llm, "Summarise: nothing happened.", purpose="background")
    base = llm.process.base_url
    [state] = [s for s in await slots(base) if s["id"] == llm.slots.slot_for(GenerationParams(conversation="sess_a"))]
    held = state["n_prompt_tokens"]  # the first turn's prompt and answer
    second = [*first, ChatMessage("assistant", answer), ChatMessage("user", "And of Italy?")]
    body = {"messages": wire_messages(second), "max_tokens": 4, "temperature": 0.0, "stream": False,
            "id_slot": state["id"], "cache_prompt": True}
    async with aiohttp.ClientSession() as http, http.post(base + "/v1/chat/completions", json=body) as response:
        timings = (await response.json())["timings"]
    assert timings["cache_n"] >= held - 8 > 20, (timings, held)  # all but the end of the answer's tokens
    assert timings["prompt_n"] < 30, timings


async def test_closing_the_stream_stops_the_generation_in_the_server(llm):
    # Run to the end, this prompt gives all 400 tokens (greedy); measured when this test was written.
    story = "Write a very long story about a dragon who learns to bake bread. Use at least thirty paragraphs."
    stream = llm.stream_chat([ChatMessage("user", story)],
                             GenerationParams(max_tokens=400, temperature=0.0, conversation="sess_long"))
    pieces = 0
    async for _ in stream:
        pieces += 1
        if pieces == 5:
            break
    await stream.aclose()
    base = llm.process.base_url

    async def idle() -> bool:
        return not any(s["is_processing"] for s in await slots(base))

    await until(idle, timeout_s=3.0, what="every slot idle after the stream was closed")
    # A slot holds the prompt and the tokens generated: about 40 + 10 here, not 40 + 400.
    held = [s["n_prompt_tokens"] for s in await slots(base) if "id_task" in s]
    print("tokens held by the slot after the stop:", held)
    assert held and max(held) < 150, held


PARENT = """
import asyncio, sys
from pathlib import Path
from models.llama_server_process import LlamaServerParams, LlamaServerProcess

async def main():
    process = LlamaServerProcess(LlamaServerParams(binary=Path(sys.argv[1]), model_path=Path(sys.argv[2]), slots=2,
                                                   context_tokens_per_slot=512))
    process.start()
    await process.wait_ready(60)
    print(process.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_the_child_dies_with_a_parent_killed_outright(gguf):
    """SIGKILL gives the parent no chance to stop its child: the kernel's parent-death signal does."""
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", PARENT, str(BINARY), str(gguf), cwd=REPO,
                                                  stdout=asyncio.subprocess.PIPE)
    try:
        child = int(await asyncio.wait_for(parent.stdout.readline(), READY_S))
        assert alive(child)
    finally:
        parent.kill()
        await parent.wait()

    async def gone() -> bool:
        return not alive(child)

    await until(gone, timeout_s=10, what="llama-server gone after its parent was killed")


async def test_a_seed_makes_a_sampled_answer_repeat_and_none_lets_it_vary(llm):
    """``assistant.seed`` reaches the engine: at a high temperature the same prompt gets the same
    answer for the same seed, on any slot, and varies without one."""
    async def sampled(conversation: str, seed: int | None) -> str:
        params = GenerationParams(max_tokens=24, temperature=1.5, seed=seed, conversation=conversation)
        parts = []
        async with aclosing(llm.stream_chat([ChatMessage("user", "Tell me about the sea.")], params)) as stream:
            async for item in stream:
                parts.append(item)
        return "".join(parts)

    seeded = {await sampled(f"sess_{i}", 11) for i in range(3)}
    assert len(seeded) == 1 and next(iter(seeded)).strip()
    unseeded = {await sampled(f"sess_{i}", None) for i in range(3)}
    assert len(unseeded) > 1, unseeded


async def test_a_prefilled_prompt_head_leaves_the_next_turn_only_its_words_to_read(llm):
    """The prompt head read after an answer (server/prompt_warmup.py) is in the slot's cache when the
    next turn comes: that request reads the user's words and the template after them, where without
    the prefill it reads the assistant's answer (edited in the history, as a dropped speaker label
    edits it) as well."""
    system = ChatMessage("system", "You are a helpful assistant. Answer in one short sentence.")
    first = [system, ChatMessage("user", "What is the capital of France?")]
    edited = "The capital of France is Paris, a city on the Seine."  # not what the model generated

    async def next_turn_reads(conversation: str, *, prefill: bool) -> dict:
        await reply(llm, first, conversation=conversation)
        history = [*first, ChatMessage("assistant", edited)]
        params = GenerationParams(max_tokens=8, temperature=0.0, conversation=conversation)
        if prefill:
            await llm.prefill([*history, ChatMessage("user", "")], params)
        slot = llm.slots.slot_for(params)
        body = {"messages": wire_messages([*history, ChatMessage("user", "And of Italy?")]), "max_tokens": 4,
                "temperature": 0.0, "stream": False, "id_slot": slot, "cache_prompt": True}
        async with aiohttp.ClientSession() as http, http.post(llm.process.base_url + "/v1/chat/completions",
                                                              json=body) as response:
            return (await response.json())["timings"]

    cold = await next_turn_reads("sess_cold", prefill=False)
    warm = await next_turn_reads("sess_warm", prefill=True)
    print("next turn without / with the prefill:", cold, warm)
    assert warm["prompt_n"] <= 12, warm  # "And of Italy?" and the template's end
    assert cold["prompt_n"] >= warm["prompt_n"] + 10, (cold, warm)  # the edited answer, read again
    assert warm["cache_n"] > cold["cache_n"], (cold, warm)
