"""Train and eval sets split by conversation, never by message or window.

Windows of one conversation share turns, and its turns share a topic and a speaker: one in train
and another in eval would make the eval score an echo of the training set. So whole
conversations are held out. Which ones follows from a hash of the seed and each conversation's
id, not from the order they come in: the same seed holds out the same conversations on every
export, and a store that grew since moves few of them (mostly new ones come in on either side),
so an eval conversation does not turn up in a later training set by chance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar


class FromConversation(Protocol):
    @property
    def conversation_id(self) -> str: ...


T = TypeVar("T", bound=FromConversation)


def eval_conversations(conversation_ids: Iterable[str], eval_fraction: float, seed: int = 0) -> set[str]:
    """The ids to hold out: ``round(n * eval_fraction)`` of them, at least one when the fraction
    is above 0 and at least one always left to train on (so none of 1 conversation)."""
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"the eval fraction must be in [0, 1), not {eval_fraction}")
    ids = sorted(set(conversation_ids))
    if eval_fraction == 0.0 or len(ids) < 2:
        return set()
    held_out = min(len(ids) - 1, max(1, round(len(ids) * eval_fraction)))
    ranked = sorted(ids, key=lambda cid: hashlib.sha256(f"{seed}\0{cid}".encode()).digest())
    return set(ranked[:held_out])


def split_by_conversation(items: Sequence[T], eval_ids: set[str]) -> tuple[list[T], list[T]]:
    """(train, eval), each in the order given."""
    train = [item for item in items if item.conversation_id not in eval_ids]
    held_out = [item for item in items if item.conversation_id in eval_ids]
    return train, held_out
