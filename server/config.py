"""All configuration in one typed place: defaults here, then a TOML file, then env vars, then CLI flags.

Env vars are ``TINGSHUO_<SECTION>_<FIELD>`` (``TINGSHUO_SERVER_PORT=9000``); CLI
flags are ``--set section.field=value``. Every value is coerced to its field's
type, so a typo fails at start-up, not in the middle of a conversation.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ENV_PREFIX = "TINGSHUO_"

DEFAULT_INSTRUCTIONS = (
    "You are Tingshuo, a friendly voice assistant. Your replies are spoken aloud, so answer in one to "
    "three short sentences of plain conversational text: no lists, no markdown, no emoji. "
    "Answer in the language the user speaks."
)


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ServerSection:
    host: str = "127.0.0.1"
    port: int = 8765
    max_sessions: int = 8
    max_message_bytes: int = 4 * 1024 * 1024
    """Largest WebSocket message accepted; bigger ones get an error event, not a disconnect."""
    max_audio_append_ms: int = 10_000
    """Longest audio in one input_audio_buffer.append."""
    static_dir: str = ""
    """Where client_web/ lives; empty means the copy next to the server package."""
    log_level: str = "INFO"
    api_key: str = ""
    """When set, clients must present it: ``Authorization: Bearer`` or the browser subprotocol
    ``openai-insecure-api-key.<key>``. Empty means no authentication (loopback use).
    With a key, ``POST /v1/realtime/client_secrets`` mints short-lived secrets for browsers."""
    max_sessions_per_client: int = 8
    """Sessions one client address may hold at once (HTTP 429 beyond)."""
    trusted_proxies: tuple[str, ...] = ()
    """Reverse proxies (IPs or CIDRs; a TOML list, or comma-separated in env and ``--set``) whose
    ``X-Forwarded-For`` is believed: behind them the client address (per-client limit, logs) is the
    right-most forwarded address that is not itself one of them. Empty: the direct peer, always."""
    max_audio_speed: float = 4.0
    """Audio accepted per second of wall time, on average (after a 30 s burst): a microphone sends 1."""
    idle_timeout_s: float = 300.0
    """A session that sends nothing for this long is closed (after an ``error`` event saying why)."""
    max_session_minutes: float = 60.0
    """The longest a session may last, as in OpenAI's Realtime API."""
    shutdown_grace_s: float = 10.0
    """On SIGTERM, answers in flight may finish for this long before sessions close (code 1001)."""
    allowed_origins: str = ""
    """Comma-separated origins browsers may connect from (``https://kiosk.example``); empty: any."""
    send_timeout_s: float = 10.0
    """A send that cannot reach the client for this long (it stopped reading) aborts the connection."""
    send_buffer_bytes: int = 256 * 1024
    """Cap on the kernel send buffer and the transport's buffer per connection (about 4 s of
    base64 audio at 24 kHz): a stalled client is noticed after that much, not after megabytes."""
    max_conversation_items: int = 400
    """Items a conversation keeps; beyond it the oldest are deleted (``conversation.item.deleted``)."""
    max_item_chars: int = 32_000
    """Longest text of one ``conversation.item.create``."""

    def __post_init__(self) -> None:
        for entry in self.trusted_proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ConfigError(f"server.trusted_proxies: {entry!r} is not an IP address or network") from None


