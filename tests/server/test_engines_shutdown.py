"""Shutdown closes the engines: ``Engines.aclose`` stops the CosyVoice worker process, vLLM's engine,
HTTP clients and the stage executors, and ``tingshuo serve`` calls it after its sessions close, so a
SIGTERM leaves no child process behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf

from models.cosyvoice_tts import CosyVoiceConfig, CosyVoiceSynthesizer
from models.vllm_chat import VLLMChatModel, VLLMParams
from server.engines import Engines, Executors
from tests.e2e.conftest import REPO, _free_port
from tests.e2e.realtime_client import AUDIO_DIR
from tests.server.session_harness import QuietVAD, ScriptedASR, ScriptedChat

PROMPT = AUDIO_DIR / "zh" / "zh_cosyvoice_prompt.wav"


def speaker_prompts(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    audio, rate = sf.read(PROMPT, dtype="float32")
    sf.write(folder / "alice.wav", audio, rate)
    (folder / "alice.txt").write_text("希望你以后能够做的比我还好呦。", encoding="utf-8")
    return folder


def children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc; zombies count as gone)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, stack = [], [pid]
    while stack:
        kids = parents.get(stack.pop(), [])
        found += kids
        stack += kids
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class ClosableASR(ScriptedASR):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class BrokenPartials:
    language = "en"

    def close(self) -> None:
        raise RuntimeError("already gone")


class StandInVLLMEngine:
    def __init__(self) -> None:
        self.shut_down = False

    def shutdown(self) -> None:
        self.shut_down = True


async def test_aclose_stops_the_cosyvoice_worker_vllm_and_the_executors(tmp_path):
    prompts = speaker_prompts(tmp_path / "prompts")
    tts = CosyVoiceSynthesizer(CosyVoiceConfig(model_dir=prompts, prompts_dir=prompts,
                                               model_factory="tests.models.cosyvoice_standin:load"))
    worker = tts._process
    assert worker.is_alive() and worker.pid in children(os.getpid())
    vllm = StandInVLLMEngine()
    asr = ClosableASR()
    engines = Engines(vad=QuietVAD(), turn=None, asr=asr, llm=VLLMChatModel(VLLMParams(model="m"), engine=vllm),
                      tts=tts, executors=Executors(), partials=BrokenPartials())
    assert await asyncio.get_running_loop().run_in_executor(engines.executors.tts, lambda: 42) == 42
    await engines.aclose()
    assert not worker.is_alive() and worker.exitcode == 0, "the worker stopped on its stop command"
    assert vllm.shut_down and asr.closed == 1, "a partials engine failing to close does not stop the rest"
    for pool in engines.executors.all():
        with pytest.raises(RuntimeError):
            pool.submit(print)
    await engines.aclose()  # idempotent
    assert asr.closed == 1


async def test_aclose_with_engines_that_hold_nothing():
    engines = Engines(vad=QuietVAD(), turn=None, asr=ScriptedASR(), llm=ScriptedChat(["hi"]), tts=None,
                      executors=Executors())
    await engines.aclose()
    with pytest.raises(RuntimeError):
        engines.executors.llm.submit(print)


WRAPPER = """
import sys
from pathlib import Path

from models.cosyvoice_tts import CosyVoiceConfig, CosyVoiceSynthesizer
from server import engines

def standin_cosyvoice(config):  # CosyVoice's weights and torch are not here: its stand-in, in the real worker
    c = config.cosyvoice
    return CosyVoiceSynthesizer(CosyVoiceConfig(model_dir=Path(c.model_dir), prompts_dir=Path(c.prompts_dir),
                                                model_factory="tests.models.cosyvoice_standin:load"))

engines._load_cosyvoice = standin_cosyvoice
from tingshuo.cli import main  # the `tingshuo` console script
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_stops_the_server_and_its_cosyvoice_worker_process(tmp_path):
    pytest.importorskip("onnx")
    from tests.models import sherpa_standin

    prompts = speaker_prompts(tmp_path / "prompts")
    sherpa = sherpa_standin.build_zipformer2_ctc(tmp_path / "sherpa").directory
    fake = tmp_path / "site"
    (fake / "cosyvoice").mkdir(parents=True)
    (fake / "cosyvoice" / "__init__.py").write_text("")  # what the start-up check looks for
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(fake)]),
           "TINGSHUO_MEMORY_PATH": str(tmp_path / "memory.sqlite"),
           "TINGSHUO_KNOWLEDGE_PATH": str(tmp_path / "knowledge.sqlite")}
    args = ["--set", f"server.port={port}", "--set", "server.log_level=INFO",
            "--set", f"models.sherpa_model={sherpa}", "--set", "models.turn_model=none",
            "--set", "models.llm_base_url=http://127.0.0.1:9/v1", "--set", "models.llm_model=none",
            "--set", f"cosyvoice.model_dir={prompts}", "--set", f"cosyvoice.prompts_dir={prompts}",
            "serve", "--asr", "sherpa", "--llm", "openai", "--tts", "cosyvoice"]
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", WRAPPER, *args], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-4000:]
                time.sleep(0.3)
        spawned = children(proc.pid)
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode() for pid in spawned]
        assert any("multiprocessing" in c for c in commands), commands  # the CosyVoice worker runs
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    end = time.monotonic() + 10
    while any(alive(pid) for pid in spawned) and time.monotonic() < end:
        time.sleep(0.1)
    assert not [pid for pid in spawned if alive(pid)], f"left behind: {commands}"
    text = log_path.read_text()
    assert "closed the tts engine" in text and "closed the llm engine" in text, text[-3000:]
