"""What an answer is generated with: the configured sampler settings reach the engine's parameters."""

import dataclasses

import pytest

from server.config import load_config
from server.response_planning import ResponseRequest, ToolChoice, plan_response


def request() -> ResponseRequest:
    return ResponseRequest(response_id="resp_1", item_id="item_1", modalities=("text",), max_tokens=50,
                           instructions="", output_rate_hz=24_000, voice="alloy", speed=1.0, binary_audio=False,
                           adapter=None, conversation="sess_1")


@pytest.mark.parametrize("setting,expected", [("7", 7), ("0", 0), ("-1", None)])
def test_the_configured_seed_is_the_answers_seed_and_minus_one_means_none(setting, expected):
    config = load_config(environ={}, assignments=[f"assistant.seed={setting}", "assistant.temperature=0.9"])
    plan = plan_response(request(), config=config, tools=ToolChoice((), (), "auto"), messages=[],
                         fixed_text=None, filler_text="")
    assert plan.generation.seed == expected
    assert plan.generation.temperature == 0.9


def test_the_personas_name_is_a_label_the_answer_drops():
    config = load_config(environ={})
    named = dataclasses.replace(request(), speaker="Mei")
    plan = plan_response(named, config=config, tools=ToolChoice((), (), "auto"), messages=[], fixed_text=None,
                         filler_text="")
    assert plan.speaker_names == ("Mei",)
    plan = plan_response(request(), config=config, tools=ToolChoice((), (), "auto"), messages=[], fixed_text=None,
                         filler_text="")
    assert plan.speaker_names == ()
