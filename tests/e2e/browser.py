"""Real-browser plumbing for the web page tests: Debian's Chromium with a WAV as its microphone.

Chromium reads the WAV in real time from the moment the page opens the microphone, so the
speech in it is paced exactly as a person's would be. ``%noloop`` plays it once.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile as sf
import soxr
from aiohttp import web

from tests.e2e.realtime_client import AUDIO_DIR

CHROMIUM = Path("/usr/bin/chromium")
WAV_RATE = 48_000
LEAD_IN_S = 2.5
"""Silence before the first words: the page opens its WebSocket after the microphone."""
CLOSE_TIMEOUT_S = 3.0
"""Longest a proxied WebSocket close waits for the other side's close frame (PrefixProxy)."""

STATS_JS = "document.querySelector('tingshuo-assistant').stats"


def require_chromium() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("TINGSHUO_SKIP_BROWSER") == "1":
            pytest.skip("TINGSHUO_SKIP_BROWSER=1 and no /usr/bin/chromium")
        pytest.fail("the web page tests need Debian's Chromium: apt-get install chromium")


def microphone_wav(path: Path, *parts: str | float) -> Path:
    """A WAV of shared recordings (relative paths) and silences (seconds), in order."""
    chunks = []
    for part in parts:
        if isinstance(part, (int, float)):
            chunks.append(np.zeros(int(part * WAV_RATE), np.float32))
        else:
            audio, rate = sf.read(AUDIO_DIR / part, dtype="float32")
            chunks.append(soxr.resample(audio, rate, WAV_RATE).astype(np.float32))
    sf.write(path, np.concatenate(chunks), WAV_RATE, subtype="PCM_16")
    return path


def chromium_args(wav: Path | None, *, fake_ui: bool = True) -> list[str]:
    """Without a WAV the fake microphone plays Chromium's own beeps."""
    args = ["--autoplay-policy=no-user-gesture-required", "--disable-gpu", "--no-sandbox",
            "--use-fake-device-for-media-stream"]
    if fake_ui:
        args.append("--use-fake-ui-for-media-stream")
    if wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={wav}%noloop")
    return args


@contextmanager
def browser_page(playwright, wav: Path | None, *, fake_ui: bool = True, viewport=None) -> Iterator[Any]:
    """A fresh browser per microphone file (the file is a launch flag); page errors fail the test."""
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(wav, fake_ui=fake_ui))
    context = browser.new_context(viewport=viewport or {"width": 900, "height": 700})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
        assert not errors, f"uncaught errors in the page: {errors}"
    finally:
        browser.close()


ON_DEMAND_MICROPHONE_JS = """
(() => {
  // The page's getUserMedia gets a stream fed by WAVs the test plays when it chooses,
  // so speech can start exactly while the assistant is talking.
  let ctx, dest;
  navigator.mediaDevices.getUserMedia = async () => {
    ctx = new AudioContext({ sampleRate: 48000 });
    dest = ctx.createMediaStreamDestination();
    return dest.stream;
  };
  window.__speak = async (url) => {
    const audio = await ctx.decodeAudioData(await (await fetch(url)).arrayBuffer());
    const source = ctx.createBufferSource();
    source.buffer = audio;
    source.connect(dest);
    source.start();
    await new Promise((resolve) => (source.onended = resolve));
    return audio.duration;
  };
})();
"""


def on_demand_microphone(page, recordings: dict[str, str]) -> None:
    """Replace the microphone with one that says a shared recording when :func:`speak` asks."""
    page.add_init_script(ON_DEMAND_MICROPHONE_JS)

    def fulfil(route) -> None:
        name = route.request.url.rsplit("/", 1)[-1]
        route.fulfill(path=str(AUDIO_DIR / recordings[name]), content_type="audio/wav")

    page.route("**/__microphone__/*", fulfil)


def speak(page, name: str) -> float:
    """Play one recording into the microphone; returns once it has been said (its duration)."""
    return page.evaluate("(name) => window.__speak('/__microphone__/' + name)", name)


def stats(page) -> dict[str, Any]:
    return page.evaluate(STATS_JS)


