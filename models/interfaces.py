"""The small interfaces every engine adapter implements.

All methods here are *blocking*: the server calls them from its inference
executor, never from the event loop. Audio crosses these boundaries as numpy
arrays: float32 in [-1, 1] going into a model, int16 PCM coming out of TTS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

MODEL_SAMPLE_RATE_HZ = 16_000
"""Every input-side model (VAD, turn detector, ASR) takes 16 kHz mono."""


@runtime_checkable
class VoiceActivityStream(Protocol):
    """Per-session VAD state (silero is recurrent, so each caller owns one)."""

    frame_samples: int

    def speech_probability(self, frame: np.ndarray) -> float:
        """Probability of speech in one float32 frame of ``frame_samples`` samples."""
        ...

    def reset(self) -> None: ...


class VoiceActivityModel(Protocol):
    frame_samples: int

    def open_stream(self) -> VoiceActivityStream: ...


class TurnEndModel(Protocol):
    """Semantic end-of-turn classifier (Smart Turn): is the speaker done?"""

    def end_of_turn_probability(self, audio: np.ndarray) -> float:
        """``audio`` is the turn so far, float32 at 16 kHz; the model looks at its tail."""
        ...


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str | None = None


class RecognitionStream(Protocol):
    """One utterance being recognised; partials may be empty for non-streaming engines."""

    def accept_audio(self, samples: np.ndarray) -> str | None:
        """Feed float32 16 kHz audio; returns the new partial text if it changed."""
        ...

    def finish(self) -> Transcript:
        """No more audio: return the final transcript."""
        ...


class SpeechRecognizer(Protocol):
    def open_stream(self, *, language: str | None = None) -> RecognitionStream: ...


class PartialStream(Protocol):
    """A cheap streaming recogniser's view of the utterance so far: a preview, revised as audio arrives."""

    def accept_audio(self, samples: np.ndarray) -> str | None:
        """Feed float32 16 kHz audio; returns the current hypothesis of the whole utterance, None if none yet."""
        ...

    def reset(self) -> None:
        """Forget the utterance; the next audio starts a new one."""
        ...

    def close(self) -> None: ...


class PartialRecognizer(Protocol):
    """Live preview transcripts while the user speaks.

    With ``final_transcripts`` true (a streaming ASR such as sherpa-onnx) its streams also have
    ``finish(samples) -> Transcript``, and the turn's final transcript comes from the stream that
    made the previews; otherwise it comes from the SpeechRecognizer.
    """

    language: str
    """The one language it recognises; previews of other languages would be noise."""
    final_transcripts: bool

    def open_stream(self) -> PartialStream:
        """Blocking (it may load a decoder); each stream is independent of every other."""
        ...


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the LLM asked for. ``arguments`` is JSON text, as in the Realtime protocol."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the LLM may call: its JSON-schema parameters, as in ``session.tools``."""

    name: str
    description: str
    parameters: dict


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    """On an assistant message: the calls it made."""
    tool_call_id: str | None = None
    """On a tool message: the call whose result ``content`` is."""


@dataclass(frozen=True, slots=True)
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 0.7
    seed: int | None = None
    """The sampler's seed (the same prompt gets the same answer); None: the engine picks one."""
    adapter: str | None = None
    """A LoRA adapter served beside the base model (vLLM); a persona names its own."""
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: Literal["auto", "none", "required"] = "auto"
    conversation: str | None = None
    """Who asks (the session id). An engine with per-slot prompt caches (llama-server) keeps one
    conversation on one slot, so its growing prompt is read once, not every turn; others ignore it."""
    purpose: Literal["answer", "background"] = "answer"
    """'background': work nobody is waiting for (a history summary). llama-server serves it on a
    slot of its own, so it neither queues in front of an answer nor evicts a conversation's cache."""


class ChatModel(Protocol):
    """Streams the assistant's reply token by token; with ``params.tools``, a :class:`ToolCall`
    may come among (usually after) the text pieces, once its arguments are complete.

    Closing the iterator (``aclose()`` or cancelling its consumer) must stop the
    generation promptly: that is how barge-in frees the CPU for the next turn.
    """

    def stream_chat(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[str | ToolCall]: ...


@runtime_checkable
class PromptCachingChatModel(Protocol):
    """A chat model that keeps each conversation's prompt cached between requests (llama-server's
    slots). The next answer's prompt is known up to the user's words as soon as an answer ends:
    reading that head then, while the user listens and speaks, takes it off the next answer's wait."""

    async def prefill(self, messages: Sequence[ChatMessage], params: GenerationParams) -> None:
        """Read ``messages`` into ``params.conversation``'s cache; generate nothing worth keeping."""
        ...


class SpeechSynthesizer(Protocol):
    """May also carry ``first_chunk_cjk_chars`` (int): a voice whose wait grows with the text asks
    for an answer's first Mandarin words after that many ideographs (``ChunkerParams``)."""

    sample_rate: int

    def synthesize(self, text: str, *, voice: str | None = None, speed: float = 1.0) -> Iterator[np.ndarray]:
        """Yield int16 mono PCM chunks at ``sample_rate`` for one speakable chunk of text.

        A generator so the caller can stop pulling between chunks on barge-in.
        """
        ...


class TextEmbedder(Protocol):
    """Dense embeddings for retrieval (the knowledge base); rows are L2-normalised, so a dot product is the cosine."""

    name: str
    """Identifies the model: vectors from different models must never be compared."""
    dimensions: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dimensions)`` float32, for the documents being indexed."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """``(dimensions,)`` float32, for a question (asymmetric models embed it differently from passages)."""
        ...