@dataclass(frozen=True)
class ModelsSection:
    model_dir: str = "var/models"
    asr: Literal["whisper-base", "sherpa"] = "whisper-base"
    """Final transcripts: the embedded Whisper base (CPU, from pip), or a sherpa-onnx streaming model
    (``sherpa_model``), which decodes while the user speaks and so also gives the live preview."""
    sherpa_model: str = ""
    """With ``asr = "sherpa"``: a key of ``models/sherpa_catalogue.py`` (unpacked under ``model_dir``)
    or the path of an unpacked sherpa-onnx streaming model directory."""
    provider: Literal["cpu", "cuda"] = "cpu"
    """Where sherpa-onnx runs. 'cuda' needs sherpa-onnx's CUDA build and uses a model's fp32 files
    ('cpu' prefers its int8 files)."""
    sherpa_hotwords: str = ""
    """Path of a hotwords file, one phrase per line, to bias recognition towards names and terms.
    Transducer models only (decoded with modified_beam_search then); others refuse it at start-up."""
    asr_language: str = ""
    """Empty: detect per utterance. 'en' or 'zh' pins it (faster and steadier)."""
    whisper_window_padding_s: float = 3.0
    """Whisper encodes the utterance plus this much silence instead of a 30 s window (0: the full
    window): 0.5-0.7 s a turn instead of 2.0-2.1 s on two cores, as accurate on the shared clips.
    A text that looks wrong (a loop, too few words), or has digits in a language Whisper is
    unsure of, is decoded again on the full window (models/whisper_asr.py)."""
    asr_partials: Literal["auto", "pocketsphinx", "off"] = "auto"
    """Live preview transcripts while the user speaks; the ASR's transcript stays the final one.
    'auto': the ASR's own when it streams (sherpa), else PocketSphinx (English only)."""
    llm: Literal["qwen2.5-0.5b", "smollm2-135m", "openai", "vllm"] = "qwen2.5-0.5b"
    """Embedded GGUFs on llama.cpp (``llm_engine``); 'openai': any OpenAI-compatible server (a vLLM server:
    ``llm_base_url``, ``llm_model``); 'vllm': vLLM in this process (section ``[vllm]``)."""
    llm_base_url: str = ""
    llm_endpoints: tuple[str, ...] = ()
    """With ``llm = "openai"``: several OpenAI-compatible servers serving the same model (vLLM servers,
    llama-servers; a TOML list, or comma-separated). Each conversation goes to the healthy one with
    the fewest conversations and stays there (its prompt cache); a connection error fails it over to
    the next. Empty: ``llm_base_url`` alone."""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_context_tokens: int = 4096
    """Per conversation: each llama-server slot gets this many tokens of context."""
    llm_engine: Literal["server", "in_process"] = "server"
    """How the embedded GGUFs run. 'server': llama.cpp's own server (``llama-server``, built by
    scripts/setup.sh) as a managed child process behind the same OpenAI-compatible adapter as
    vLLM, one slot and prompt cache per conversation, several answers at once; 'in_process':
    llama-cpp-python in this process, one context serving sessions in turn."""
    llm_server_binary: str = ""
    """Empty: ``bin/llama-server`` beside ``model_dir`` (``var/bin/llama-server``, where setup builds it)."""
    llm_server_slots: int = 4
    """Conversations llama-server serves at once, each on its own prompt cache; two more slots are
    kept, for background summaries and for the Mandarin turn judge (``assistant.text_turn_judge``).
    More sessions than slots share slots (and re-read prompts)."""
    llm_server_nice: int = 10
    """How far below the server llama-server is scheduled (``nice``), so the voices and Whisper,
    whose output the user waits for next, are not slowed by the answer's later tokens on a small
    machine (models/llama_server_process.py has the figures). 0: the same priority."""
    tts: Literal["embedded", "cosyvoice"] = "embedded"
    """'embedded': Piper (English) and Kokoro (Mandarin) on the CPU; 'cosyvoice': section ``[cosyvoice]``."""
    tts_zh: Literal["kokoro", "none"] = "kokoro"
    turn_model: Literal["smart-turn-v3.2", "none"] = "smart-turn-v3.2"
    inference_threads: int = 2


@dataclass(frozen=True)
class AssistantSection:
    instructions: str = DEFAULT_INSTRUCTIONS
    max_output_tokens: int = 200
    temperature: float = 0.6
    seed: int = -1
    """The sampler's seed for every answer; -1: a fresh one each time. A fixed seed makes the same
    conversation get the same answers, so two ``tingshuo bench`` runs compare the same work."""
    llm_first_token_timeout_s: float = 30.0
    """An LLM that sends no first token this long fails the response (an ``error`` event) instead of hanging."""
    llm_token_timeout_s: float = 15.0
    tts_chunk_timeout_s: float = 30.0
    asr_timeout_s: float = 60.0
    """Longest a final transcript may take; past it the turn fails with an apology and the ASR
    worker thread is replaced (a hung call cannot hold every session's recognition)."""
    vad_timeout_s: float = 5.0
    """Longest the VAD may take for one append's frames; past it that audio is dropped with an error."""
    turn_model_timeout_s: float = 2.0
    """Longest the semantic turn model may take; past it the silence rule alone ends the turn."""
    text_turn_judge: Literal["auto", "off"] = "auto"
    """'auto': when Smart Turn hears a Mandarin turn end, the embedded LLM reads its words first
    (models/llama_turn_judge.py) and a turn that reads unfinished waits for the longest silence;
    Smart Turn took 9 of 12 Mandarin half-sentences for finished. Only with the embedded llama-server."""
    text_turn_threshold: float = 0.05
    """Below this probability that the message ends, the words read unfinished."""
    text_turn_timeout_s: float = 2.0
    llm_adapter: str = ""
    """A LoRA adapter the LLM server serves beside its base model (a persona's fine-tune); empty: none."""
    personas_dir: str = ""
    """Directory of persona TOML files; empty: the ``personas/`` directory shipped with tingshuo."""
    persona: str = ""
    """The persona a session starts with (its id); empty: the plain ``instructions`` above."""
    server_tools: str = ""
    """Comma-separated server-side tools the LLM may call (``get_current_time``, ``search_knowledge_base``).
    Empty by default: their descriptions lengthen every prompt, and the embedded 0.5B model calls
    them unreliably (see the README's measurement); give them to a vLLM-served model."""
    tool_hint: str = ("Call get_current_time only when asked the time, day or date, and search_knowledge_base only "
                      "for questions about this place (hours, tickets, rules, services); otherwise just answer.")
    """Added to the instructions when server tools are offered: with it the embedded 0.5B model picked
    the right tool for 15 of 15 test questions instead of 10 (``python -m benchmarks.tool_calling``)."""
    timezone: str = "UTC"
    """The clock tool's zone when the user names none (an IANA name: ``Asia/Shanghai``)."""
    tool_filler_after_s: float = 0.6
    """A server tool still running after this long gets a short spoken filler ("One moment.")."""
    max_tool_rounds: int = 3
    """Tool calls one answer may chain before it must answer in words."""


