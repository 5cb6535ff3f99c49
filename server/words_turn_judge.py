"""Do a Mandarin turn's words read finished? Asked before Smart Turn may end the turn.

Smart Turn took 9 of 12 shared Mandarin sentences cut mid-way for finished; the embedded LLM's
probability that the message ends after the words (models/llama_turn_judge.py) tells them
apart. The verdict goes to :class:`server.audio_input.AudioInput`, which waits for it.
"""

from __future__ import annotations

import logging

from models.language_router import detect_language
from server.audio_input import AudioInput
from server.config import Config
from server.engines import Engines
from streaming.text_turn_end import sounds_finished

log = logging.getLogger(__name__)


class WordsTurnJudge:
    def __init__(self, *, config: Config, engines: Engines, audio_input: AudioInput) -> None:
        self._config = config
        self._engines = engines
        self._input = audio_input

    def expect(self, user_language: str | None) -> None:
        """A Mandarin (or not yet known) turn's words will be judged before its end is decided."""
        judge = getattr(self._engines.llm, "end_of_message_probability", None)
        if self._config.assistant.text_turn_judge == "auto" and callable(judge) and user_language in (None, "zh"):
            self._input.expect_text_verdict()

    async def judge(self, samples: int, text: str) -> bool:
        """Whether the words so far read unfinished (also returned). English, no words, or a
        failure: no objection."""
        assistant = self._config.assistant
        unfinished = False
        try:
            if text.strip() and detect_language(text) == "zh":
                probability = await self._engines.llm.end_of_message_probability(  # type: ignore[attr-defined]
                    text, timeout_s=assistant.text_turn_timeout_s)
                unfinished = probability < assistant.text_turn_threshold
                log.info("end of message %.3f for %r", probability, text)
        except Exception as exc:  # noqa: BLE001 (a judge that fails leaves the turn to Smart Turn)
            log.info("judging the words of the turn failed: %r", exc)
        finally:
            self._input.note_text_verdict(samples, unfinished=unfinished)
            self._input.note_transcript(samples, finished=not unfinished and sounds_finished(text))
        return unfinished
