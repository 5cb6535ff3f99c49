"""Production models that ``tingshuo models pull`` knows: where they come from, what they need.

The sherpa-onnx entries live with their adapter (``models/sherpa_catalogue.py``); CosyVoice's
weights are a Hugging Face repository of loose files. vLLM-served LLMs are not here: vLLM
fetches and caches its own weights (``vllm serve MODEL``).
"""

from __future__ import annotations

from models.model_downloads import DownloadableModel

COSYVOICE2_05B = DownloadableModel(
    key="cosyvoice2-0.5b",
    engine="cosyvoice",
    languages=("zh", "en", "ja", "ko", "yue"),
    licence="Apache-2.0 (FunAudioLLM/CosyVoice2-0.5B)",
    url="https://huggingface.co/FunAudioLLM/CosyVoice2-0.5B",
    sha256=None,
    size_bytes=None,
    archive_root="CosyVoice2-0.5B",
    files=(
        "cosyvoice.yaml", "llm.pt", "flow.pt", "hift.pt", "campplus.onnx", "speech_tokenizer_v2.onnx",
        "flow.decoder.estimator.fp32.onnx", "configuration.json",
        "CosyVoice-BlankEN/config.json", "CosyVoice-BlankEN/generation_config.json", "CosyVoice-BlankEN/merges.txt",
        "CosyVoice-BlankEN/model.safetensors", "CosyVoice-BlankEN/tokenizer_config.json",
        "CosyVoice-BlankEN/vocab.json",
    ),
    file_base_url="https://huggingface.co/FunAudioLLM/CosyVoice2-0.5B/resolve/main/",
    note="file list from the repository's published listing; no per-file sha256 is published in a form "
         "we could pin, so pull needs --trust-unverified and verify then checks against that first download. "
         "Newer CosyVoice code reads cosyvoice2.yaml: with such a checkout, fetch the repository with "
         "`huggingface-cli download FunAudioLLM/CosyVoice2-0.5B --local-dir var/models/CosyVoice2-0.5B`.",
)


def downloadable_models() -> tuple[DownloadableModel, ...]:
    from models.sherpa_catalogue import SHERPA_MODELS  # noqa: PLC0415

    return (*SHERPA_MODELS, COSYVOICE2_05B)


def find_model(key: str) -> DownloadableModel:
    for model in downloadable_models():
        if model.key == key:
            return model
    known = ", ".join(m.key for m in downloadable_models())
    raise KeyError(f"unknown model {key!r}; known: {known}")