@dataclass(frozen=True)
class VllmSection:
    """vLLM in process (``models.llm = "vllm"``); needs the ``gpu`` extra and a CUDA device."""

    model: str = ""
    """A Hugging Face id or a local folder; vLLM applies that model's chat template."""
    lora_adapters: str = ""
    """``NAME=PATH,NAME=PATH``: adapters a persona can name (``assistant.llm_adapter``)."""
    gpu_memory_utilization: float = 0.85
    max_model_len: int = 8192


@dataclass(frozen=True)
class CosyVoiceSection:
    """CosyVoice 2/3 (``models.tts = "cosyvoice"``), in a worker process that owns the GPU."""

    model_dir: str = "var/models/CosyVoice2-0.5B"
    prompts_dir: str = ""
    """Zero-shot speakers: ``NAME.wav`` (a few seconds of speech) beside ``NAME.txt`` (its words).
    The session's ``voice`` picks one by NAME."""
    default_speaker: str = ""
    fp16: bool = True
    load_vllm: bool = False


@dataclass(frozen=True)
class AudioSection:
    output_frame_ms: int = 40
    max_lead_ms: int = 120
    """Audio sent ahead of the client's estimated playback: a barge-in silences the client within
    this (the answer pauses at the first voiced frame; the client plays out what it holds). The
    pacer sends a frame whenever the lead drops to this, so the client holds 120-160 ms with 40 ms
    frames: enough to ride out event-loop and network jitter of a few frames, while the first
    voiced frame (32-64 ms into the speech) plus this stays under the 250 ms stop target."""
    vad_threshold: float = 0.5
    vad_start_ms: int = 96
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    early_asr_pause_ms: int = 160
    """Silence after which the turn so far is recognised ahead of the VAD's stop (250 ms with
    semantic_vad), when the recogniser has nothing else to do: the turn's transcript, and the
    answer started on it, are ready that much sooner. Speech again discards it (a wasted decode;
    on the shared recordings 3 pauses of 160-250 ms in 16 turns). 0: recognise at the stop."""
    barge_in_min_speech_ms: int = 400
    """Speech over an answer must last this long to become a user turn (the answer pauses at once)."""
    barge_in_confirm_speech_ms: int = 1200
    """Speech over an answer this long interrupts it whatever its words (longer than a backchannel)."""
    barge_in_max_pause_ms: int = 3000
    """An answer paused over short speech plays on after this if its words are still unknown."""
    max_turn_secs: int = 30
    """A turn longer than this is cut and answered (Whisper's window is 30 s)."""


@dataclass(frozen=True)
class MemorySection:
    """Long-term memory per user (``thinking/user_memory.py``) and the prompt's history budget."""

    path: str = "var/memory.sqlite"
    """The SQLite file holding every user's facts and conversation summaries."""
    enabled: bool = True
    max_facts_per_user: int = 200
    """Beyond this the oldest facts are forgotten."""
    history_token_budget: int = 1500
    """Tokens of instructions, summary and recent turns sent to the LLM; older turns are summarised."""
    recall_facts: int = 10
    """Facts put in a new session's prompt."""
    summary_timeout_s: float = 20.0
    """A history summary taking longer is dropped and the previous one kept."""


@dataclass(frozen=True)
class KnowledgeSection:
    """The operator's documents (``tingshuo kb add``), searched for passages an answer can cite."""

    path: str = "var/knowledge.sqlite"
    top_k: int = 3
    """Passages put in the prompt at most."""
    min_score: float = 0.2
    """Least centred cosine a passage needs (``thinking.knowledge_base.DEFAULT_MIN_SCORE`` says how it was measured)."""
    search_timeout_s: float = 0.5
    """A search taking longer is skipped and the answer goes ahead without passages."""


