"""Tool calls through a real session and runner, with a scripted LLM (the embedded one is measured
elsewhere): a server tool's output goes back to the LLM and the answer follows in the same
response; a slow tool gets a spoken filler; a tool that raises is told to the LLM, not the user;
a barge-in cancels the tool; a client tool follows the Realtime protocol's function-call events."""

from __future__ import annotations

import asyncio
import dataclasses
import json


from models.interfaces import ChatMessage, GenerationParams, ToolCall, ToolSpec
from server.config import AssistantSection, Config
from server.session import RealtimeSession
from server.thinking_services import ThinkingServices
from tests.server.session_harness import SessionHarness, SilentTTS, open_session
from thinking.personas import PersonaLibrary
from thinking.tool_registry import ServerTool, ToolRegistry

OBJECT = {"type": "object", "properties": {}}


class ToolThenAnswer:
    """Asks for ``tool`` first; once a tool message is in the prompt, answers with its content."""

    def __init__(self, tool: str, arguments: str = "{}") -> None:
        self.tool, self.arguments = tool, arguments
        self.prompts: list[list[ChatMessage]] = []
        self.params: list[GenerationParams] = []

    async def stream_chat(self, messages, params):
        self.prompts.append(list(messages))
        self.params.append(params)
        if messages[-1].role == "tool":
            yield f"The tool said: {messages[-1].content}."
            return
        yield ToolCall(call_id=f"call_{len(self.prompts)}", name=self.tool, arguments=self.arguments)


def _tool(name: str, run, *, slow: bool = False) -> ServerTool:
    return ServerTool(spec=ToolSpec(name=name, description=name, parameters=OBJECT), run=run, slow=slow)


async def _session(llm, registry: ToolRegistry | None, *, server_tools: str, modality: str = "text",
                   tools: list | None = None) -> tuple[RealtimeSession, list[dict], SessionHarness]:
    config = dataclasses.replace(Config(), assistant=AssistantSection(server_tools=server_tools,
                                                                       tool_filler_after_s=0.1))
    services = ThinkingServices(personas=PersonaLibrary([]), tools=registry)
    harness = await open_session(llm=llm, tts=SilentTTS(), config=config, thinking=services)
    update = {"type": "realtime", "output_modalities": [modality]}
    if tools is not None:
        update["tools"] = tools
    await harness.send({"type": "session.update", "session": update})
    await harness.say("What time is it?")
    return harness.session, harness.sent, harness


async def _until(sent: list[dict], kind: str, count: int = 1, timeout: float = 5.0) -> dict:
    return await SessionHarness(session=None, engines=None, sent=sent).until(kind, count, timeout)  # type: ignore[arg-type]


async def _close(session: RealtimeSession, harness: SessionHarness) -> None:
    await harness.aclose()


async def test_a_server_tool_result_goes_back_to_the_llm_and_the_answer_follows():
    async def clock(arguments):
        return "half past ten"

    llm = ToolThenAnswer("get_current_time")
    session, sent, engines = await _session(llm, ToolRegistry([_tool("get_current_time", clock)]),
                                            server_tools="get_current_time")
    await session.handle_text(json.dumps({"type": "response.create"}))
    done = (await _until(sent, "response.done"))["response"]
    await _close(session, engines)
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["text"] == "The tool said: half past ten."
    assert [t.name for t in llm.params[0].tools] == ["get_current_time"]
    items = [i.type for i in session.conversation.items]
    assert items == ["message", "function_call", "function_call_output", "message"]  # call, result, then answer
    assert session.conversation.items[2].output == "half past ten"
    assert not any(e["type"].startswith("response.function_call_arguments") for e in sent)  # not the client's
    history = session.conversation.chat_history()
    assert [m.role for m in history] == ["user", "assistant", "tool", "assistant"]


async def test_a_slow_tool_gets_a_spoken_filler_while_it_runs():
    async def slow_lookup(arguments):
        await asyncio.sleep(0.5)
        return "closed on Mondays"

    llm = ToolThenAnswer("search_knowledge_base")
    session, sent, engines = await _session(llm, ToolRegistry([_tool("search_knowledge_base", slow_lookup, slow=True)]),
                                            server_tools="search_knowledge_base", modality="audio")
    await session.handle_text(json.dumps({"type": "response.create"}))
    done = (await _until(sent, "response.done"))["response"]
    await _close(session, engines)
    deltas = [e["delta"] for e in sent if e["type"] == "response.output_audio_transcript.delta"]
    assert deltas[0] == "One moment, let me check."
    assert done["output"][0]["content"][0]["transcript"].endswith("The tool said: closed on Mondays.")
    first_audio = next(i for i, e in enumerate(sent) if e["type"] == "response.output_audio.delta")
    result_item = next(i for i, e in enumerate(sent) if e["type"] == "conversation.item.added"
                       and e["item"]["type"] == "function_call_output")
    assert first_audio < result_item  # the filler was heard while the tool still ran


