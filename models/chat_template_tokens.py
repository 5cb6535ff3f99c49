"""A model's own chat template and tokenizer, without the model: what an exported training
example becomes in that model's prompt, and how many tokens that is.

``tingshuo data export`` measures every example the way the fine-tuning run will see it, so an
example cut to ``--cutoff-len`` by the trainer (losing its answer) never leaves here. The
template is rendered as transformers' ``apply_chat_template`` renders it (a sandboxed jinja2
environment with ``trim_blocks`` and ``lstrip_blocks``, its ``tojson`` that does not escape HTML,
``raise_exception``, ``strftime_now``, the ``loopcontrols`` extension, ``add_generation_prompt``
off: a training example ends with its answer), so the count is the trainer's count.

Two sources carry both halves: the embedded GGUF (``tokenizer.chat_template`` in its metadata,
its vocabulary read by llama.cpp with ``vocab_only``: no weights loaded) and a Hugging Face
model folder (``tokenizer.json`` through ``tokenizers``; the template from ``chat_template.jinja``
or ``tokenizer_config.json``). Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

Message = dict[str, Any]
"""An OpenAI-style chat message: system, user, assistant (``content`` and/or ``tool_calls``), tool."""


class TokenizerLoadError(ValueError):
    """The model named has no usable tokenizer or chat template; the message says what is missing."""


class ChatTemplateTokenizer:
    """Renders messages with one model's chat template and counts them with its tokenizer.

    Satisfies ``thinking.training_data.token_windows.TokenCounter`` (``count(messages, tools)``).
    """

    def __init__(self, *, chat_template: str, encode: Callable[[str], list[int]],
                 special_tokens: dict[str, str] | None = None, name: str = "",
                 tool_use_template: str = "") -> None:
        self.name = name
        self._encode = encode
        self._special_tokens = dict(special_tokens or {})
        self._template = _compile(chat_template)
        # Models with named templates keep one for prompts with tools; transformers picks it then.
        self._tool_use_template = _compile(tool_use_template) if tool_use_template else self._template

    @classmethod
    def from_gguf(cls, path: Path | str) -> ChatTemplateTokenizer:
        """The vocabulary and template a GGUF carries (llama.cpp, ``vocab_only``: no weights read)."""
        path = Path(path)
        if not path.is_file():
            raise TokenizerLoadError(f"{path}: no such GGUF file")
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise TokenizerLoadError(f"{path}: reading a GGUF needs llama-cpp-python (the 'embedded' extra)") from exc
        # llama.cpp's log (through llama-cpp-python's callback, to sys.stderr) complains that a
        # vocabulary-only context exceeds the absent training context: kept for an error message only.
        log = io.StringIO()
        try:
            with contextlib.redirect_stderr(log):
                llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            detail = " ".join(part for part in (str(exc), log.getvalue().strip()) if part)
            raise TokenizerLoadError(f"{path}: llama.cpp could not read it: {detail}") from exc
        template = llm.metadata.get("tokenizer.chat_template", "")
        if not template:
            raise TokenizerLoadError(f"{path}: the GGUF carries no tokenizer.chat_template")
        special = {}
        for key, token_id in (("bos_token", llm.token_bos()), ("eos_token", llm.token_eos())):
            if token_id >= 0:
                special[key] = llm.detokenize([token_id], special=True).decode("utf-8", errors="replace")

        def encode(text: str) -> list[int]:
            # The template writes its special tokens as text: parse them, add no BOS of our own.
            return llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

        return cls(chat_template=template, encode=encode, special_tokens=special, name=path.name)

    @classmethod
    def from_hf_dir(cls, path: Path | str) -> ChatTemplateTokenizer:
        """A Hugging Face model folder: ``tokenizer.json``, and the template from
        ``chat_template.jinja`` (newer transformers save it there) or ``tokenizer_config.json``."""
        path = Path(path)
        tokenizer_file = path / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise TokenizerLoadError(f"{path}: no tokenizer.json (a Hugging Face model folder is expected)")
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise TokenizerLoadError(f"{path}: reading tokenizer.json needs the 'tokenizers' package") from exc
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # tokenizers raises its own Exception subclass for a bad file
            raise TokenizerLoadError(f"{tokenizer_file}: {exc}") from exc
        config = _read_json(path / "tokenizer_config.json")
        template, tool_use_template = _hf_templates(path, config)
        special = {key: _token_text(config[key]) for key in ("bos_token", "eos_token", "unk_token", "pad_token")
                   if config.get(key)}

        def encode(text: str) -> list[int]:
            return tokenizer.encode(text, add_special_tokens=False).ids

        return cls(chat_template=template, encode=encode, special_tokens=special, name=path.name,
                   tool_use_template=tool_use_template)

    def render(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] = ()) -> str:
        """The prompt text of a whole training example, its last answer included."""
        from jinja2 import TemplateError

        try:
            template = self._tool_use_template if tools else self._template
            return template.render(messages=[_template_message(m) for m in messages],
                                         tools=list(tools) or None, documents=None,
                                         add_generation_prompt=False, **self._special_tokens)
        except TemplateError as exc:
            raise ValueError(f"{self.name}: its chat template refused the messages: {exc}") from exc

    def tokenize(self, text: str) -> list[int]:
        return self._encode(text)

    def count(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] = ()) -> int:
        return len(self._encode(self.render(messages, tools)))


def load_tokenizer(model: str | Path | None, config: Any) -> ChatTemplateTokenizer:
    """``--model``: a GGUF file or a Hugging Face model folder; none: the embedded GGUF the
    configuration serves (``models.llm``: SmolLM2 when chosen, else Qwen2.5-0.5B), assembled
    under ``models.model_dir`` as the server does. ``config`` is the server's ``Config``."""
    if model is None:
        from models import embedded_store

        spec = embedded_store.SMOLLM2_135M if config.models.llm == "smollm2-135m" else embedded_store.QWEN_05B
        try:
            directory = embedded_store.ensure_model(spec, Path(config.models.model_dir))
        except embedded_store.ModelAssemblyError as exc:
            raise TokenizerLoadError(f"the embedded {spec.key}: {exc}") from exc
        return ChatTemplateTokenizer.from_gguf(directory / "model.gguf")
    path = Path(model)
    if path.is_dir():
        return ChatTemplateTokenizer.from_hf_dir(path)
    if path.is_file():
        return ChatTemplateTokenizer.from_gguf(path)
    raise TokenizerLoadError(f"--model {model}: neither a GGUF file nor a Hugging Face model folder "
                             "(downloading one is not done here: give a local path)")


