"""The voices' first audio alone and while llama-server generates an answer, at each ``nice``.

On a small machine the LLM keeps decoding the rest of an answer while the voice
synthesises its first clause, and both want every core. This times the first audio
of Piper (English clauses) and Kokoro (Mandarin first chunks) with nothing else
running, then while llama-server (the real child process, ``models.llama_server_process``)
generates a long answer at each niceness given; the LLM's own tokens/s are reported
too, so a faster voice bought with a starved LLM shows. p50 and max over the clips,
in one run.

    .venv/bin/python -m benchmarks.voice_contention 0 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from models import embedded_store
from models.kokoro_tts import load_embedded_kokoro
from models.llama_server_process import LlamaServerParams, LlamaServerProcess
from models.piper_tts import PiperSynthesizer

REPO = Path(__file__).resolve().parents[1]
ENGLISH = ["I'm sorry,", "Sure, I can help with that.", "The birch canoe slid on the smooth planks.", "That's great news!"]
MANDARIN = ["你好，很高兴", "今天天气晴朗，", "希望你以后能"]
STORY = {"messages": [{"role": "user", "content": "Tell me a long story about a dragon."}], "max_tokens": 300}


def _first_audio_ms(synthesize: Callable[[str], object], text: str) -> float:
    started = time.perf_counter()
    next(iter(synthesize(text)))
    return (time.perf_counter() - started) * 1000


def _time_voices(voices: dict[str, tuple[Callable[[str], object], list[str]]], repeats: int) -> dict[str, list[float]]:
    return {name: [_first_audio_ms(synth, text) for text in texts for _ in range(repeats)]
            for name, (synth, texts) in voices.items()}


def _line(label: str, times: dict[str, list[float]], extra: str = "") -> str:
    parts = [f"{name} p50 {statistics.median(xs):.0f} ms, max {max(xs):.0f} ms" for name, xs in times.items()]
    return f"{label}: " + "; ".join(parts) + extra


async def _under_generation(params: LlamaServerParams, voices, repeats: int) -> tuple[dict[str, list[float]], float]:
    process = LlamaServerProcess(params)
    process.start()
    stop = asyncio.Event()
    rates: list[float] = []

    async def generate() -> None:
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                async with http.post(process.base_url + "/v1/chat/completions", json=STORY) as response:
                    rates.append((await response.json())["timings"]["predicted_per_second"])

    try:
        await process.wait_ready(120)
        generator = asyncio.create_task(generate())
        await asyncio.sleep(2.0)  # into the decode
        times = await asyncio.to_thread(_time_voices, voices, repeats)
        stop.set()
        await generator
    finally:
        await process.aclose()
    return times, statistics.median(rates) if rates else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("nice", nargs="+", type=int, help="llama-server niceness values to compare")
    p.add_argument("--model-dir", type=Path, default=REPO / "var" / "models")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    piper = PiperSynthesizer(model_path=embedded_store.ensure_model(embedded_store.PIPER_JOE, args.model_dir)
                             / "en_US-joe-medium.onnx")
    kokoro = load_embedded_kokoro(args.model_dir)
    voices = {"piper": (piper.synthesize, ENGLISH), "kokoro": (kokoro.synthesize, MANDARIN)}
    _time_voices(voices, 1)  # warm-up
    print(_line("alone", _time_voices(voices, args.repeats)), flush=True)
    gguf = embedded_store.ensure_model(embedded_store.QWEN_05B, args.model_dir) / "model.gguf"
    for nice in args.nice:
        params = LlamaServerParams(binary=args.model_dir.parent / "bin" / "llama-server", model_path=gguf,
                                   slots=1, nice=nice)
        times, rate = asyncio.run(_under_generation(params, voices, args.repeats))
        print(_line(f"llama-server generating at nice {nice}", times, f"; the LLM {rate:.1f} tokens/s"), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