async def test_a_tool_that_raises_is_told_to_the_llm_and_the_session_goes_on():
    async def broken(arguments):
        raise RuntimeError("database offline")

    llm = ToolThenAnswer("get_current_time")
    session, sent, engines = await _session(llm, ToolRegistry([_tool("get_current_time", broken)]),
                                            server_tools="get_current_time")
    await session.handle_text(json.dumps({"type": "response.create"}))
    done = (await _until(sent, "response.done"))["response"]
    await session.handle_text(json.dumps({"type": "response.create"}))
    again = (await _until(sent, "response.done", count=2))["response"]
    await _close(session, engines)
    assert done["status"] == "completed" and again["status"] == "completed"
    assert "database offline" in llm.prompts[1][-1].content
    assert not [e for e in sent if e["type"] == "error"]


async def test_a_barge_in_cancels_the_running_tool_and_its_answer():
    cancelled = asyncio.Event()

    async def hangs(arguments):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    llm = ToolThenAnswer("search_knowledge_base")
    session, sent, engines = await _session(llm, ToolRegistry([_tool("search_knowledge_base", hangs, slow=True)]),
                                            server_tools="search_knowledge_base", modality="audio")
    await session.handle_text(json.dumps({"type": "response.create"}))
    await _until(sent, "response.output_audio.delta")  # the filler plays
    # The user talks over it, and the barge-in is confirmed (server/interruptions.py decides when).
    session.responses.barge_in()
    done = (await _until(sent, "response.done"))["response"]
    await asyncio.wait_for(cancelled.wait(), 2)
    await _close(session, engines)
    assert done["status"] == "cancelled"
    assert len(llm.prompts) == 1  # no answer was generated from a tool result
    # the unanswered call stays out of the LLM's history (chat templates need a result per call)
    assert all(not m.tool_calls for m in session.conversation.chat_history())


async def test_a_client_tool_follows_the_realtime_function_call_protocol():
    llm = ToolThenAnswer("open_door", '{"door": "front"}')
    tools = [{"type": "function", "name": "open_door", "description": "Opens a door",
              "parameters": {"type": "object", "properties": {"door": {"type": "string"}}}}]
    session, sent, engines = await _session(llm, ToolRegistry(), server_tools="", tools=tools)
    await session.handle_text(json.dumps({"type": "response.create"}))
    first = (await _until(sent, "response.done"))["response"]
    args_done = await _until(sent, "response.function_call_arguments.done")
    call_item = first["output"][1]
    assert call_item["type"] == "function_call" and call_item["name"] == "open_door"
    assert args_done["arguments"] == '{"door": "front"}' and args_done["call_id"] == call_item["call_id"]
    assert args_done["output_index"] == 1 and args_done["item_id"] == call_item["id"]
    await session.handle_text(json.dumps({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": call_item["call_id"], "output": "the front door is open"}}))
    await session.handle_text(json.dumps({"type": "response.create"}))
    second = (await _until(sent, "response.done", count=2))["response"]
    await session.handle_text(json.dumps({"type": "conversation.item.create", "event_id": "bad", "item": {
        "type": "function_call_output", "call_id": "call_nope", "output": "x"}}))
    error = await _until(sent, "error")
    await _close(session, engines)
    assert second["output"][0]["content"][0]["text"] == "The tool said: the front door is open."
    assert error["error"]["code"] == "item_not_found" and error["error"]["event_id"] == "bad"
    assert json.loads(json.dumps(session.settings.to_wire()))["tools"][0]["name"] == "open_door"


async def test_every_event_of_a_tool_turn_validates_against_the_openai_schema():
    import pydantic
    from openai.types.realtime import RealtimeServerEvent

    adapter = pydantic.TypeAdapter(RealtimeServerEvent)

    async def clock(arguments):
        return "noon"

    llm = ToolThenAnswer("get_current_time")
    session, sent, engines = await _session(llm, ToolRegistry([_tool("get_current_time", clock)]),
                                            server_tools="get_current_time",
                                            tools=[{"type": "function", "name": "open_door", "parameters": OBJECT}])
    await session.handle_text(json.dumps({"type": "response.create"}))
    await _until(sent, "response.done")
    client = ToolThenAnswer("open_door")
    session.engines.llm = client  # the next answer calls the client's tool
    await session.handle_text(json.dumps({"type": "response.create"}))
    await _until(sent, "response.done", count=2)
    await _close(session, engines)
    kinds = {e["type"] for e in sent}
    assert {"response.function_call_arguments.done", "conversation.item.added", "session.updated"} <= kinds
    for event in sent:
        adapter.validate_python(event)
