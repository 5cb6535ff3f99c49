"""Which preview recogniser shows the user's turn in progress, chosen by the language the user speaks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from models.interfaces import Transcript
from server.partial_transcripts import FinishedPreview, PartialTranscripts
from server.session_settings import SessionSettings

ASSISTANT_LANGUAGES = ("en", "zh")
"""The languages the assistant listens and answers in."""


class TurnPreviews:
    def __init__(self, previews: Sequence[PartialTranscripts], *, settings: Callable[[], SessionSettings],
                 last_language: Callable[[], str | None]) -> None:
        self._previews = tuple(previews)
        """One per preview recogniser (PocketSphinx for English, Whisper's window for Mandarin)."""
        self._settings = settings
        self._last_language = last_language
        self._current: PartialTranscripts | None = None
        """The preview of the turn in progress: the first of ``previews`` that knows the user's language."""

    def start(self, item_id: str) -> None:
        self._current = next((p for p in self._previews if self._wants(p)), None)
        if self._current is not None:
            self._current.start(item_id)

    def _wants(self, partials: PartialTranscripts) -> bool:
        """Previews only when transcripts are on and the user likely speaks a language the preview
        recogniser knows."""
        settings = self._settings()
        if not settings.transcription:
            return False
        languages = partials.languages
        if settings.transcription_language is not None:
            return settings.transcription_language in languages
        if set(ASSISTANT_LANGUAGES) <= set(languages):
            return True  # nothing to guess: it previews whichever the user speaks
        # Auto-detect: only once a turn was heard in the preview's language. Guessing on the first
        # turn showed Mandarin speakers English nonsense ("or will shoot for the time") until Whisper.
        return self._last_language() in languages

    def feed(self, audio: np.ndarray) -> None:
        if self._current is not None:
            self._current.feed(audio)

    def hold(self) -> None:
        """The user went silent: see :meth:`PartialTranscripts.hold`."""
        if self._current is not None:
            self._current.hold()

    def release(self) -> None:
        if self._current is not None:
            self._current.release()

    def will_give_final(self, item_id: str | None) -> bool:
        return self._current is not None and self._current.will_give_final(item_id)

    async def offer(self, item_id: str, transcript: Transcript) -> None:
        """A transcript of the turn so far (a decode at a pause) shown as a preview too."""
        if self._current is not None:
            await self._current.offer(item_id, transcript)

    def finish(self, item_id: str, *, want_final: bool = False) -> FinishedPreview | None:
        return self._current.finish(item_id, want_final=want_final) if self._current is not None else None

    async def aclose(self) -> None:
        for preview in self._previews:
            await preview.aclose()
