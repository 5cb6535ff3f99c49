"""Starts the real server (``tingshuo serve``, real embedded models) once for the end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.realtime_client import RealtimeTestClient

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 300
API_KEY = "e2e-test-key"
"""The test server requires a key, so every test also exercises authentication."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log_path: Path, **settings: str) -> tuple[subprocess.Popen, str]:
    """``tingshuo serve`` on a free port with ``TINGSHUO_*`` settings; returns once /readyz answers."""
    port = _free_port()
    # Memory, knowledge and training-data files of the test's own: a developer's var/ neither leaks in
    # nor gets written (nor purged).
    env = {**os.environ, "TINGSHUO_SERVER_PORT": str(port), "TINGSHUO_SERVER_LOG_LEVEL": "INFO",
           "TINGSHUO_MEMORY_PATH": str(log_path.parent / "memory.sqlite"),
           "TINGSHUO_KNOWLEDGE_PATH": str(log_path.parent / "knowledge.sqlite"),
           "TINGSHUO_DATA_DIR": str(log_path.parent / "data"), **settings}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tingshuo", "serve"], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            urllib.request.urlopen(url + "/readyz", timeout=1).read()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("server did not start:\n" + log_path.read_text()[-4000:])
            time.sleep(0.3)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory) -> str:
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    proc, url = start_server(log_path, TINGSHUO_SERVER_API_KEY=API_KEY)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    print("\n--- server log tail ---\n" + log_path.read_text()[-3000:])


@pytest.fixture
async def connect(server_url):
    sessions: list[aiohttp.ClientSession] = []
    clients: list[RealtimeTestClient] = []

    async def _connect(query: str = "") -> RealtimeTestClient:
        http = aiohttp.ClientSession()
        sessions.append(http)
        ws = await http.ws_connect(server_url.replace("http", "ws") + "/v1/realtime" + query, max_msg_size=0,
                                   headers={"Authorization": f"Bearer {API_KEY}"})
        client = RealtimeTestClient(ws=ws)
        client.start()
        clients.append(client)
        await client.wait_for("session.created", timeout=10)
        return client

    yield _connect
    for client in clients:
        await client.close()
    for http in sessions:
        await http.close()


@pytest.fixture(scope="session")
def whisper():
    """The embedded recogniser in the test process, to hear the assistant's answers back."""
    from models import embedded_store
    from models.whisper_asr import WhisperRecognizer
    import soxr

    recognizer = WhisperRecognizer(model_dir=embedded_store.ensure_model(embedded_store.WHISPER_BASE,
                                                                         REPO / "var" / "models"))

    def transcribe(audio, rate: int, language: str = "en") -> str:
        audio16 = (soxr.resample(audio, rate, 16_000) if rate != 16_000 else audio).astype("float32")
        return " ".join(recognizer.transcribe(piece, language=language).text for piece in _pieces(audio16)).strip()

    return transcribe


def _pieces(audio16, *, most_s: float = 25.0) -> list:
    """A long answer in pieces of at most ``most_s``, each cut at the quietest 20 ms of its second
    half. Whisper decodes audio over 30 s in 30 s windows without timestamps, and a window whose
    decode ends early (an answer read as a list) loses the rest of that window's words."""
    import numpy as np

    most, frame = int(most_s * 16_000), 320
    pieces, start = [], 0
    while len(audio16) - start > most:
        half = audio16[start + most // 2: start + most]
        energy = np.sqrt((half[: len(half) // frame * frame].reshape(-1, frame) ** 2).mean(axis=1))
        cut = start + most // 2 + int(np.argmin(energy)) * frame
        pieces.append(audio16[start:cut])
        start = cut
    pieces.append(audio16[start:])
    return pieces
