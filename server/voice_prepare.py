"""``tingshuo voice prepare``: long recordings of one speaker into a fine-tuning set and a speaker prompt.

Each recording is cut at its pauses into 2-10 s clips (silero VAD, :mod:`streaming.voice_clips`),
each clip measured (:mod:`streaming.clip_quality`) and transcribed by the embedded Whisper, the
same engines ``tingshuo serve`` loads (no other model). Written into ``--out``:

- ``wavs/ID.wav`` and ``metadata.csv`` (``ID|transcript|normalized transcript``): the LJSpeech
  layout VITS-family recipes (Coqui TTS, piper) read;
- ``clips.jsonl``: every clip's times, scores and transcript, and every dropped piece with why;
- ``NAME.wav`` + ``NAME.txt``: the best 3-10 s clip as a CosyVoice zero-shot prompt, so that
  ``cosyvoice.prompts_dir = OUT`` serves it as voice ``NAME`` (``read_speaker_prompts``).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from streaming.audio_frames import float_to_int16
from streaming.clip_quality import ClipQuality, PromptScore, frame_levels_db, measure_clip, prompt_score
from streaming.voice_clips import Clip, ClipParams, plan_from_probabilities

log = logging.getLogger(__name__)

VAD_RATE_HZ = 16_000
VAD_FRAME_SAMPLES = 512
FRAME_S = VAD_FRAME_SAMPLES / VAD_RATE_HZ
CLIP_RATE_HZ = 22_050
"""Clips are written at 22,050 Hz whatever the input's rate. A dataset has one rate in every VITS
recipe's config, and several recordings may differ; 22,050 Hz is LJSpeech's rate and what VITS and
piper's medium voices train at, so no trainer resamples again. Downsampling 44.1/48 kHz drops only
what such a model never produces; a 16 kHz input keeps its 8 kHz band (upsampling adds nothing, and
takes nothing). CosyVoice resamples a prompt to 16 kHz itself (``load_prompt_audio``)."""
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class PreparedClip:
    id: str
    source: str
    clip: Clip
    transcript: str
    language: str | None
    quality: ClipQuality
    prompt: PromptScore


@dataclass(frozen=True, slots=True)
class DroppedClip:
    source: str
    start_s: float
    end_s: float
    reason: str


@dataclass
class VoiceSet:
    clips: list[PreparedClip] = field(default_factory=list)
    dropped: list[DroppedClip] = field(default_factory=list)

    def best_prompt(self) -> PreparedClip | None:
        eligible = [c for c in self.clips if c.prompt.eligible]
        return max(eligible, key=lambda c: c.prompt.score) if eligible else None


def read_recording(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 at the file's own rate (channels averaged)."""
    import soundfile as sf

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(rate)


def _resample(audio: np.ndarray, rate: int, to: int) -> np.ndarray:
    import soxr

    return audio if rate == to else soxr.resample(audio, rate, to).astype(np.float32)


def speech_probabilities(vad, audio16: np.ndarray) -> np.ndarray:
    """Silero's probability per 32 ms frame, from a fresh stream (the last frame zero-padded)."""
    stream = vad.open_stream()
    padded = np.concatenate([audio16, np.zeros(-len(audio16) % VAD_FRAME_SAMPLES, dtype=np.float32)])
    frames = padded.reshape(-1, VAD_FRAME_SAMPLES)
    return np.array([stream.speech_probability(frame) for frame in frames], dtype=np.float64)


def clean_text(text: str) -> str:
    """One metadata field: ``|`` is the separator and a line is a record."""
    return " ".join(text.replace("|", " ").split())


def normalized_text(transcript: str) -> str:
    """LJSpeech's third column is the text with numbers and abbreviations spelled out. Whisper
    already writes most words out, and the trainers' own text front ends (Coqui's cleaners,
    piper's espeak-ng phonemizer) expand what is left, so the column repeats the cleaned
    transcript; Mandarin numbers stay as written too."""
    return clean_text(transcript)


def _speech_mask(clip: Clip, frames: int) -> np.ndarray:
    """Per 32 ms frame of the clip: does its middle fall inside one of the clip's speech runs."""
    middles = clip.start_s + (np.arange(frames) + 0.5) * FRAME_S
    mask = np.zeros(frames, dtype=bool)
    for run in clip.speech:
        mask |= (middles >= run.start_s) & (middles < run.end_s)
    return mask


