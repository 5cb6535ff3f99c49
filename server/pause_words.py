"""What the words of a turn, recognised at a pause, decide before the turn has ended.

A Mandarin turn's words are judged first (:mod:`server.words_turn_judge`); words that read
finished shorten the turn detector's wait; and an answer starts on them ahead of the turn end
(:mod:`server.preemptive_answer`), at most :data:`MAX_PREEMPTIONS_PER_TURN` times a turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from models.interfaces import Transcript
from server.preemptive_answer import MAX_PREEMPTIONS_PER_TURN
from server.words_turn_judge import WordsTurnJudge
from streaming.barge_in import BargeInPolicy
from streaming.text_turn_end import sounds_finished

if TYPE_CHECKING:
    from server.user_turns import TurnHost


class PauseWords:
    def __init__(self, host: TurnHost, *, barge_in: BargeInPolicy) -> None:
        self._host = host
        self._barge_in = barge_in
        self.preemptions = 0
        """Answers started on this turn's pauses (:data:`MAX_PREEMPTIONS_PER_TURN` at most)."""

    def _judge(self) -> WordsTurnJudge:
        return WordsTurnJudge(config=self._host.config, engines=self._host.engines, audio_input=self._host.input)

    def expect_judged(self, user_language: str | None) -> None:
        self._judge().expect(user_language)

    def read(self, samples: int, transcript: Transcript, *, current: Callable[[], bool]) -> None:
        """The transcript of the turn's first ``samples`` is ready while the turn detector may
        still wait. ``current()``: whether that decode still stands for the turn."""
        host = self._host
        if not host.input.awaits_text_verdict(samples):
            host.input.note_transcript(samples, finished=sounds_finished(transcript.text))
            self.preempt(transcript)
            return
        # The words are judged first: a Mandarin half-sentence Whisper ends with "。" must not
        # shorten the wait either (server/audio_input.py). The answer waits for the verdict: started
        # beside the judge it took llama-server's two cores from it, and the verdict came after the
        # longest silence, for finished sentences too.
        verdict = host.spawn(self._judge().judge(samples, transcript.text), name="text-turn-end")
        if verdict is None:
            return

        def answer_if_finished(done: asyncio.Task[bool]) -> None:
            if current() and not done.cancelled() and done.exception() is None and not done.result():
                self.preempt(transcript)

        verdict.add_done_callback(answer_if_finished)

    def preempt(self, transcript: Transcript) -> None:
        host = self._host
        td = host.settings.turn_detection
        if td is None or not td.create_response or self.preemptions >= MAX_PREEMPTIONS_PER_TURN:
            return
        if not transcript.text.strip() or self._barge_in.is_backchannel(transcript.text):
            return
        if host.responses.ahead.preempt(transcript.text, transcript.language,
                                        on_outcome=lambda outcome, s: self.count_speculation("llm", outcome, s)):
            self.preemptions += 1

    def count_speculation(self, stage: str, outcome: str, seconds: float) -> None:
        self._host.metrics.speculative_seconds.labels(stage=stage, outcome=outcome).inc(max(0.0, seconds))
