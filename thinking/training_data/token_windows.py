"""Examples longer than the trainer's ``cutoff_len`` split into overlapping windows of whole turns.

A trainer given a longer example truncates it, losing the answers at its end (LLaMA-Factory and
OpenAI both cut the tokens past the limit). Here every window is a run of whole turns, so each
starts at a user message and ends with an assistant answer, and no message is ever cut. The
first window takes as many turns as fit. Each next one starts with history, the turns just
before its first new turn, so that the new turn makes sense: as many as fit in
``history_share`` of the budget left after the system prompt and tools, and always the turn
right before when the two fit together at all. The rest of the budget goes to new turns.
Capping the history keeps each answer a target in about one window instead of being learned
again in every window that repeats it; ``context_turns`` says how many leading turns of a window
are such repeats (the OpenAI export gives them ``weight`` 0).

A turn that alone, with the system prompt and tools, is longer than the budget cannot be
trained on: it is dropped with its reason and the windows continue after it without history
from before (as for a left-out pair, thinking/training_data/training_examples.py).

Counting goes through :class:`TokenCounter`, so this layer needs no engine: the export passes
the target model's chat template and tokenizer (models/chat_template_tokens.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from thinking.training_data.training_examples import ChatExample, Message

TURN_LONGER_THAN_CUTOFF = "one turn longer than cutoff_len"


class TokenCounter(Protocol):
    def count(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]]) -> int:
        """Tokens of the messages rendered with the target model's chat template (system first)."""
        ...


@dataclass(slots=True)
class FittedExamples:
    examples: list[ChatExample] = field(default_factory=list)
    """Each with ``tokens`` measured, none over the cutoff."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Turns dropped, by reason."""
    windowed: bool = False
    """The example was longer than the cutoff and was split into windows."""


def fit_to_cutoff(example: ChatExample, counter: TokenCounter, cutoff_len: int, *,
                  history_share: float = 0.5) -> FittedExamples:
    if cutoff_len <= 0:
        raise ValueError(f"cutoff_len must be positive, not {cutoff_len}")
    measure = _Measure(example, counter)
    out = FittedExamples()
    n = len(example.turns)
    if n == 0:
        return out
    whole = measure(0, n)
    if whole <= cutoff_len:
        out.examples.append(_measured(example.window(0, n), whole))
        return out
    out.windowed = True
    run_start = 0
    for i in range(n + 1):
        if i < n and measure(i, i + 1) <= cutoff_len:
            continue
        if i < n:
            out.dropped[TURN_LONGER_THAN_CUTOFF] += 1
        if run_start < i:
            out.examples += _windows(example, measure, run_start, i, cutoff_len, history_share)
        run_start = i + 1
    return out


def _windows(example: ChatExample, measure: _Measure, start: int, stop: int, cutoff_len: int,
             history_share: float) -> list[ChatExample]:
    """Windows over turns ``start:stop``, each of which fits alone."""
    windows = []
    first = new = start  # the window's first turn; its first turn not learned in the window before
    while True:
        end = new + 1
        while end < stop and measure(first, end + 1) <= cutoff_len:
            end += 1
        windows.append(_measured(example.window(first, end, context_turns=new - first), measure(first, end)))
        if end >= stop:
            return windows
        history_budget = history_share * measure.room(cutoff_len)
        first, new = _history_start(measure, first, end, cutoff_len, history_budget), end


def _history_start(measure: _Measure, previous_first: int, new: int, cutoff_len: int,
                   history_budget: float) -> int:
    """The first turn of the window whose first new turn is ``new``. Turns from the previous
    window's first one on cannot all fit again with ``new`` (that window could not take it)."""
    alone = measure(new, new + 1)
    for first in range(previous_first + 1, new):
        tokens = measure(first, new + 1)
        if tokens <= cutoff_len and tokens - alone <= history_budget:
            return first
    if new - 1 > previous_first and measure(new - 1, new + 1) <= cutoff_len:
        return new - 1  # at least the turn before, when the two fit
    return new


def _measured(example: ChatExample, tokens: int) -> ChatExample:
    example.tokens = tokens
    return example


class _Measure:
    """Token counts of turn ranges of one example, each range rendered once."""

    def __init__(self, example: ChatExample, counter: TokenCounter) -> None:
        self._example = example
        self._counter = counter
        self._cache: dict[tuple[int, int], int] = {}

    def room(self, cutoff_len: int) -> int:
        """What the budget leaves for turns after the system prompt and tools."""
        try:
            overhead = self(0, 0)
        except ValueError:  # a template that refuses a prompt without a user message
            overhead = 0
        return max(0, cutoff_len - overhead)

    def __call__(self, start: int, end: int) -> int:
        key = (start, end)
        if key not in self._cache:
            window = self._example.window(start, end)
            self._cache[key] = self._counter.count(window.chat_messages(), window.tools)
        return self._cache[key]
