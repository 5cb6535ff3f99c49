"""What a response will be, in two steps: the request announced at once, the plan built complete.

``response.created`` goes out the moment a response is asked for, before the
user's words are transcribed or the prompt is assembled: it needs only what
:class:`ResponseRequest` holds. The :class:`ResponsePlan` the runner executes is
built once, complete, when the prompt (or the fixed text) is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models.interfaces import ChatMessage, GenerationParams, ToolSpec
from server.config import Config
from server.ids import new_id
from server.response_runner import ResponsePlan
from server.session_settings import SessionSettings


@dataclass(frozen=True)
class ResponseRequest:
    response_id: str
    item_id: str
    modalities: tuple[str, ...]
    max_tokens: int
    instructions: str
    output_rate_hz: int
    voice: str
    speed: float
    binary_audio: bool
    adapter: str | None
    conversation: str
    """The session's id: a llama-server keeps one conversation's prompt cached on one slot."""
    speaker: str = ""
    """The persona's name: a label of it in front of the answer is dropped (streaming/speaker_label.py)."""

    @property
    def speaks(self) -> bool:
        return "audio" in self.modalities

    @classmethod
    def from_settings(cls, settings: SessionSettings, overrides: Mapping[str, Any], config: Config) -> ResponseRequest:
        """The session's settings with the overrides of one ``response.create``."""
        max_tokens = overrides.get("max_output_tokens") or settings.max_output_tokens
        return cls(
            response_id=new_id("resp"), item_id=new_id("item"),
            modalities=tuple(overrides.get("output_modalities") or settings.output_modalities),
            max_tokens=4096 if max_tokens == "inf" else int(max_tokens),
            instructions=overrides.get("instructions") or settings.instructions,
            output_rate_hz=settings.output_rate_hz, voice=settings.voice, speed=settings.speed,
            binary_audio=settings.binary_audio,
            adapter=settings.llm_adapter or config.assistant.llm_adapter or None,
            conversation=settings.id, speaker=settings.persona.name if settings.persona else "",
        )

    def to_wire(self, *, status: str, conversation_id: str, output: list[dict[str, Any]],
                reason: str | None = None, latency: dict[str, Any] | None = None) -> dict[str, Any]:
        response: dict[str, Any] = {
            "object": "realtime.response", "id": self.response_id, "status": status, "output": output,
            "conversation_id": conversation_id, "output_modalities": list(self.modalities),
            "max_output_tokens": self.max_tokens,
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": self.output_rate_hz}, "voice": self.voice}},
        }
        if status in ("cancelled", "failed", "incomplete"):
            response["status_details"] = {"type": status, "reason": reason}
        if latency is not None:
            response["latency"] = latency  # tingshuo extension: per-stage ms from the end of user speech
        return response


@dataclass(frozen=True)
class ToolChoice:
    server_tools: tuple[ToolSpec, ...]
    client_tools: tuple[ToolSpec, ...]
    tool_choice: str


def instructions_for(request: ResponseRequest, tools: ToolChoice, config: Config) -> str:
    """The request's instructions, and the hint on when to call the server's tools when any are offered."""
    hint = config.assistant.tool_hint if tools.server_tools else ""
    return f"{request.instructions} {hint}".strip()


def plan_response(request: ResponseRequest, *, config: Config, tools: ToolChoice, messages: list[ChatMessage],
                  fixed_text: str | None, filler_text: str) -> ResponsePlan:
    assistant = config.assistant
    return ResponsePlan(
        response_id=request.response_id, item_id=request.item_id, messages=messages,
        generation=GenerationParams(max_tokens=request.max_tokens, temperature=assistant.temperature,
                                    seed=assistant.seed if assistant.seed >= 0 else None,
                                    adapter=request.adapter, tools=(*tools.server_tools, *tools.client_tools),
                                    tool_choice=tools.tool_choice if tools.client_tools else "auto",
                                    conversation=request.conversation),
        modalities=request.modalities, output_rate_hz=request.output_rate_hz, voice=request.voice,
        speed=request.speed, frame_ms=config.audio.output_frame_ms, max_lead_ms=config.audio.max_lead_ms,
        binary_audio=request.binary_audio,
        first_token_timeout_s=assistant.llm_first_token_timeout_s, token_timeout_s=assistant.llm_token_timeout_s,
        tts_chunk_timeout_s=assistant.tts_chunk_timeout_s, fixed_text=fixed_text,
        server_tools=frozenset(t.name for t in tools.server_tools), max_tool_rounds=assistant.max_tool_rounds,
        filler_after_s=assistant.tool_filler_after_s, filler_text=filler_text,
        speaker_names=(request.speaker,) if request.speaker else (),
    )
