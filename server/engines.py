"""Loads the engines once per server and gives each stage its own inference executor.

Each stage gets a dedicated single-thread executor: a long LLM generation or a
two-second Whisper decode never holds up the 0.3 ms VAD frames of another
session, and work within a stage runs in arrival order. A sherpa-onnx ASR is one
loaded model used from two executors (``asr`` for final transcripts, ``partials``
for previews); it serialises its own decode steps (models/sherpa_asr.py).
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from models.interfaces import (
    ChatModel, PartialRecognizer, SpeechRecognizer, SpeechSynthesizer, TurnEndModel, VoiceActivityModel,
)
from server.config import Config, ConfigError
from server.stage_executor import StageExecutor

if TYPE_CHECKING:
    from models.sherpa_asr import SherpaRecognizer

log = logging.getLogger(__name__)

EXECUTOR_JOIN_S = 5.0
"""At shutdown, how long model calls still running may take before the server stops waiting."""


@dataclass
class Executors:
    vad: StageExecutor = field(default_factory=lambda: StageExecutor("vad"))
    turn: StageExecutor = field(default_factory=lambda: StageExecutor("turn"))
    asr: StageExecutor = field(default_factory=lambda: StageExecutor("asr"))
    llm: StageExecutor = field(default_factory=lambda: StageExecutor("llm"))
    tts: StageExecutor = field(default_factory=lambda: StageExecutor("tts"))
    partials: StageExecutor = field(default_factory=lambda: StageExecutor("partials"))

    def all(self) -> tuple[StageExecutor, ...]:
        return (self.vad, self.turn, self.asr, self.llm, self.tts, self.partials)

    def shutdown(self) -> None:
        for pool in self.all():
            pool.shutdown(wait=False, cancel_futures=True)

    def join(self, timeout_s: float) -> None:
        """Blocking: wait up to ``timeout_s`` in all for the jobs still running after :meth:`shutdown`
        (bounded: a stuck call never ends, and this thread must not outlive the server)."""
        deadline = time.monotonic() + timeout_s
        for pool in self.all():
            pool.shutdown(wait=True, timeout_s=max(0.0, deadline - time.monotonic()))


@dataclass
class Engines:
    vad: VoiceActivityModel
    turn: TurnEndModel | None
    asr: SpeechRecognizer
    llm: ChatModel
    tts: SpeechSynthesizer
    executors: Executors
    partials: PartialRecognizer | None = None
    """Live preview recogniser; None when ``models.asr_partials = "off"``."""
    mandarin_partials: PartialRecognizer | None = None
    """Mandarin previews beside an English-only ``partials`` (Whisper decoding the growing turn)."""

    _closed: bool = field(default=False, init=False, repr=False)

    async def astart(self) -> None:
        """On the event loop, before serving: starts engines that run beside it (the managed
        llama-server child). Returns at once; :attr:`ready` says when they can take work."""
        for engine in (self.llm, self.tts, self.asr):
            if inspect.iscoroutinefunction(starter := getattr(engine, "astart", None)):
                await starter()

    @property
    def ready(self) -> bool:
        """False while an engine that runs beside the server starts or restarts after a crash."""
        return all(getattr(engine, "ready", True) for engine in (self.llm, self.tts, self.asr))

    async def aclose(self) -> None:
        """Server shutdown, after the sessions are closed: cancels the executors' queued jobs, then
        closes every engine that holds more than memory (vLLM's engine and its processes, the
        CosyVoice worker process, HTTP clients): ``aclose()`` where an engine has one, else
        ``close()`` on a thread. One failing does not stop the others. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.executors.shutdown()
        closed: set[int] = set()
        for stage, engine in (("llm", self.llm), ("tts", self.tts), ("asr", self.asr), ("partials", self.partials),
                              ("mandarin partials", self.mandarin_partials),
                              ("turn", self.turn), ("vad", self.vad)):
            if engine is None or id(engine) in closed:
                continue
            closed.add(id(engine))
            try:
                if inspect.iscoroutinefunction(closer := getattr(engine, "aclose", None)):
                    await closer()
                elif callable(closer := getattr(engine, "close", None)):
                    await asyncio.to_thread(closer)
                else:
                    continue
                log.info("closed the %s engine", stage)
            except Exception:
                log.exception("closing the %s engine failed", stage)
        try:  # a job still running finishes (its engine now fails it fast); let the threads end
            await asyncio.wait_for(asyncio.to_thread(self.executors.join, EXECUTOR_JOIN_S), timeout=EXECUTOR_JOIN_S + 1)
        except asyncio.TimeoutError:
            log.warning("a model call was still running %g s after shutdown began", EXECUTOR_JOIN_S)