# --- internals -----------------------------------------------------------------------------------


def _compile(chat_template: str):
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: int | str | None = None,
               separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
        # jinja2's own tojson escapes <, >, & and ' for HTML: the model was trained on plain JSON.
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        return env.from_string(chat_template)
    except jinja2.TemplateSyntaxError as exc:
        raise TokenizerLoadError(f"the chat template does not parse: {exc}") from exc


def _template_message(message: Message) -> Message:
    """Tool-call arguments as objects: templates apply ``tojson`` to them (models/chat_payloads.py
    says why a JSON string there would reach the model double-encoded)."""
    calls = message.get("tool_calls")
    if not calls:
        return message
    decoded = []
    for call in calls:
        function = dict(call.get("function", {}))
        if isinstance(function.get("arguments"), str):
            try:
                function["arguments"] = json.loads(function["arguments"] or "{}")
            except json.JSONDecodeError:
                pass  # shown as the text it was
        decoded.append({**call, "function": function})
    return {**message, "tool_calls": decoded}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TokenizerLoadError(f"{path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _hf_templates(path: Path, config: dict[str, Any]) -> tuple[str, str]:
    """(the template, the one for prompts with tools or ""), as transformers chooses them."""
    jinja_file = path / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8"), ""
    template = config.get("chat_template")
    tool_use = ""
    if isinstance(template, list):  # named templates: "default", and "tool_use" when tools are given
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or named.get("tool_use")
        tool_use = named.get("tool_use") or ""
    if not isinstance(template, str) or not template:
        raise TokenizerLoadError(f"{path}: no chat template (neither chat_template.jinja nor "
                                 "tokenizer_config.json's chat_template)")
    return template, tool_use


def _token_text(value: Any) -> str:
    """``tokenizer_config.json`` writes a special token as its text or as an AddedToken dict."""
    return value.get("content", "") if isinstance(value, dict) else str(value)
