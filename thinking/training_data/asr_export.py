"""The users' recorded utterances with their final transcripts, for ASR fine-tuning.

Per part (``train/``, and ``eval/`` when split) a Kaldi-style data directory, which icefall,
WeNet and sherpa recipes read: ``wav.scp`` (utterance id, absolute WAV path), ``text``
(utterance id, transcript), ``utt2spk`` and ``spk2utt``, every file sorted by its first field in
byte order (``LC_ALL=C sort``, what Kaldi's validate_data_dir.sh checks); and ``manifest.jsonl``
(NeMo style: ``audio_filepath``, ``text``, ``duration`` in seconds from the WAV header,
``language``). The speaker is the conversation's user id (the conversation's id when it has
none), and each utterance id starts with its speaker id, so ``utt2spk`` and ``spk2utt`` sort alike.

A person's corrected transcript replaces Whisper's. Only turns whose audio was kept are
exported; whether the answer to them was any good does not matter here.
"""

from __future__ import annotations

import json
import re
import wave
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from thinking.training_data.dataset_records import StoredConversation

KALDI_FILES = ("wav.scp", "text", "utt2spk", "spk2utt")
MANIFEST = "manifest.jsonl"
NO_TRANSCRIPT = "no transcript"
AUDIO_MISSING = "audio file missing"
AUDIO_UNREADABLE = "audio file unreadable"
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class Utterance:
    utterance_id: str
    speaker_id: str
    conversation_id: str
    audio_path: Path
    text: str
    duration_s: float
    language: str
    corrected: bool


@dataclass(slots=True)
class Utterances:
    utterances: list[Utterance] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    """Turns with kept audio that were left out, by reason."""


def asr_utterances(conversations: Iterable[StoredConversation], store_root: Path) -> Utterances:
    out = Utterances()
    root = Path(store_root).resolve()
    for conversation in conversations:
        speaker = _safe_id(conversation.user_id or conversation.id)
        prefix = speaker if not conversation.user_id else f"{speaker}-{_safe_id(conversation.id)}"
        for turn in conversation.turns:
            if not turn.user_audio:
                continue
            text = " ".join(turn.user_words.split())
            path = root / turn.user_audio
            if not text:
                out.dropped[NO_TRANSCRIPT] += 1
                continue
            if not path.is_file():
                out.dropped[AUDIO_MISSING] += 1
                continue
            try:
                with wave.open(str(path), "rb") as wav:
                    duration = wav.getnframes() / wav.getframerate()
            except (wave.Error, EOFError, OSError, ZeroDivisionError):
                out.dropped[AUDIO_UNREADABLE] += 1
                continue
            out.utterances.append(Utterance(
                utterance_id=f"{prefix}-{_safe_id(turn.item_id)}", speaker_id=speaker,
                conversation_id=conversation.id, audio_path=path, text=text, duration_s=duration,
                language=turn.language, corrected=bool(turn.corrected_text)))
    return out


def write_asr(out_dir: Path, parts: dict[str, list[Utterance]]) -> list[Path]:
    """``out_dir/train/`` (and ``out_dir/eval/``); a part not written loses its earlier files."""
    written = []
    for part in ("train", "eval"):
        directory = out_dir / part
        if part not in parts:
            for name in (*KALDI_FILES, MANIFEST):
                (directory / name).unlink(missing_ok=True)
            continue
        directory.mkdir(parents=True, exist_ok=True)
        written += write_kaldi_dir(directory, parts[part])
    return written


def write_kaldi_dir(directory: Path, utterances: list[Utterance]) -> list[Path]:
    ordered = sorted(utterances, key=lambda u: u.utterance_id.encode())
    by_speaker: dict[str, list[str]] = {}
    for u in ordered:
        by_speaker.setdefault(u.speaker_id, []).append(u.utterance_id)
    contents = {
        "wav.scp": [f"{u.utterance_id} {u.audio_path}" for u in ordered],
        "text": [f"{u.utterance_id} {u.text}" for u in ordered],
        "utt2spk": [f"{u.utterance_id} {u.speaker_id}" for u in ordered],
        "spk2utt": [f"{spk} {' '.join(utts)}" for spk, utts in sorted(by_speaker.items(), key=lambda s: s[0].encode())],
        MANIFEST: [json.dumps({"audio_filepath": str(u.audio_path), "text": u.text,
                               "duration": round(u.duration_s, 3), "language": u.language}, ensure_ascii=False)
                   for u in ordered],
    }
    paths = []
    for name, lines in contents.items():
        path = directory / name
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        paths.append(path)
    return paths


def _safe_id(text: str) -> str:
    """Kaldi ids are whitespace-free tokens; these are also safe as file names."""
    return _UNSAFE_ID.sub("_", text) or "_"