@contextmanager
def _timed(what: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    log.info("loaded %s in %.2f s", what, time.perf_counter() - t0)


def _load_llm(config: Config, model_dir: Path, executors: Executors) -> ChatModel:
    from models import embedded_store

    m = config.models
    if m.llm == "openai":
        if m.llm_endpoints:  # several servers (or one, with health and fail-over): the pool; its prober starts in astart
            from models.pooled_chat import PooledChatModel

            if m.llm_base_url and m.llm_base_url not in m.llm_endpoints:
                log.warning("models.llm_base_url %s is not used: models.llm_endpoints lists the servers",
                            m.llm_base_url)
            return PooledChatModel(m.llm_endpoints, model=m.llm_model, api_key=m.llm_api_key)
        from models.openai_chat import OpenAIChatModel, OpenAIChatParams

        return OpenAIChatModel(params=OpenAIChatParams(base_url=m.llm_base_url, model=m.llm_model, api_key=m.llm_api_key))
    if m.llm == "vllm":
        from models.vllm_chat import VLLMChatModel, VLLMParams, parse_adapters

        v = config.vllm
        return VLLMChatModel(VLLMParams(model=v.model, adapters=parse_adapters(v.lora_adapters),
                                        gpu_memory_utilization=v.gpu_memory_utilization,
                                        max_model_len=v.max_model_len), executor=executors.llm)
    spec = embedded_store.QWEN_05B if m.llm == "qwen2.5-0.5b" else embedded_store.SMOLLM2_135M
    path = embedded_store.ensure_model(spec, model_dir) / "model.gguf"
    if m.llm_engine == "server":
        return _load_llama_server(config, path)
    from models.llama_chat import LlamaChatModel, LlamaParams

    params = LlamaParams(context_tokens=m.llm_context_tokens, threads=m.inference_threads)
    return LlamaChatModel(model_path=path, params=params, executor=executors.llm)


def llama_server_binary(config: Config) -> Path:
    """Where scripts/setup.sh puts it, found from ``model_dir`` so a server started elsewhere
    (an installed wheel, another working directory) finds it as it finds the models."""
    m = config.models
    return Path(m.llm_server_binary) if m.llm_server_binary else Path(m.model_dir).parent / "bin" / "llama-server"


def _load_llama_server(config: Config, model_path: Path) -> ChatModel:
    """The embedded GGUF on a llama-server child process; it starts with the event loop (Engines.astart)."""
    from models.llama_server_chat import LlamaServerChatModel, LlamaServerChatParams
    from models.llama_server_process import LlamaServerError, LlamaServerParams

    m = config.models
    if m.llm_server_slots < 1:
        raise ConfigError("models.llm_server_slots must be at least 1")
    server = LlamaServerParams(binary=llama_server_binary(config), model_path=model_path,
                               slots=m.llm_server_slots + 2,  # + background summaries + the turn judge
                               context_tokens_per_slot=m.llm_context_tokens, threads=m.inference_threads,
                               nice=m.llm_server_nice)
    try:
        return LlamaServerChatModel(server=server, params=LlamaServerChatParams(model_name=m.llm))
    except LlamaServerError as exc:
        raise ConfigError(f"models.llm_engine = 'server': {exc}") from exc


def _load_cosyvoice(config: Config) -> SpeechSynthesizer:
    from models.cosyvoice_tts import CosyVoiceConfig, CosyVoiceError, CosyVoiceSynthesizer

    c = config.cosyvoice
    try:
        return CosyVoiceSynthesizer(CosyVoiceConfig(model_dir=Path(c.model_dir), prompts_dir=Path(c.prompts_dir),
                                                    default_speaker=c.default_speaker, fp16=c.fp16,
                                                    load_vllm=c.load_vllm))
    except CosyVoiceError as exc:
        raise ConfigError(str(exc)) from exc


def check_production_engines(config: Config) -> None:
    """What can be checked before anything loads: a missing folder or package fails in a second."""
    m = config.models
    if m.llm == "vllm":
        if not config.vllm.model:
            raise ConfigError("models.llm = 'vllm' needs vllm.model (a Hugging Face id or a model folder)")
        if importlib.util.find_spec("vllm") is None:
            raise ConfigError("models.llm = 'vllm' needs vLLM: pip install -e '.[gpu]' (on a CUDA machine)")
    if m.llm == "openai":
        if not (m.llm_base_url or m.llm_endpoints) or not m.llm_model:
            raise ConfigError("models.llm = 'openai' needs models.llm_base_url (or models.llm_endpoints) "
                              "and models.llm_model")
        if any(not url for url in m.llm_endpoints) or len(set(m.llm_endpoints)) != len(m.llm_endpoints):
            raise ConfigError(f"models.llm_endpoints has an empty or repeated entry: {list(m.llm_endpoints)}")
    if m.tts == "cosyvoice":
        c = config.cosyvoice
        missing = [name for name, path in (("cosyvoice.model_dir", c.model_dir), ("cosyvoice.prompts_dir", c.prompts_dir))
                   if not path or not Path(path).is_dir()]
        if missing:
            raise ConfigError(f"models.tts = 'cosyvoice': {' and '.join(missing)} is not a folder (weights: "
                              "`tingshuo models pull cosyvoice2-0.5b --trust-unverified`; speakers: NAME.wav + "
                              "NAME.txt in the prompts folder)")
        if importlib.util.find_spec("cosyvoice") is None:
            raise ConfigError("models.tts = 'cosyvoice' needs the cosyvoice package: see README, Production engines")
    if m.llm in ("qwen2.5-0.5b", "smollm2-135m") and m.llm_engine == "server" \
            and not (binary := llama_server_binary(config)).is_file():
        raise ConfigError(f"models.llm_engine = 'server' needs {binary}: run scripts/setup.sh "
                          "(it builds llama-server), or set models.llm_engine = 'in_process'")


def _load_tts(config: Config, model_dir: Path) -> SpeechSynthesizer:
    if config.models.tts == "cosyvoice":
        return _load_cosyvoice(config)
    from models import embedded_store
    from models.piper_tts import PiperSynthesizer

    english = PiperSynthesizer(model_path=embedded_store.ensure_model(embedded_store.PIPER_JOE, model_dir)
                               / "en_US-joe-medium.onnx")
    if config.models.tts_zh == "none":
        return english
    from models.kokoro_tts import load_embedded_kokoro
    from models.language_router import LanguageRoutedSynthesizer

    chinese = load_embedded_kokoro(model_dir)
    return LanguageRoutedSynthesizer(default=english, by_language={"zh": chinese}, output_rate=english.sample_rate)


def _load_turn(config: Config, model_dir: Path) -> TurnEndModel | None:
    if config.models.turn_model == "none":
        return None
    from models.smart_turn import SmartTurn, ensure_smart_turn_model

    return SmartTurn(model_path=ensure_smart_turn_model(model_dir))


def _load_sherpa(config: Config, model_dir: Path) -> SherpaRecognizer:
    """Resolve, check and load the sherpa-onnx model; every problem becomes a ConfigError at start-up."""
    from models.sherpa_asr import SherpaParams, SherpaRecognizer, SherpaSetupError
    from models.sherpa_model_files import resolve_model

    m = config.models
    hotwords = Path(m.sherpa_hotwords).expanduser() if m.sherpa_hotwords else None
    params = SherpaParams(provider=m.provider, num_threads=m.inference_threads, hotwords_file=hotwords,
                          decoding_method="modified_beam_search" if hotwords else "greedy_search")
    try:
        model = resolve_model(m.sherpa_model, model_dir, precision=params.precision(),
                              default_languages=(m.asr_language,) if m.asr_language else ("en",))
        recognizer = SherpaRecognizer(model, params)
    except (ValueError, SherpaSetupError) as exc:  # SherpaModelError is a ValueError
        raise ConfigError(f"models.asr = 'sherpa': {exc}") from exc
    if m.asr_language and m.asr_language not in recognizer.languages:
        raise ConfigError(f"models.asr_language = {m.asr_language!r}, but the sherpa model in {model.directory} "
                          f"recognises {list(recognizer.languages)}")
    recognizer.open_stream().finish()  # a model that loads but cannot decode fails here, not at the first word
    return recognizer


def _load_asr(config: Config, model_dir: Path) -> SpeechRecognizer:
    from models import embedded_store
    from models.whisper_asr import WhisperParams, WhisperRecognizer

    m = config.models
    if m.asr == "sherpa":
        return _load_sherpa(config, model_dir)
    if m.sherpa_hotwords:
        raise ConfigError("models.sherpa_hotwords needs models.asr = 'sherpa'")
    return WhisperRecognizer(
        model_dir=embedded_store.ensure_model(embedded_store.WHISPER_BASE, model_dir),
        params=WhisperParams(cpu_threads=m.inference_threads, window_padding_s=m.whisper_window_padding_s),
    )


def _load_partials(config: Config, asr: SpeechRecognizer) -> PartialRecognizer | None:
    """'auto' previews with the ASR itself when it streams (one model, one decode per chunk), else PocketSphinx."""
    choice = config.models.asr_partials
    if choice == "off":
        return None
    if choice not in ("auto", "pocketsphinx"):
        raise ConfigError(f"models.asr_partials: {choice!r} is not one of ('auto', 'pocketsphinx', 'off')")
    from models.sherpa_asr import SherpaRecognizer

    if choice == "auto" and isinstance(asr, SherpaRecognizer):
        pinned = config.models.asr_language
        return asr.partials(pinned if pinned in asr.languages else None)
    from models.pocketsphinx_partials import PocketSphinxPartials

    partials = PocketSphinxPartials()
    partials.open_stream().close()  # a broken install fails here, at start-up, not at the first word
    return partials


def _load_mandarin_partials(config: Config, asr: SpeechRecognizer) -> PartialRecognizer | None:
    """'auto' with Whisper: Mandarin previews from Whisper itself (:mod:`models.whisper_partials`),
    since PocketSphinx knows only English. A streaming ASR previews its own languages."""
    from models.whisper_asr import WhisperRecognizer
    from models.whisper_partials import WhisperWindowPartials

    if config.models.asr_partials != "auto" or not isinstance(asr, WhisperRecognizer):
        return None
    return WhisperWindowPartials(asr, language="zh")


def load_engines(config: Config) -> Engines:
    """Blocking: loads every model (seconds). Call it before the event loop serves traffic.

    The ASR comes first: a misconfigured sherpa model fails start-up before anything slow loads.
    """
    from models.silero_vad import SileroVAD

    check_production_engines(config)
    model_dir = Path(config.models.model_dir)
    executors = Executors()
    with _timed(f"asr ({config.models.asr})"):
        asr = _load_asr(config, model_dir)
    with _timed("silero-vad"):
        vad = SileroVAD()
    with _timed("turn model"):
        turn = _load_turn(config, model_dir)
    with _timed("llm"):
        llm = _load_llm(config, model_dir, executors)
    with _timed("tts"):
        tts = _load_tts(config, model_dir)
    with _timed("partials"):
        partials = _load_partials(config, asr)
        mandarin_partials = _load_mandarin_partials(config, asr)
    return Engines(vad=vad, turn=turn, asr=asr, llm=llm, tts=tts, executors=executors, partials=partials,
                   mandarin_partials=mandarin_partials)