@dataclass(frozen=True)
class DataSection:
    """The data stage (``tingshuo data``): what the server keeps of conversations for fine-tuning."""

    record: Literal["off", "text", "audio"] = "off"
    """Off unless the operator turns it on (the page and the kiosk then say so); a persona's
    ``record`` overrides it. ``text``: every finished turn; ``audio``: its audio too."""
    dir: str = "var/data"
    """The store: ``data.sqlite`` and ``audio/``."""
    retention_days: float = 90.0
    """Recordings older than this are deleted (at start and daily); 0 keeps them."""


@dataclass(frozen=True)
class StateSection:
    """Where state shared by workers lives (README "Scaling out"). ``local``: in this process and
    SQLite files, for one machine. ``redis+postgres``: client secrets, per-client session counts
    and the session registry in Redis, user memory in PostgreSQL, so any worker behind the front
    door serves any client."""

    backend: Literal["local", "redis+postgres"] = "local"
    redis_url: str = ""
    """``redis://host:6379/0``; needed by ``redis+postgres``."""
    postgres_url: str = ""
    """``postgresql://user:password@host:5432/tingshuo``; needed by ``redis+postgres``."""
    worker_id: str = ""
    """How this worker names itself in the session registry; empty: ``HOSTNAME:PORT``."""
    call_timeout_s: float = 1.0
    """A Redis or PostgreSQL call taking longer fails (and degrades) instead of holding a session."""


@dataclass(frozen=True)
class Config:
    server: ServerSection = field(default_factory=ServerSection)
    models: ModelsSection = field(default_factory=ModelsSection)
    assistant: AssistantSection = field(default_factory=AssistantSection)
    audio: AudioSection = field(default_factory=AudioSection)
    vllm: VllmSection = field(default_factory=VllmSection)
    cosyvoice: CosyVoiceSection = field(default_factory=CosyVoiceSection)
    memory: MemorySection = field(default_factory=MemorySection)
    knowledge: KnowledgeSection = field(default_factory=KnowledgeSection)
    data: DataSection = field(default_factory=DataSection)
    state: StateSection = field(default_factory=StateSection)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {allowed}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: {value!r} is not a boolean")
    if annotation in (int, float, str):
        try:
            return annotation(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {value!r} is not {annotation.__name__}") from exc
    if origin in (types.UnionType, typing.Union):
        return value
    if origin is tuple:  # tuple[X, ...]: a TOML list, or "a,b" from the environment or --set
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{where}: {value!r} is not a list")
        item_type = typing.get_args(annotation)[0]
        return tuple(_coerce(item.strip() if isinstance(item, str) else item, item_type, where)
                     for item in items if not (isinstance(item, str) and not item.strip()))
    return value


def _apply(config: Config, overrides: dict[str, dict[str, Any]], source: str) -> Config:
    hints = typing.get_type_hints(Config)
    sections = {}
    for section_name, values in overrides.items():
        if section_name not in hints:
            raise ConfigError(f"{source}: unknown section [{section_name}]")
        section = getattr(config, section_name)
        field_hints = typing.get_type_hints(type(section))
        changes = {}
        for key, value in values.items():
            if key not in field_hints:
                raise ConfigError(f"{source}: unknown setting {section_name}.{key}")
            changes[key] = _coerce(value, field_hints[key], f"{source} {section_name}.{key}")
        sections[section_name] = dataclasses.replace(section, **changes)
    return dataclasses.replace(config, **sections)


def _env_overrides(environ: typing.Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for f in dataclasses.fields(Config):
        prefix = f"{ENV_PREFIX}{f.name.upper()}_"
        for key, value in environ.items():
            if key.startswith(prefix):
                out.setdefault(f.name, {})[key[len(prefix) :].lower()] = value
    return out


def _cli_overrides(assignments: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        section, dot, key = name.partition(".")
        if not sep or not dot:
            raise ConfigError(f"--set {item!r}: expected section.field=value")
        out.setdefault(section.strip(), {})[key.strip()] = value
    return out


def load_config(
    *, path: Path | None = None, environ: typing.Mapping[str, str] | None = None, assignments: list[str] = ()
) -> Config:
    environ = os.environ if environ is None else environ
    config = Config()
    path = path or (Path(environ[ENV_PREFIX + "CONFIG"]) if environ.get(ENV_PREFIX + "CONFIG") else None)
    if path is not None:
        with path.open("rb") as fh:
            config = _apply(config, tomllib.load(fh), str(path))
    config = _apply(config, _env_overrides(environ), "environment")
    return _apply(config, _cli_overrides(list(assignments)), "--set")
