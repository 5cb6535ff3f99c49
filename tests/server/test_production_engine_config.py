"""Start-up fails at once, naming what is missing, when a production engine is configured but absent."""

from __future__ import annotations

import pytest

from server.cli import main
from server.config import ConfigError, load_config
from server.engines import check_production_engines


def config(*assignments: str):
    return load_config(path=None, assignments=list(assignments))


def test_vllm_needs_a_model_and_the_package():
    with pytest.raises(ConfigError, match="vllm.model"):
        check_production_engines(config("models.llm=vllm"))
    with pytest.raises(ConfigError, match=r"\.\[gpu\]"):  # vLLM is not installed on this CPU machine
        check_production_engines(config("models.llm=vllm", "vllm.model=Qwen/Qwen2.5-7B-Instruct"))


def test_openai_endpoint_needs_url_and_model():
    with pytest.raises(ConfigError, match="llm_base_url"):
        check_production_engines(config("models.llm=openai"))
    check_production_engines(config("models.llm=openai", "models.llm_base_url=http://gpu:8000/v1",
                                    "models.llm_model=qwen"))


def test_cosyvoice_names_the_missing_folders(tmp_path):
    with pytest.raises(ConfigError, match="cosyvoice.model_dir and cosyvoice.prompts_dir"):
        check_production_engines(config("models.tts=cosyvoice", f"cosyvoice.model_dir={tmp_path / 'nope'}"))
    with pytest.raises(ConfigError, match="cosyvoice package"):
        check_production_engines(config("models.tts=cosyvoice", f"cosyvoice.model_dir={tmp_path}",
                                        f"cosyvoice.prompts_dir={tmp_path}"))


def test_serve_flags_select_engines_and_fail_fast(capsys, tmp_path):
    assert main(["--set", f"models.model_dir={tmp_path}", "serve", "--tts", "cosyvoice", "--llm", "openai"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tingshuo: cannot start:") and "llm_base_url" in err


def test_the_embedded_llm_on_llama_server_needs_the_built_binary(tmp_path):
    with pytest.raises(ConfigError, match="scripts/setup.sh"):
        check_production_engines(config(f"models.llm_server_binary={tmp_path / 'llama-server'}"))
    check_production_engines(config(f"models.llm_server_binary={tmp_path / 'llama-server'}",
                                    "models.llm_engine=in_process"))
