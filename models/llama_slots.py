"""Which llama-server slot serves a request: one conversation stays on one slot.

llama-server keeps the last prompt of each slot in that slot's KV cache and reads only the
part of the next prompt that differs (``cache_prompt``). A conversation's prompt grows by a
turn at a time, so if its requests always land on the same slot, each turn reads only the new
turn. Left to itself (``id_slot = -1``) the server picks any idle slot, and two sessions
alternating on slots re-read their whole histories.

The last slot is kept for background work (history summaries): a summary neither waits in
front of an answer nor overwrites a conversation's cache. A new conversation takes the slot
with the fewest conversations active lately, the one idle longest among those; with more
conversations than slots, they share (and a shared slot re-reads when they alternate).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from models.interfaces import GenerationParams

ANY_SLOT = -1
"""llama-server's own choice: an idle slot."""
ACTIVE_S = 600.0
"""A conversation that asked within this long still counts against its slot's load."""
REMEMBERED_CONVERSATIONS = 1024
"""Conversations whose slot is remembered (sessions end without telling the model)."""


class SlotRouter:
    def __init__(self, *, slots: int, clock: Callable[[], float] = time.monotonic) -> None:
        if slots < 2:
            raise ValueError("llama-server needs at least 2 slots: conversations and one for background work")
        self.background_slot = slots - 1
        self._conversation_slots = slots - 1
        self._clock = clock
        self._by_conversation: collections.OrderedDict[str, tuple[int, float]] = collections.OrderedDict()
        self._slot_used = [float("-inf")] * self._conversation_slots

    def slot_for(self, params: GenerationParams) -> int:
        if params.purpose == "background":
            return self.background_slot
        if params.conversation is None:
            return ANY_SLOT
        now = self._clock()
        known = self._by_conversation.pop(params.conversation, None)
        slot = known[0] if known is not None else self._least_loaded(now)
        self._by_conversation[params.conversation] = (slot, now)
        self._slot_used[slot] = now
        while len(self._by_conversation) > REMEMBERED_CONVERSATIONS:
            self._by_conversation.popitem(last=False)
        return slot

    def _least_loaded(self, now: float) -> int:
        load = collections.Counter(slot for slot, used in self._by_conversation.values() if now - used < ACTIVE_S)
        return min(range(self._conversation_slots), key=lambda s: (load[s], self._slot_used[s]))
