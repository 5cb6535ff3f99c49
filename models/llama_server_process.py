"""llama.cpp's own server (``llama-server``) as a managed child process.

The embedded LLM runs in a child process, not in ours, for two reasons: llama-server serves
several conversations at once (``--parallel``), each on its own slot with its own prompt
cache, where one in-process llama context serves them in turn and re-reads each growing
prompt; and it speaks the same OpenAI-compatible API as vLLM, so the embedded path and the
production path are one adapter (``models/openai_chat.py``).

A child process can die on its own, so it is supervised: one task starts it on a free
127.0.0.1 port, counts it ready only once ``GET /health`` answers 200 (the model is loaded),
waits for it to exit, and starts it again after a bounded, growing delay. Requests in flight
when it dies fail (their HTTP stream breaks); later ones wait for :meth:`wait_ready`.
:meth:`aclose` stops it: SIGTERM, then SIGKILL after ``stop_timeout_s``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import functools
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

log = logging.getLogger(__name__)

HEALTH_POLL_S = 0.05
"""llama-server has no readiness push; /health is cheap, and a 0.5B model loads in about a second."""
STABLE_AFTER_S = 10.0
"""A child that ran this long healthy resets the restart delay to its first step."""
PR_SET_PDEATHSIG = 1
LOG_TAIL_LINES = 30
"""The child's last output lines, logged when it dies: the reason is usually in them."""


