"""CosyVoice 2/3 zero-shot streaming synthesis, in a worker process that owns the GPU.

The model (torch on CUDA) lives in one child process; the server talks to it over two
multiprocessing queues, so torch never loads into the server and a CUDA fault cannot take
the server down. Every request has its own id, text queue and thread inside the worker:
CosyVoice's own model keeps per-request state keyed by a uuid and is meant to be driven from
several threads, so two sessions speak at once without sharing stream state.

Requests: the response runner calls :meth:`CosyVoiceSynthesizer.synthesize` once per chunk of
the sentence chunker (the first clause, then whole sentences), reads its audio chunks and closes
the iterator when the chunk is spoken or the answer is cancelled; closing it early tells the
worker to drop the request (its model generator is closed and its text queue forgotten).
:meth:`CosyVoiceSynthesizer.open_stream` can also take text as the LLM produces it
(``inference_zero_shot`` accepts a text generator); the runner does not use that yet.
Speakers are zero-shot prompts: ``NAME.wav`` (a few seconds of speech) beside ``NAME.txt``
(its transcript) in one folder; each is registered once with ``add_zero_shot_spk``.

The model-call boundary is :class:`ZeroShotModel`; :func:`load_cosyvoice` builds the real one
and the tests load a stand-in through ``model_factory`` (a "module:function" path).
"""

from __future__ import annotations

import importlib
import itertools
import logging
import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf
import soxr

log = logging.getLogger(__name__)

PROMPT_RATE_HZ = 16_000
READY_TIMEOUT_S = 600.0
"""Loading CosyVoice2-0.5B with its flow and HiFT vocoder takes tens of seconds on a GPU."""


class ZeroShotModel(Protocol):
    """What the worker calls: CosyVoice2's methods, with numpy arrays at the boundary."""

    sample_rate: int

    def add_zero_shot_spk(self, prompt_text: str, prompt_speech_16k: np.ndarray, zero_shot_spk_id: str) -> bool: ...

    def inference_zero_shot(self, tts_text: Any, prompt_text: str, prompt_speech_16k: Any,
                            zero_shot_spk_id: str = "", stream: bool = False,
                            speed: float = 1.0) -> Iterator[dict[str, Any]]: ...


@dataclass(frozen=True)
class SpeakerPrompt:
    name: str
    wav: Path
    text: str


@dataclass(frozen=True)
class CosyVoiceConfig:
    model_dir: Path
    prompts_dir: Path
    default_speaker: str = ""
    fp16: bool = True
    load_vllm: bool = False
    model_factory: str = "models.cosyvoice_tts:load_cosyvoice"


def read_speaker_prompts(prompts_dir: Path) -> list[SpeakerPrompt]:
    prompts = [SpeakerPrompt(wav.stem, wav, wav.with_suffix(".txt").read_text(encoding="utf-8").strip())
               for wav in sorted(Path(prompts_dir).glob("*.wav")) if wav.with_suffix(".txt").exists()]
    if not prompts:
        raise FileNotFoundError(f"no speaker prompts (NAME.wav beside NAME.txt) in {prompts_dir}")
    return prompts


