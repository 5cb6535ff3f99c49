"""Stored conversations as chat examples: the corrected transcript, tool calls as messages, and
bad pairs left out with the conversation cut where they were."""

from __future__ import annotations

from thinking.training_data.dataset_records import RecordedTurn, StoredConversation, ToolCallRecord
from thinking.training_data.training_examples import (
    BARGE_IN_CUT, BROKEN_TOOL_ARGUMENTS, EMPTY_ANSWER, EMPTY_USER_MESSAGE, FAILURE_APOLOGY, TOOL_CALLS_UNSUPPORTED,
    bad_pair_reason, chat_examples, chat_tools)

CLOCK = {"type": "function", "function": {"name": "get_time", "description": "The time in a timezone",
                                          "parameters": {"type": "object", "properties": {}}}}


def turn(n: int, **fields) -> RecordedTurn:
    values = {"item_id": f"item_{n}", "user_text": f"question {n}", "answer_generated": f"answer {n}",
              "answer_heard": f"answer {n}"}
    return RecordedTurn(**(values | fields))


def conversation(*turns: RecordedTurn, **fields) -> StoredConversation:
    return StoredConversation(id=fields.pop("id", "c1"), source="recorded", turns=list(turns), **fields)


def contents(example) -> list[tuple[str, str]]:
    return [(m["role"], m.get("content", "")) for m in example.turn_messages()]


def test_one_clean_conversation_is_one_example_with_its_instructions_and_tools():
    built = chat_examples(conversation(turn(1), turn(2), instructions="  Be brief.  ", tools=[CLOCK]))
    (example,) = built.examples
    assert example.conversation_id == "c1" and example.system == "Be brief." and example.tools == [CLOCK]
    assert contents(example) == [("user", "question 1"), ("assistant", "answer 1"),
                                 ("user", "question 2"), ("assistant", "answer 2")]
    assert example.chat_messages()[0] == {"role": "system", "content": "Be brief."}
    assert [t.item_id for t in example.turns] == ["item_1", "item_2"]
    assert not built.left_out and built.cuts == 0


def test_the_corrected_transcript_replaces_the_recognised_one():
    (example,) = chat_examples(conversation(turn(1, user_text="wreck a nice beach",
                                                corrected_text="recognise speech"))).examples
    assert example.turn_messages()[0] == {"role": "user", "content": "recognise speech"}


def test_tool_calls_become_one_assistant_call_and_one_tool_result_each_before_the_answer():
    calls = [ToolCallRecord("get_time", '{"timezone": "Asia/Tokyo"}', "14:05", call_id="call_a"),
             ToolCallRecord("get_time", '{"timezone": "Europe/Paris"}', "07:05")]
    (example,) = chat_examples(conversation(turn(1, tool_calls=calls))).examples
    messages = example.turn_messages()
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"] == [{"id": "call_a", "type": "function", "function": {
        "name": "get_time", "arguments": '{"timezone": "Asia/Tokyo"}'}}]
    assert messages[2] == {"role": "tool", "tool_call_id": "call_a", "content": "14:05"}
    made_up = messages[3]["tool_calls"][0]["id"]
    assert made_up and made_up != "call_a" and messages[4]["tool_call_id"] == made_up
    assert messages[5] == {"role": "assistant", "content": "answer 1"}


def test_realtime_flat_tool_definitions_become_chat_completions_ones():
    flat = {"type": "function", "name": "get_time", "description": "d", "parameters": {"type": "object"}}
    assert chat_tools([flat, CLOCK]) == [
        {"type": "function", "function": {"name": "get_time", "description": "d", "parameters": {"type": "object"}}},
        CLOCK]


def test_each_kind_of_bad_pair_is_named():
    assert bad_pair_reason(turn(1, failure="llm timeout", answer_generated="Sorry, I lost my train of thought.")) \
        == FAILURE_APOLOGY
    assert bad_pair_reason(turn(1, interrupted=True, answer_heard="ans")) == BARGE_IN_CUT
    assert bad_pair_reason(turn(1, answer_generated="  ", answer_heard="")) == EMPTY_ANSWER
    assert bad_pair_reason(turn(1, user_text=" ")) == EMPTY_USER_MESSAGE
    assert bad_pair_reason(turn(1, tool_calls=[ToolCallRecord("get_time", "{timezone:", "")])) \
        == BROKEN_TOOL_ARGUMENTS
    assert bad_pair_reason(turn(1)) == ""


def test_bad_pairs_are_left_out_and_the_conversation_is_cut_there():
    built = chat_examples(conversation(
        turn(1, failure="asr", answer_generated="Sorry?"),  # at the start: nothing to cut
        turn(2), turn(3),
        turn(4, interrupted=True, answer_heard="answ"),
        turn(5),
        turn(6, answer_generated="", answer_heard=""), turn(7, answer_generated=" ", answer_heard=""),
        turn(8),
        turn(9, failure="tts")))  # at the end: nothing after it
    assert [[t.item_id for t in e.turns] for e in built.examples] == [["item_2", "item_3"], ["item_5"], ["item_8"]]
    assert built.left_out == {FAILURE_APOLOGY: 2, BARGE_IN_CUT: 1, EMPTY_ANSWER: 2}
    assert built.cuts == 2
    assert all(e.conversation_id == "c1" for e in built.examples)


def test_with_include_bad_the_pairs_stay_and_a_barge_in_keeps_what_was_heard():
    built = chat_examples(conversation(
        turn(1), turn(2, interrupted=True, answer_generated="The whole long answer.", answer_heard="The whole"),
        turn(3, failure="llm", answer_generated="Sorry, something went wrong.")), include_bad=True)
    (example,) = built.examples
    assert [c for r, c in contents(example) if r == "assistant"] == [
        "answer 1", "The whole", "Sorry, something went wrong."]
    assert not built.left_out


def test_a_format_without_tool_messages_leaves_out_turns_that_called_tools():
    call = ToolCallRecord("get_time", "{}", "14:05", "c")
    built = chat_examples(conversation(turn(1), turn(2, tool_calls=[call]), turn(3), tools=[CLOCK]),
                          tool_calls=False)
    assert [[t.item_id for t in e.turns] for e in built.examples] == [["item_1"], ["item_3"]]
    assert built.left_out == {TOOL_CALLS_UNSUPPORTED: 1} and built.cuts == 1
    assert all(e.tools == [] for e in built.examples)
