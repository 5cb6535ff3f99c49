"""``tingshuo models``: the catalogue as a user sees it, and refusals with a reason."""

from __future__ import annotations

from server.cli import main


def test_list_shows_embedded_and_production_models_with_install_state(capsys, tmp_path):
    assert main(["--set", f"models.model_dir={tmp_path}", "models", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert lines["whisper-base"].split()[2:4] == ["pip", "no"]  # nothing assembled in an empty folder
    assert "sherpa-onnx" in lines["zipformer-en-2023-06-26"] and " no " in lines["zipformer-en-2023-06-26"]
    assert "cosyvoice" in lines["cosyvoice2-0.5b"]


def test_pull_of_an_unknown_model_names_the_known_ones(capsys, tmp_path):
    assert main(["--set", f"models.model_dir={tmp_path}", "models", "pull", "gpt-9"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'gpt-9'" in err and "zipformer-en-2023-06-26" in err


def test_pull_without_a_pinned_checksum_asks_for_one(capsys, tmp_path):
    assert main(["--set", f"models.model_dir={tmp_path}", "models", "pull", "cosyvoice2-0.5b"]) == 1
    assert "--sha256" in capsys.readouterr().err
    assert not (tmp_path / "CosyVoice2-0.5B").exists()