def load_prompt_audio(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    return soxr.resample(audio, rate, PROMPT_RATE_HZ).astype(np.float32) if rate != PROMPT_RATE_HZ else audio


class _TorchBoundary:
    """The real CosyVoice behind the numpy boundary: tensors in, tensors out, on its device."""

    def __init__(self, model: Any) -> None:
        import torch

        self._torch = torch
        self._model = model
        self.sample_rate = int(model.sample_rate)

    def add_zero_shot_spk(self, prompt_text: str, prompt_speech_16k: np.ndarray, zero_shot_spk_id: str) -> bool:
        return self._model.add_zero_shot_spk(prompt_text, self._torch.from_numpy(prompt_speech_16k)[None, :],
                                             zero_shot_spk_id)

    def inference_zero_shot(self, tts_text: Any, prompt_text: str, prompt_speech_16k: Any,
                            zero_shot_spk_id: str = "", stream: bool = False, speed: float = 1.0):
        return self._model.inference_zero_shot(tts_text, prompt_text, prompt_speech_16k,
                                               zero_shot_spk_id=zero_shot_spk_id, stream=stream, speed=speed)


def load_cosyvoice(config: CosyVoiceConfig) -> ZeroShotModel:
    """The real model (runs in the worker). CosyVoice is installed from its repository, not PyPI:
    see README, "Production engines"."""
    from cosyvoice.cli import cosyvoice as cv  # noqa: PLC0415 (only in the worker)

    model_dir = str(config.model_dir)
    if hasattr(cv, "AutoModel"):  # CosyVoice 3 releases pick the class from the model folder
        model = cv.AutoModel(model_dir=model_dir, fp16=config.fp16, load_vllm=config.load_vllm)
    else:
        model = cv.CosyVoice2(model_dir, load_jit=False, load_trt=False, load_vllm=config.load_vllm, fp16=config.fp16)
    return _TorchBoundary(model)


def _factory(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


# -- the worker process ------------------------------------------------------------------
_END = object()


def _pcm16(chunk: Any) -> bytes:
    speech = chunk["tts_speech"]
    if hasattr(speech, "detach"):
        speech = speech.detach().cpu().numpy()
    audio = np.asarray(speech, dtype=np.float32).reshape(-1)
    return np.clip(audio * 32768, -32768, 32767).astype("<i2").tobytes()


def _worker_main(config: CosyVoiceConfig, inbox: mp.Queue, outbox: mp.Queue) -> None:
    try:
        model: ZeroShotModel = _factory(config.model_factory)(config)
        speakers = read_speaker_prompts(config.prompts_dir)
        for prompt in speakers:
            model.add_zero_shot_spk(prompt.text, load_prompt_audio(prompt.wav), prompt.name)
    except Exception as exc:  # the parent turns this into a clear start-up error
        outbox.put(("failed", repr(exc)))
        return
    outbox.put(("ready", model.sample_rate, [p.name for p in speakers]))
    texts: dict[int, queue.Queue] = {}
    cancelled: set[int] = set()
    lock = threading.Lock()

    def speak(rid: int, speaker: str, speed: float, pieces: queue.Queue) -> None:
        def text_in() -> Iterator[str]:
            while (piece := pieces.get()) is not _END:
                yield piece

        chunks = None
        try:
            chunks = model.inference_zero_shot(text_in(), "", None, zero_shot_spk_id=speaker, stream=True,
                                               speed=speed)
            for chunk in chunks:
                if rid in cancelled:
                    break
                outbox.put(("audio", rid, _pcm16(chunk)))
            outbox.put(("done", rid))
        except Exception as exc:
            outbox.put(("error", rid, repr(exc)))
        finally:
            if chunks is not None and hasattr(chunks, "close"):
                try:
                    chunks.close()  # a cancelled request's model generator ends now, not at garbage collection
                except Exception:  # noqa: BLE001 (its own clean-up failing must not kill the worker)
                    log.exception("closing CosyVoice request %d", rid)
            with lock:
                texts.pop(rid, None)
                cancelled.discard(rid)

    while True:
        command = inbox.get()
        op = command[0]
        if op == "stop":
            return
        rid = command[1]
        if op == "requests":  # which requests the worker still holds (tests, diagnostics)
            with lock:
                outbox.put(("requests", rid, sorted(texts)))
        elif op == "open":
            pieces: queue.Queue = queue.Queue()
            with lock:
                texts[rid] = pieces
            threading.Thread(target=speak, args=(rid, command[2], command[3], pieces), name=f"cosyvoice-{rid}",
                             daemon=True).start()
        elif op == "text" and rid in texts:
            texts[rid].put(command[2])
        elif op == "end" and rid in texts:
            texts[rid].put(_END)
        elif op == "cancel" and rid in texts:
            cancelled.add(rid)
            texts[rid].put(_END)


# -- the server side ---------------------------------------------------------------------
class CosyVoiceError(RuntimeError):
    pass


class CosyVoiceStream:
    """One utterance: push text as it arrives, read audio as it is made. Not shared."""

    def __init__(self, owner: CosyVoiceSynthesizer, rid: int) -> None:
        self._owner, self.rid = owner, rid
        self._audio: queue.Queue = queue.Queue()
        self._ended = False
        self.finished = False

    def push_text(self, text: str) -> None:
        if text and not self._ended:
            self._owner._send(("text", self.rid, text))

    def end_text(self) -> None:
        if not self._ended:
            self._ended = True
            self._owner._send(("end", self.rid))

    def cancel(self) -> None:
        if not self.finished:
            self._ended = True
            self._owner._send(("cancel", self.rid))
            self._owner._forget(self.rid)
            self.finished = True

    def audio(self, timeout_s: float = 60.0) -> Iterator[np.ndarray]:
        """Blocking (run it in the TTS executor): int16 chunks until the utterance is done."""
        try:
            while True:
                try:
                    kind, payload = self._audio.get(timeout=timeout_s)
                except queue.Empty:
                    raise CosyVoiceError(f"no audio from the CosyVoice worker for {timeout_s:.0f} s") from None
                if kind == "audio":
                    yield np.frombuffer(payload, dtype="<i2")
                elif kind == "error":
                    raise CosyVoiceError(payload)
                else:
                    self.finished = True
                    return
        finally:
            self.cancel()  # a consumer that stops pulling (barge-in) stops the worker's thread


class CosyVoiceSynthesizer:
    """:class:`models.interfaces.SpeechSynthesizer` backed by the worker process."""

    def __init__(self, config: CosyVoiceConfig) -> None:
        self.config = config
        ctx = mp.get_context("spawn")  # CUDA cannot be used in a forked child
        self._inbox, self._outbox = ctx.Queue(), ctx.Queue()
        self._process = ctx.Process(target=_worker_main, args=(config, self._inbox, self._outbox),
                                    name="cosyvoice-worker", daemon=True)
        self._process.start()
        try:
            ready = self._outbox.get(timeout=READY_TIMEOUT_S)
        except queue.Empty:
            self._process.kill()
            raise CosyVoiceError("the CosyVoice worker did not start") from None
        if ready[0] != "ready":
            self._process.join(5)
            raise CosyVoiceError(f"the CosyVoice worker failed to load {config.model_dir}: {ready[1]}")
        self.sample_rate: int = ready[1]
        self.speakers: list[str] = ready[2]
        self._default = config.default_speaker or self.speakers[0]
        self._streams: dict[int, CosyVoiceStream] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._replies: queue.Queue = queue.Queue()
        self._query_lock = threading.Lock()
        self._closed = False
        self._router = threading.Thread(target=self._route, name="cosyvoice-router", daemon=True)
        self._router.start()

    @property
    def worker_pid(self) -> int | None:
        return self._process.pid

    def _send(self, command: tuple) -> None:
        if not self._closed:
            self._inbox.put(command)

    def _forget(self, rid: int) -> None:
        with self._lock:
            self._streams.pop(rid, None)

    def _route(self) -> None:
        while True:
            try:
                message = self._outbox.get()
            except (EOFError, OSError):
                return
            if message[0] == "closed":
                return
            if message[0] == "requests":
                self._replies.put((message[1], message[2]))
                continue
            with self._lock:
                stream = self._streams.get(message[1])
            if stream is not None:
                stream._audio.put((message[0], message[2] if len(message) > 2 else None))

    def open_stream(self, *, voice: str | None = None, speed: float = 1.0) -> CosyVoiceStream:
        if self._closed:
            raise CosyVoiceError("the CosyVoice worker is shut down")
        speaker = voice if voice in self.speakers else self._default
        stream = CosyVoiceStream(self, next(self._ids))
        with self._lock:
            self._streams[stream.rid] = stream
        self._send(("open", stream.rid, speaker, speed))
        return stream

    def synthesize(self, text: str, *, voice: str | None = None, speed: float = 1.0) -> Iterator[np.ndarray]:
        """One request for ``text``: its audio chunks (blocking; run it in the TTS executor).

        Closing the iterator before its end (``.close()``, from the thread that reads it) cancels
        the request: the worker stops its model generator and forgets it."""
        stream = self.open_stream(voice=voice, speed=speed)
        try:
            stream.push_text(text)
            stream.end_text()
            yield from stream.audio()
        finally:
            stream.cancel()  # a no-op once the worker said "done"

    def active_requests(self, timeout_s: float = 5.0) -> list[int]:
        """The request ids the worker process still holds (each has a thread and a text queue there)."""
        if self._closed:
            return []
        with self._query_lock:
            token = next(self._ids)
            self._send(("requests", token))
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    answered, requests = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise CosyVoiceError(f"the CosyVoice worker did not answer within {timeout_s:g} s") from None
                if answered == token:  # an earlier question's late answer is dropped
                    return requests

    def close(self) -> None:
        """Stop the worker process (gently, then by force) and end every open stream with an error.
        Idempotent."""
        if self._closed:
            return
        if self._process.is_alive():
            self._inbox.put(("stop",))
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5)
        self._closed = True
        self._outbox.put(("closed",))
        self._router.join(5)
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:  # a reader blocked on audio() wakes now instead of at its timeout
            stream._audio.put(("error", "the CosyVoice worker was shut down"))
        self._inbox.cancel_join_thread()
        self._outbox.cancel_join_thread()