class LlamaServerError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class LlamaServerParams:
    binary: Path
    model_path: Path
    slots: int = 5
    context_tokens_per_slot: int = 4096
    threads: int = 2
    cache_ram_mib: int = 512
    """Host memory for prompts saved from slots that another prompt took over (``--cache-ram``)."""
    poll: int = 0
    """``--poll``: how hard idle compute threads spin for work. On two cores a spinning thread takes
    the CPU from Whisper and the voices; 0 (sleep) also gave a faster first token alone here
    (204-246 ms against 260-292 ms for a 17-token turn, the note on issue 13 has the figures)."""
    nice: int = 10
    """How far below this process the child is scheduled (``nice``). On two cores the LLM's
    threads otherwise take the CPU from the voices and Whisper, whose next output the user is
    waiting for: Piper's first audio while an answer decodes was 342 ms (p50) at 0 and 181 ms at
    10 (135 ms alone), Kokoro's first Mandarin chunk 3,214 and 1,473 ms (1,383 ms alone), and the
    LLM decoded 8.9 and 10.4 tokens/s (``python -m benchmarks.voice_contention 0 10``). 0: the
    same priority."""
    startup_timeout_s: float = 120.0
    stop_timeout_s: float = 5.0
    first_restart_delay_s: float = 0.5
    max_restart_delay_s: float = 10.0

    def arguments(self, port: int) -> list[str]:
        # Per-slot prompt caching is llama-server's default (--cache-prompt; each request may say
        # cache_prompt too). --parallel without --kv-unified gives every slot its own
        # context_tokens_per_slot of KV cache, so one long conversation cannot squeeze the others.
        return [str(self.binary), "--model", str(self.model_path),
                "--ctx-size", str(self.context_tokens_per_slot * self.slots), "--parallel", str(self.slots),
                "--threads", str(self.threads), "--host", "127.0.0.1", "--port", str(port),
                "--cache-prompt", "--cache-ram", str(self.cache_ram_mib), "--poll", str(self.poll), "--no-webui"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parent_death_signal() -> Callable[[], None] | None:
    """A function for the child to run before exec: SIGKILL it if this process dies, even by
    SIGKILL (Linux ``PR_SET_PDEATHSIG``), so a crashed server never leaves a model loaded and a
    port held. SIGKILL, not SIGTERM: a llama-server orphaned mid-request was seen to take SIGTERM
    and keep running (twice), and with its parent gone it has nothing left to finish. Looked up here, in the parent: between fork and exec the child must not load
    libraries (another thread may have held the loader's lock at the fork)."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return functools.partial(prctl, PR_SET_PDEATHSIG, int(signal.SIGKILL))


def _before_exec(nice: int) -> Callable[[], None] | None:
    """What the child runs between fork and exec: the parent-death signal, then its lower
    priority (set before exec, so every thread llama-server starts inherits it)."""
    death_signal = _parent_death_signal()
    if nice <= 0:
        return death_signal

    def setup() -> None:
        if death_signal is not None:
            death_signal()
        os.nice(nice)

    return setup


class LlamaServerProcess:
    """Start with :meth:`start` (on the event loop), stop with :meth:`aclose`; restarts on its own."""

    def __init__(self, params: LlamaServerParams) -> None:
        if not params.binary.is_file():
            raise LlamaServerError(f"{params.binary} is missing: run scripts/setup.sh (it builds llama-server)")
        if not params.model_path.is_file():
            raise LlamaServerError(f"{params.model_path} is missing: run `tingshuo models install`")
        self.params = params
        self.restarts = 0
        """Children started after the first (each one followed a crash)."""
        self._supervisor: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._base_url: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._closing = False
        self._tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def pid(self) -> int | None:
        """The running child's process id (None between children)."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the healthy child; raises while there is none."""
        if self._base_url is None or not self.ready:
            raise LlamaServerError("llama-server is not running")
        return self._base_url

    def start(self) -> None:
        """Starts supervising (idempotent); the child becomes ready later: :meth:`wait_ready`."""
        if self._closing:
            raise LlamaServerError("llama-server was stopped")
        if self._supervisor is None:
            self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name="llama-server")

    async def wait_ready(self, timeout_s: float) -> str:
        """The base URL once a child is healthy; LlamaServerError after ``timeout_s`` without one."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:  # a crash between the event and the read clears it again
                    await self._ready.wait()
                    if self._base_url is not None:
                        return self._base_url
        except TimeoutError:
            raise LlamaServerError(f"llama-server was not ready within {timeout_s:g} s "
                                   f"(restarts so far: {self.restarts})") from None

    async def aclose(self) -> None:
        """Stops the supervisor and the child: SIGTERM, SIGKILL after ``stop_timeout_s``. Idempotent."""
        self._closing = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        self._ready.clear()

    # -- the supervisor ---------------------------------------------------------------
    async def _supervise(self) -> None:
        delay = self.params.first_restart_delay_s
        first = True
        while True:
            if not first:
                self.restarts += 1
            first = False
            started = time.monotonic()
            try:
                code = await self._run_once()
            except OSError as exc:  # could not even start it (a binary made unexecutable): retry later too
                code = None
                self._tail.append(f"(could not start it: {exc})")
            if time.monotonic() - started >= STABLE_AFTER_S:
                delay = self.params.first_restart_delay_s
            log.error("llama-server exited with code %s; restarting in %.1f s (restart %d). Its last output:\n%s",
                      code, delay, self.restarts + 1, "\n".join(self._tail))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.params.max_restart_delay_s)

    async def _run_once(self) -> int | None:
        """One child, from start to exit; cancelling it stops the child (the finally)."""
        port = free_port()
        self._tail.clear()
        proc = await asyncio.create_subprocess_exec(
            *self.params.arguments(port), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, preexec_fn=_before_exec(self.params.nice))
        self._proc = proc
        loop = asyncio.get_running_loop()
        exited = loop.create_task(proc.wait(), name="llama-server-wait")
        output = loop.create_task(self._read_output(proc), name="llama-server-output")
        try:
            url = f"http://127.0.0.1:{port}"
            if await self._wait_healthy(exited, url):
                self._base_url = url
                self._ready.set()
                log.info("llama-server ready at %s (pid %d, %d slots)", url, proc.pid, self.params.slots)
            else:
                await self._stop(proc, exited)
            return await asyncio.shield(exited)
        finally:
            self._ready.clear()
            self._base_url = None
            await self._stop(proc, exited)
            # The output ends with the child's pipe; a grandchild holding it must not hold us.
            output.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await output

    async def _wait_healthy(self, exited: asyncio.Task[int], url: str) -> bool:
        """True once /health answers 200; False if the child exits or misses ``startup_timeout_s``."""
        deadline = time.monotonic() + self.params.startup_timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as http:
            while not exited.done():
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with http.get(url + "/health") as response:
                        if response.status == 200:
                            return True
                if time.monotonic() > deadline:
                    log.error("llama-server did not become healthy within %g s", self.params.startup_timeout_s)
                    return False
                await asyncio.wait({exited}, timeout=HEALTH_POLL_S)  # wakes at once if the child exits
        return False

    async def _read_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self._tail.append(line)
            log.debug("llama-server: %s", line)

    async def _stop(self, proc: asyncio.subprocess.Process, exited: asyncio.Task[int]) -> None:
        if exited.done():
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await asyncio.wait({exited}, timeout=self.params.stop_timeout_s)
        if not exited.done():
            log.warning("llama-server ignored SIGTERM for %g s; killing it", self.params.stop_timeout_s)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.wait({exited})