def _unique_stem(path: Path, taken: set[str]) -> str:
    stem = _ID_UNSAFE.sub("_", path.stem).strip("_") or "clip"
    candidate, n = stem, 2
    while candidate in taken:
        candidate, n = f"{stem}_{n}", n + 1
    taken.add(candidate)
    return candidate


def prepare_recording(path: Path, stem: str, *, vad, recognizer, language: str | None,
                      params: ClipParams = ClipParams()) -> tuple[VoiceSet, dict[str, np.ndarray]]:
    """One recording's clips (with their 22.05 kHz audio by id) and dropped pieces."""
    audio, rate = read_recording(path)
    audio16 = _resample(audio, rate, VAD_RATE_HZ)
    audio_out = np.clip(_resample(audio, rate, CLIP_RATE_HZ), -1.0, 1.0)  # as the int16 file will hold it
    probabilities = speech_probabilities(vad, audio16)
    plan = plan_from_probabilities(probabilities, FRAME_S, params,
                                   levels_db=frame_levels_db(audio16, VAD_RATE_HZ, FRAME_S))
    result = VoiceSet(dropped=[DroppedClip(str(path), d.start_s, d.end_s, d.reason) for d in plan.dropped])
    waves: dict[str, np.ndarray] = {}
    for clip in plan.clips:
        piece16 = audio16[round(clip.start_s * VAD_RATE_HZ): round(clip.end_s * VAD_RATE_HZ)]
        wave = audio_out[round(clip.start_s * CLIP_RATE_HZ): round(clip.end_s * CLIP_RATE_HZ)]
        heard = recognizer.transcribe(piece16, language=language)
        transcript = clean_text(heard.text)
        if not transcript:
            result.dropped.append(DroppedClip(str(path), clip.start_s, clip.end_s, "Whisper heard no words"))
            continue
        quality = measure_clip(wave, CLIP_RATE_HZ, _speech_mask(clip, int(len(wave) / (FRAME_S * CLIP_RATE_HZ))),
                               FRAME_S)
        clip_id = f"{stem}-{len(result.clips) + 1:04d}"
        result.clips.append(PreparedClip(
            id=clip_id, source=str(path), clip=clip, transcript=transcript, language=heard.language,
            quality=quality, prompt=prompt_score(quality, len(wave) / CLIP_RATE_HZ, transcript,
                                                 cut_in_speech=clip.cut_in_speech)))
        waves[clip_id] = wave
    result.dropped.sort(key=lambda d: d.start_s)
    return result, waves


def _write_wav(path: Path, wave: np.ndarray) -> None:
    import soundfile as sf

    sf.write(str(path), float_to_int16(wave), CLIP_RATE_HZ, subtype="PCM_16")


def _clip_record(c: PreparedClip, chosen: bool) -> dict:
    return {"id": c.id, "kept": True, "source": c.source, "start_s": round(c.clip.start_s, 3),
            "end_s": round(c.clip.end_s, 3), "duration_s": round(c.clip.duration_s, 3),
            "speech_s": round(c.clip.speech_s, 3), "cut_in_speech": c.clip.cut_in_speech,
            "language": c.language, "transcript": c.transcript, "normalized": normalized_text(c.transcript),
            **{k: round(v, 6 if k == "clipped_share" else 2) for k, v in asdict(c.quality).items()},
            "snr_db": round(c.quality.snr_db, 2), "prompt_score": round(c.prompt.score, 2),
            "prompt_problems": list(c.prompt.problems), "prompt": chosen}