def wait_for_stats(page, condition_js: str, *, timeout_s: float = 90) -> dict[str, Any]:
    """Wait until ``condition_js`` (an expression over ``s``, the element's stats) holds."""
    page.wait_for_function(f"(() => {{ const s = {STATS_JS}; return Boolean({condition_js}); }})()",
                           timeout=timeout_s * 1000, polling=200)
    return stats(page)


def turns(page, selector: str = "tingshuo-assistant") -> list[dict[str, Any]]:
    """The conversation as the page shows it."""
    return page.evaluate(
        """(sel) => [...document.querySelector(sel).shadowRoot.querySelectorAll('.turn')].map(li => ({
            role: li.classList.contains('user') ? 'user' : 'assistant',
            text: li.querySelector('.text').textContent,
            partial: li.classList.contains('partial'),
            interrupted: li.classList.contains('interrupted'),
        }))""",
        selector,
    )


def shadow_text(page, css: str, selector: str = "tingshuo-assistant") -> str:
    return page.evaluate("([sel, css]) => document.querySelector(sel).shadowRoot.querySelector(css).textContent",
                         [selector, css])


def wait_for_shadow_text(page, css: str, text: str, *, timeout_s: float = 10,
                         selector: str = "tingshuo-assistant") -> None:
    page.wait_for_function("([sel, css, text]) => document.querySelector(sel).shadowRoot.querySelector(css)"
                           ".textContent === text", arg=[selector, css, text], timeout=timeout_s * 1000)


def keep_screenshot(page, name: str, tmp_path: Path) -> Path:
    """Screenshots go to the test's folder, and to TINGSHUO_SCREENSHOT_DIR when set (the README's)."""
    path = tmp_path / name
    page.screenshot(path=str(path))
    if target := os.environ.get("TINGSHUO_SCREENSHOT_DIR"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / name)
    return path


@dataclass
class PrefixProxy:
    """A reverse proxy that serves the upstream under ``/assistant/``, WebSocket included.

    It also serves a host page of its own origin (``/host.html``) for the widget test, and can
    drop every proxied WebSocket at once to play a network failure.
    """

    upstream: str
    host_page: str = ""
    prefix: str = "/assistant"
    port: int = 0
    websockets: set = field(default_factory=set)
    connections: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        target = f"{self.upstream}/{tail}" + (f"?{request.query_string}" if request.query_string else "")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._proxy_websocket(request, target)
        async with self._http.get(target, headers={"Accept": request.headers.get("Accept", "*/*")}) as upstream:
            body = await upstream.read()
            headers = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-type", "cache-control")}
            return web.Response(body=body, status=upstream.status, headers=headers)

    async def _proxy_websocket(self, request: web.Request, target: str) -> web.StreamResponse:
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        # Close handshakes wait at most CLOSE_TIMEOUT_S for the peer (aiohttp's default is 10 s, as long
        # as drop_connections' own limit: a browser slow to answer a close then failed the test).
        upstream = await self._http.ws_connect(target.replace("http", "ws", 1), protocols=offered, max_msg_size=0,
                                               timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S))
        client = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (), max_msg_size=0,
                                       timeout=CLOSE_TIMEOUT_S)
        await client.prepare(request)
        self.connections += 1
        pair = (client, upstream)
        self.websockets.add(pair)

        async def pump(source, sink) -> None:
            async for msg in source:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await sink.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await sink.send_bytes(msg.data)
                else:
                    break

        try:
            tasks = [asyncio.ensure_future(pump(client, upstream)), asyncio.ensure_future(pump(upstream, client))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
        finally:
            self.websockets.discard(pair)
            await upstream.close()
            await client.close(code=upstream.close_code or 1000)
        return client

    async def _host(self, request: web.Request) -> web.Response:
        return web.Response(text=self.host_page, content_type="text/html")

    async def _start(self) -> None:
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_get("/host.html", self._host)
        app.router.add_get(self.prefix + "/{tail:.*}", self._proxy)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _drop(self) -> int:
        pairs = list(self.websockets)
        for client, upstream in pairs:
            await client.close(code=1012)  # "service restart": what a failing proxy sends, if anything
            await upstream.close()
        return len(pairs)

    def start(self) -> "PrefixProxy":
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def drop_connections(self) -> int:
        return asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(10)

    def stop(self) -> None:
        async def _stop() -> None:
            await self._drop()
            await self._runner.cleanup()
            await self._http.close()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=1)[:3000]
