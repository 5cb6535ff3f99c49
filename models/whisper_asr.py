"""Whisper (faster-whisper / CTranslate2) as the embedded recogniser.

Whisper is not a streaming model: the stream buffers the utterance and decodes
once at the end, so it yields no partials. Greedy decoding without timestamps
and without conditioning on previous text is the fastest setting and, on short
voice-assistant turns, as accurate as beam search.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.interfaces import RecognitionStream, Transcript

log = logging.getLogger(__name__)

MIN_AUDIO_SECS = 0.2
WINDOW_SECS = 30
MAX_DECODE_TOKENS = 224
PREVIEW_TOKENS, PREVIEW_TOKENS_PER_S = 6, 15
"""A preview's decode stops past this many tokens (Mandarin speech is 4-8 characters a second, a
character one or two tokens). A loop would run to 224 tokens at about 20 ms each on two cores
(0.80 s for 4 new tokens, 0.95 s for 12, on 3 s of Mandarin), and the turn's previews fell
behind and stopped."""
_SAMPLE_RATE_HZ = 16_000


@dataclass(frozen=True, slots=True)
class WhisperParams:
    beam_size: int = 1
    cpu_threads: int = 2
    compute_type: str = "int8"
    initial_prompt: str | None = None
    window_padding_s: float = 3.0  # the server passes models.whisper_window_padding_s (also 3 by default)
    """Silence the encoder sees after the speech. Whisper pads every input to 30 s, and on two
    cores encoding that window is most of a turn's recognition time. CTranslate2 encodes a
    shorter window (the positional table is cut to fit): audio + 3 s was 4-5x faster and as
    accurate on the shared recordings (en WER 0.0 % against 0.8 %, zh CER 12.2 % against 13.3 %;
    the note on issue 13 has the command). 0 keeps the full 30 s window."""


class WhisperRecognizer:
    def __init__(self, *, model_dir: Path, params: WhisperParams = WhisperParams()) -> None:
        from faster_whisper import WhisperModel

        self.params = params
        self._model = WhisperModel(
            str(model_dir), device="cpu", compute_type=params.compute_type, cpu_threads=params.cpu_threads
        )
        # CTranslate2 models are safe to share, but two concurrent decodes on two
        # cores only slow each other down; serialise them.
        self._lock = threading.Lock()

    def open_stream(self, *, language: str | None = None) -> RecognitionStream:
        return _WhisperStream(self, language)

    def preview(self, audio: np.ndarray, *, language: str) -> str | None:
        """A quick look at a turn still being spoken (models/whisper_partials.py): one decode on the
        short window, never the full-window retry, and None at once when a transcript is being
        made (previews must not hold up the turn's own decode, nor queue behind it)."""
        if len(audio) < MIN_AUDIO_SECS * _SAMPLE_RATE_HZ or not self._lock.acquire(blocking=False):
            return None
        try:
            features = self._model.feature_extractor(audio.astype(np.float32, copy=False))
            features = features[..., : self._model.feature_extractor.nb_max_frames]
            seconds = len(audio) / _SAMPLE_RATE_HZ
            text, _, _ = self._decode(features, language, self._window(features.shape[-1]),
                                      max_new_tokens=int(PREVIEW_TOKENS + PREVIEW_TOKENS_PER_S * seconds))
        finally:
            self._lock.release()
        if _looks_looped(text) or _too_long(text, len(audio) / _SAMPLE_RATE_HZ):
            return None  # Whisper's guess at a syllable or two is a hallucination, not a preview
        return _to_simplified(text) if language == "zh" else text

    def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> Transcript:
        if len(audio) < MIN_AUDIO_SECS * _SAMPLE_RATE_HZ:
            return Transcript(text="", language=language)
        audio = audio.astype(np.float32, copy=False)
        with self._lock:
            if len(audio) <= WINDOW_SECS * _SAMPLE_RATE_HZ:
                text, detected = self._transcribe_one_window(audio, language)
            else:
                segments, info = self._model.transcribe(
                    audio, language=language, beam_size=self.params.beam_size, without_timestamps=True,
                    condition_on_previous_text=False, vad_filter=False, initial_prompt=self.params.initial_prompt,
                )
                text, detected = "".join(segment.text for segment in segments).strip(), info.language
        if detected == "zh":
            text = _to_simplified(text)
        return Transcript(text=text, language=detected)

    def _transcribe_one_window(self, audio: np.ndarray, language: str | None) -> tuple[str, str]:
        """One encoder pass serves both language detection and decoding.

        faster-whisper's ``transcribe`` encodes the 30 s window once to detect the
        language and again to decode; on two CPU cores that second pass is about
        a second and a half of every turn's latency.

        The short window (``window_padding_s``) now and then sends the greedy decoder into a
        loop ("A thin stripe runs down the middle. A thin stripe runs down ..."), stops it early, or
        misreads spoken digits: a text that compresses like a loop, by Whisper's own test, that is
        far too short for the audio, or that holds digits in a language Whisper is unsure of is
        decoded again on the full window. A false alarm costs only the second decode.
        """
        features = self._model.feature_extractor(audio)[..., : self._model.feature_extractor.nb_max_frames]
        pinned = language
        text, language, certainty = self._decode(features, language, self._window(features.shape[-1]))
        seconds = len(audio) / _SAMPLE_RATE_HZ
        if self._window(features.shape[-1]) < self._model.feature_extractor.nb_max_frames and (
                _looks_looped(text) or _too_short(text, seconds)
                or (seconds >= UNSURE_MIN_SECS and certainty < MIN_LANGUAGE_CERTAINTY and _has_digits(text))):
            log.info("Whisper's short-window text looks unsure (%d chars for %.1f s, language %s at %.2f); "
                     "decoding the full window", len(text), seconds, language, certainty)
            text, language, _ = self._decode(features, pinned, self._model.feature_extractor.nb_max_frames)
        return text, language

    def _window(self, frames: int) -> int:
        most = self._model.feature_extractor.nb_max_frames
        if self.params.window_padding_s <= 0:
            return most
        padding = int(self.params.window_padding_s * _SAMPLE_RATE_HZ / self._model.feature_extractor.hop_length)
        return min(most, frames + padding + frames % 2)  # even: the encoder halves it

    def _decode(self, features: np.ndarray, language: str | None, window: int,
                max_new_tokens: int = MAX_DECODE_TOKENS) -> tuple[str, str, float]:
        """The text, its language, and the encoder's certainty of that language (0-1)."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model = self._model
        encoder_output = model.encode(pad_or_trim(features, length=window))
        # One decoder step; asked even for a pinned language, as a measure of the encoder's certainty.
        detected = {token[2:-2]: probability for token, probability in model.model.detect_language(encoder_output)[0]}
        if language is None:
            language = max(detected, key=detected.__getitem__)
        certainty = detected.get(language, 0.0)
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
        prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
        if self.params.initial_prompt:
            prompt = [tokenizer.sot_prev, *tokenizer.encode(" " + self.params.initial_prompt.strip())] + prompt
        result = model.model.generate(
            encoder_output, [prompt], beam_size=self.params.beam_size,
            max_length=min(MAX_DECODE_TOKENS, len(prompt) + max_new_tokens),  # the prompt counts
            suppress_blank=True, suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )[0]
        return tokenizer.decode(result.sequences_ids[0]).strip(), language, certainty


LOOP_COMPRESSION_RATIO = 2.4
"""Whisper's own threshold (``compression_ratio_threshold``): text that zlib shrinks more than
this is a repetition loop, not speech."""
LOOP_WORDS = 4
LOOP_CJK_CHARS = 6
"""A phrase this long said twice in one turn is taken for a loop. A false alarm costs only a second
decode on the full window, so the test is eager."""
_WORDS = re.compile(r"[\w']+")


MIN_LANGUAGE_CERTAINTY = 0.8
UNSURE_MIN_SECS = 2.0
"""On the short window Whisper misreads spoken numbers it is unsure of: the shared digits
(language certainty 0.3-0.7, where plain speech is 0.96-1.0) came back as "1-001" or
"Nano-2-1-0" for one VAD cut or another, and exactly on the full window for all of them. A
text with digits, of 2 s or more of audio, whose language is that uncertain is decoded again on
the full window. Not every unsure text: in the bench that re-decoded noise, backchannels and
Mandarin fragments too, 2 s each on two cores, and doubled the p90 of recognition."""
MIN_TEXT_UNITS_PER_S = 1.5
"""Characters per second of audio (a Chinese character counts 2) below which a transcript is taken
for a decode stopped early; speech runs at about 12-15 (English) and 6-10 (Mandarin)."""


MAX_TEXT_UNITS_PER_S = 30.0
"""More characters per second of audio (a Chinese character counts 2) than anyone says."""


def _too_long(text: str, seconds: float) -> bool:
    units = sum(2 if "\u3400" <= ch <= "\u9fff" else 1 for ch in text if not ch.isspace())
    return units > MAX_TEXT_UNITS_PER_S * max(seconds, 0.5)


def _has_digits(text: str) -> bool:
    return any(ch.isdigit() for ch in text)


def _too_short(text: str, seconds: float) -> bool:
    if seconds < 1.0:
        return False
    units = sum(2 if "\u4e00" <= ch <= "\u9fff" else 1 for ch in text if not ch.isspace())
    return units < MIN_TEXT_UNITS_PER_S * seconds


def _looks_looped(text: str) -> bool:
    data = text.encode("utf-8")
    if len(data) >= 24 and len(data) / len(zlib.compress(data)) > LOOP_COMPRESSION_RATIO:
        return True
    words = _WORDS.findall(text.lower())
    grams = [tuple(words[i:i + LOOP_WORDS]) for i in range(len(words) - LOOP_WORDS + 1)]
    if len(grams) != len(set(grams)):
        return True
    cjk = "".join(ch for ch in text if "\u4e00" <= ch <= "\u9fff")
    runs = [cjk[i:i + LOOP_CJK_CHARS] for i in range(len(cjk) - LOOP_CJK_CHARS + 1)]
    return len(runs) != len(set(runs))


@functools.cache
def _simplifier():
    from opencc import OpenCC

    return OpenCC("t2s")


def _to_simplified(text: str) -> str:
    """Whisper often writes Mandarin in traditional characters; our users read simplified."""
    return _simplifier().convert(text)


class _WhisperStream:
    def __init__(self, recognizer: WhisperRecognizer, language: str | None) -> None:
        self._recognizer = recognizer
        self._language = language
        self._chunks: list[np.ndarray] = []

    def accept_audio(self, samples: np.ndarray) -> str | None:
        self._chunks.append(samples)
        return None

    def finish(self) -> Transcript:
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.float32)
        self._chunks = []
        return self._recognizer.transcribe(audio, language=self._language)
