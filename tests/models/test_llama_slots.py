"""Slot choice for llama-server requests: a conversation keeps its slot, background work has its own."""

from __future__ import annotations

import pytest

from models.interfaces import GenerationParams
from models.llama_slots import ACTIVE_S, ANY_SLOT, SlotRouter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def answer(conversation: str | None) -> GenerationParams:
    return GenerationParams(conversation=conversation)


def test_each_conversation_keeps_its_own_slot():
    router = SlotRouter(slots=5, clock=Clock())
    first = {c: router.slot_for(answer(c)) for c in ("a", "b", "c", "d")}
    assert sorted(first.values()) == [0, 1, 2, 3]
    for _ in range(3):
        assert {c: router.slot_for(answer(c)) for c in ("d", "b", "a", "c")} == first


def test_background_work_has_the_last_slot_and_no_conversation_gets_it():
    router = SlotRouter(slots=3, clock=Clock())
    assert router.slot_for(GenerationParams(purpose="background")) == 2
    assert {router.slot_for(answer(c)) for c in "abcdef"} == {0, 1}


def test_a_request_without_a_conversation_lets_the_server_choose():
    assert SlotRouter(slots=3).slot_for(answer(None)) == ANY_SLOT


def test_more_conversations_than_slots_share_evenly_the_longest_idle_first():
    clock = Clock()
    router = SlotRouter(slots=3, clock=clock)
    assert router.slot_for(answer("a")) == 0
    clock.now = 1
    assert router.slot_for(answer("b")) == 1
    clock.now = 2
    router.slot_for(answer("a"))  # slot 0 was used last
    clock.now = 3
    assert router.slot_for(answer("c")) == 1  # both carry one conversation; slot 1 has been idle longer


def test_a_conversation_gone_quiet_no_longer_counts_against_its_slot():
    clock = Clock()
    router = SlotRouter(slots=3, clock=clock)
    router.slot_for(answer("old"))  # slot 0
    router.slot_for(answer("b"))  # slot 1
    clock.now = ACTIVE_S + 1
    router.slot_for(answer("b"))
    assert router.slot_for(answer("new")) == 0  # "old" is quiet: slot 0 is free again


def test_fewer_than_two_slots_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        SlotRouter(slots=1)
