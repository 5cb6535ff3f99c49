"""English live-preview recognisers compared on the shared recordings: accuracy, cost, final-text
delay, and whether decoding holds Python's GIL (which stalls every session's event loop).

    python -m benchmarks.preview_recognisers            # PocketSphinx (the default preview)
    python -m benchmarks.preview_recognisers moonshine  # also Moonshine tiny-en, when installed:
        pip install --no-deps moonshine-voice==0.1.0 && pip install requests platformdirs google-crc32c

Each recording is fed in 100 ms blocks; a preview is read every 0.5 s (Moonshine's own update
cadence), the final text once the audio ends. The GIL check runs the recogniser on a thread in a
loop while this thread sleeps 5 ms at a time: the overshoot is how long a waiting event loop
would have been held off.
"""

from __future__ import annotations

import argparse
import csv
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.harness import DEFAULT_AUDIO
from benchmarks.partials_cost import _read16k
from benchmarks.transcript_scoring import error_rate
from models.interfaces import MODEL_SAMPLE_RATE_HZ

BLOCK = MODEL_SAMPLE_RATE_HZ // 10
READ_EVERY_BLOCKS = 5


@dataclass
class Decoder:
    """One utterance: ``feed`` a block, ``read`` the text so far, ``final`` at the end of the audio."""

    feed: Callable[[np.ndarray], None]
    read: Callable[[], str]
    final: Callable[[], str]


def pocketsphinx() -> Callable[[], Decoder]:
    from models.pocketsphinx_partials import PocketSphinxPartials

    partials = PocketSphinxPartials()

    def new() -> Decoder:
        stream, last = partials.open_stream(), [""]

        def feed(block: np.ndarray) -> None:
            last[0] = stream.accept_audio(block) or last[0]

        return Decoder(feed, lambda: last[0], lambda: last[0])

    return new


def moonshine() -> Callable[[], Decoder]:
    from moonshine_voice.moonshine_api import ModelArch
    from moonshine_voice.transcriber import Transcriber
    from moonshine_voice.utils import get_model_path

    transcriber = Transcriber(get_model_path("tiny-en"), model_arch=ModelArch.TINY)

    def new() -> Decoder:
        stream = transcriber.create_stream(update_interval=3600)  # read only when asked
        stream.start()

        def text(transcript) -> str:
            return " ".join(line.text for line in transcript.lines).strip()

        return Decoder(lambda block: stream.add_audio(block.tolist()),
                       lambda: text(stream.update_transcription()), lambda: text(stream.stop()))

    return new


def _english(audio_dir: Path) -> list[tuple[str, np.ndarray]]:
    with open(audio_dir / "MANIFEST.tsv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["language"] == "en" and not r["file"].startswith("long")]
    return [(r["reference"], _read16k(audio_dir / r["file"])) for r in rows]


def measure(name: str, make: Callable[[], Decoder], clips: list[tuple[str, np.ndarray]]) -> None:
    refs, hyps, reads, finals = [], [], [], []
    for reference, audio in clips:
        decoder = make()
        for n, start in enumerate(range(0, len(audio), BLOCK), 1):
            decoder.feed(audio[start:start + BLOCK])
            if n % READ_EVERY_BLOCKS == 0:
                t = time.perf_counter()
                decoder.read()
                reads.append(time.perf_counter() - t)
        t = time.perf_counter()
        hyps.append(decoder.final())
        finals.append(time.perf_counter() - t)
        refs.append(reference)
    reads.sort()
    finals.sort()
    print(f"{name}: WER of the final text {100 * error_rate(refs, hyps, 'en'):.1f} % over {len(clips)} recordings; "
          f"a read every 0.5 s p50 {1000 * reads[len(reads) // 2]:.0f} ms; final text after the audio "
          f"{1000 * finals[0]:.0f}-{1000 * finals[-1]:.0f} ms; GIL: {_gil_hold(make, clips[-1][1])}")


def _gil_hold(make: Callable[[], Decoder], audio: np.ndarray) -> str:
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            decoder = make()
            for start in range(0, len(audio), BLOCK):
                decoder.feed(audio[start:start + BLOCK])
            decoder.final()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    late = []
    for _ in range(300):
        t = time.perf_counter()
        time.sleep(0.005)
        late.append(1000 * (time.perf_counter() - t - 0.005))
    stop.set()
    thread.join()
    late.sort()
    return f"a 5 ms sleep meanwhile overshot p50 {late[150]:.1f} ms, p90 {late[270]:.1f} ms, max {late[-1]:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("also", nargs="*", choices=["moonshine"], help="recognisers besides PocketSphinx")
    p.add_argument("--audio", type=Path, default=DEFAULT_AUDIO)
    args = p.parse_args(argv)
    clips = _english(args.audio)
    measure("pocketsphinx", pocketsphinx(), clips)
    if "moonshine" in args.also:
        measure("moonshine tiny-en", moonshine(), clips)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