def write_voice_set(voice: VoiceSet, waves: dict[str, np.ndarray], out: Path, name: str) -> PreparedClip | None:
    """wavs/, metadata.csv, clips.jsonl and, when a clip qualifies, NAME.wav + NAME.txt; returns that clip."""
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    prompt = voice.best_prompt()
    lines = []
    for c in voice.clips:
        _write_wav(out / "wavs" / f"{c.id}.wav", waves[c.id])
        lines.append(f"{c.id}|{c.transcript}|{normalized_text(c.transcript)}\n")
    (out / "metadata.csv").write_text("".join(lines), encoding="utf-8")
    records = [_clip_record(c, c is prompt) for c in voice.clips]
    records += [{"kept": False, "source": d.source, "start_s": round(d.start_s, 3), "end_s": round(d.end_s, 3),
                 "reason": d.reason} for d in voice.dropped]
    (out / "clips.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                                     encoding="utf-8")
    if prompt is not None:
        _write_wav(out / f"{name}.wav", waves[prompt.id])
        (out / f"{name}.txt").write_text(prompt.transcript + "\n", encoding="utf-8")
    return prompt


def print_summary(voice: VoiceSet, prompt: PreparedClip | None, out: Path, name: str) -> None:
    print(f"{'clip':32s} {'start':>7s} {'dur':>5s} {'speech':>7s} {'noise':>7s} {'SNR':>5s} {'clip%':>6s} "
          f"{'score':>6s}  transcript")
    for c in voice.clips:
        q = c.quality
        text = c.transcript if len(c.transcript) <= 48 else c.transcript[:47] + "…"
        print(f"{c.id:32s} {c.clip.start_s:7.2f} {c.clip.duration_s:5.2f} {q.speech_dbfs:7.1f} {q.noise_dbfs:7.1f} "
              f"{q.snr_db:5.1f} {100 * q.clipped_share:6.2f} {c.prompt.score:6.1f}  {text}")
    for d in voice.dropped:
        print(f"dropped {Path(d.source).name} {d.start_s:.2f}-{d.end_s:.2f} s: {d.reason}")
    total = sum(c.clip.duration_s for c in voice.clips)
    print(f"{len(voice.clips)} clips, {total:.1f} s, in {out / 'wavs'}; {out / 'metadata.csv'}, {out / 'clips.jsonl'}")
    if prompt is None:
        print("no clip qualifies as a speaker prompt (3-10 s, no clipping, SNR and loudness in range, words heard); "
              "clips.jsonl lists each clip's problems")
        return
    q = prompt.quality
    print(f"speaker prompt {out / (name + '.wav')} + {name}.txt from {prompt.id}: {prompt.clip.duration_s:.2f} s, "
          f"speech {q.speech_dbfs:.1f} dBFS, peak {q.peak_dbfs:.1f} dBFS, noise {q.noise_dbfs:.1f} dBFS, "
          f"SNR {q.snr_db:.1f} dB, clipped {100 * q.clipped_share:.2f} %, score {prompt.prompt.score:.1f}")
    print(f"  {prompt.transcript}")


def _load_engines(config):
    """silero VAD and the embedded Whisper, built as :mod:`server.engines` builds them. Whisper even
    when ``models.asr`` is sherpa: it detects the language per clip, and it is the recogniser that
    the clips' transcripts are checked against."""
    from models import embedded_store
    from models.silero_vad import SileroVAD
    from models.whisper_asr import WhisperParams, WhisperRecognizer

    m = config.models
    recognizer = WhisperRecognizer(
        model_dir=embedded_store.ensure_model(embedded_store.WHISPER_BASE, Path(m.model_dir)),
        params=WhisperParams(cpu_threads=m.inference_threads, window_padding_s=m.whisper_window_padding_s),
    )
    return SileroVAD(), recognizer


def run_voice_prepare(args: argparse.Namespace, config) -> int:
    """``args``: recordings, out, name, language ('auto', 'en' or 'zh')."""
    import soundfile as sf

    if not re.fullmatch(r"[\w-]+", args.name):
        print(f"tingshuo: --name {args.name!r}: use letters, digits, '_' and '-' (it names NAME.wav)", file=sys.stderr)
        return 2
    paths = [Path(p) for p in args.recordings]
    for path in paths:
        if not path.is_file():
            print(f"tingshuo: {path}: no such file", file=sys.stderr)
            return 2
    language = None if args.language in (None, "auto") else args.language
    vad, recognizer = _load_engines(config)
    voice, waves, taken = VoiceSet(), {}, set()
    for path in paths:
        log.info("voice prepare: %s", path)
        try:
            one, one_waves = prepare_recording(path, _unique_stem(path, taken), vad=vad, recognizer=recognizer,
                                               language=language)
        except sf.SoundFileError as exc:
            print(f"tingshuo: cannot read {path}: {exc}", file=sys.stderr)
            return 2
        voice.clips += one.clips
        voice.dropped += one.dropped
        waves.update(one_waves)
    out = Path(args.out)
    prompt = write_voice_set(voice, waves, out, args.name)
    print_summary(voice, prompt, out, args.name)
    return 0 if voice.clips and prompt is not None else 1
