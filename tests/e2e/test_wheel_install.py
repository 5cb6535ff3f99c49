"""A plain (non-editable) ``pip install`` of tingshuo's wheel serves the web page and the personas
and answers aloud, started from a folder that is not the checkout.

The wheel goes into a fresh virtual environment with ``--no-deps``; the dependencies come from the
project's own environment through a ``.pth`` file (which lists folders only: that environment's
editable install of tingshuo, a finder hooked in by its own ``.pth``, does not come along).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import REPO, STARTUP_TIMEOUT_S, _free_port
from tests.e2e.realtime_client import RealtimeTestClient

pytestmark = pytest.mark.e2e

ANSWER_TIMEOUT_S = 240


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of exactly what pyproject.toml packages (the checkout stays clean)."""
    src = tmp_path_factory.mktemp("src")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    setuptools = pyproject["tool"]["setuptools"]
    for package in setuptools["packages"]:
        folder = setuptools.get("package-dir", {}).get(package, package.replace(".", "/"))
        if not (src / folder).exists():
            shutil.copytree(REPO / folder, src / folder, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", out, src])
    (built,) = out.glob("tingshuo-*.whl")
    return built


@pytest.mark.timeout(900)  # builds the wheel (module fixture)
def test_wheel_carries_the_pages_the_personas_and_the_console_script(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("server/app.py", "tingshuo/cli.py", "benchmarks/harness.py", "server/client_web/index.html",
                     "server/client_web/kiosk.html", "server/client_web/embed.html",
                     "server/client_web/tingshuo-assistant.js", "server/client_web/tingshuo-assistant.css",
                     "server/client_web/js/worklets/capture-processor.js",
                     "server/client_web/js/worklets/playback-processor.js", "server/personas/museum_guide.toml",
                     "server/personas/library_guide_zh.toml"):
        assert required in names, required
    assert not any(n.startswith(("client_web/", "personas/")) for n in names)  # no generic top-level names
    for top in ("server", "streaming", "models", "benchmarks", "thinking", "tingshuo"):
        for init in (REPO / top).rglob("__init__.py"):  # every Python package of the checkout, subpackages too
            assert init.relative_to(REPO).as_posix() in names, f"{init.parent} is not in pyproject's packages"
    for name in (REPO / "client_web").rglob("*"):
        if name.is_file() and name.suffix in (".html", ".js", ".css"):
            assert "server/" + name.relative_to(REPO).as_posix() in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "tingshuo = tingshuo.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel])
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    deps = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (purelib / "zz_tingshuo_test_dependencies.pth").write_text("".join(f"{d}\n" for d in deps), encoding="utf-8")
    return venv


def _clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, **settings}


@pytest.mark.timeout(900)  # installs the wheel (module fixture)
def test_installed_packages_come_from_the_fresh_venv_not_the_checkout(fresh_venv, tmp_path):
    probe = _run([fresh_venv / "bin" / "python", "-c",
                  "import sys, server, tingshuo.cli, benchmarks, aiohttp\n"
                  "print(server.__file__); print(tingshuo.cli.__file__); print(benchmarks.__file__)\n"
                  "print(repr(sys.path))"], cwd=tmp_path, env=_clean_env())
    *files, path = probe.stdout.strip().splitlines()
    for file in files:
        assert Path(file).resolve().is_relative_to(fresh_venv.resolve()), file
    assert str(REPO) not in eval(path)  # noqa: S307 (our own repr of a list of strings)


async def _spoken_answer(url: str) -> tuple[dict, int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/") as page:
            assert page.status == 200
            assert "tingshuo-assistant" in await page.text()
        async with http.get(url + "/static/tingshuo-assistant.js") as widget:
            assert widget.status == 200
        async with http.get(url + "/v1/personas") as listed:
            assert listed.status == 200
            personas = {p["id"]: p for p in (await listed.json())["personas"]}
        ws = await http.ws_connect(url.replace("http", "ws") + "/v1/realtime", max_msg_size=0)
        client = RealtimeTestClient(ws=ws)
        client.start()
        try:
            await client.wait_for("session.created", timeout=30)
            await client.send({"type": "session.update",
                               "session": {"type": "realtime", "prompt": {"id": "museum_guide"}}})
            updated = await client.wait_for("session.updated", timeout=30)
            await client.send({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "Hello! Who are you?"}]}})
            await client.send({"type": "response.create"})
            done = await client.wait_for("response.done", timeout=ANSWER_TIMEOUT_S)
            audio_deltas = len(client.of_type("response.output_audio.delta"))
        finally:
            await client.close()
    assert updated["session"]["prompt"]["id"] == "museum_guide"
    return done, audio_deltas, personas


@pytest.mark.timeout(1200)  # builds and installs the wheel (module fixtures), then loads every model
def test_installed_wheel_serves_page_personas_and_a_spoken_answer(fresh_venv, tmp_path):
    workdir = tmp_path / "elsewhere"  # not the checkout: nothing may be found relative to the cwd
    workdir.mkdir()
    port = _free_port()
    env = _clean_env(TINGSHUO_SERVER_PORT=str(port), TINGSHUO_SERVER_LOG_LEVEL="INFO",
                     TINGSHUO_MODELS_MODEL_DIR=str(REPO / "var" / "models"),  # the assembled embedded models
                     TINGSHUO_MEMORY_PATH=str(tmp_path / "memory.sqlite"),
                     TINGSHUO_KNOWLEDGE_PATH=str(tmp_path / "knowledge.sqlite"))
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(fresh_venv / "bin" / "tingshuo"), "serve"], cwd=workdir, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(url + "/readyz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("installed server did not start:\n" + log_path.read_text()[-4000:])
                time.sleep(0.3)
        done, audio_deltas, personas = asyncio.run(_spoken_answer(url))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert {"museum_guide", "library_guide_zh"} <= set(personas)
    assert done["response"]["status"] == "completed", done
    assert audio_deltas > 0
    log_text = log_path.read_text()
    assert "museum_guide" in log_text  # the log's persona line: the installed personas/ was loaded
    assert str(REPO / "server") not in log_text
