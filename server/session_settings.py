"""Per-connection settings that ``session.update`` changes, and their wire form.

We accept the GA ``session.update`` schema, plus two tingshuo extensions a
kiosk needs: ``audio.input.format.rate = 16000`` (no resampling on the device)
and ``audio.output.format.rate = 16000``; the Realtime schema itself only allows
24 kHz PCM16. Raw binary audio frames are chosen at connect time
(``?audio=binary``), not here, since they change how every message is framed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from models.interfaces import ToolSpec
from streaming.turn_policy import TurnPolicy
from thinking.personas import Persona, PersonaError, PersonaLibrary

SUPPORTED_RATES_HZ = (24_000, 16_000)
REALTIME_RATE_HZ = 24_000

TurnMode = Literal["server_vad", "semantic_vad"]


class SettingsError(ValueError):
    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class TurnDetectionSettings:
    mode: TurnMode = "semantic_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    create_response: bool = True
    interrupt_response: bool = True

    def policy(self) -> TurnPolicy:
        return TurnPolicy(mode=self.mode, eagerness=self.eagerness)

    def to_wire(self) -> dict[str, Any]:
        common = {"type": self.mode, "create_response": self.create_response,
                  "interrupt_response": self.interrupt_response}
        if self.mode == "semantic_vad":
            return {**common, "eagerness": self.eagerness}
        return {**common, "threshold": self.threshold, "prefix_padding_ms": self.prefix_padding_ms,
                "silence_duration_ms": self.silence_duration_ms}


@dataclass(frozen=True)
class SessionSettings:
    id: str
    model: str = "tingshuo"
    instructions: str = ""
    voice: str = "tingshuo"
    speed: float = 1.0
    input_rate_hz: int = REALTIME_RATE_HZ
    output_rate_hz: int = REALTIME_RATE_HZ
    turn_detection: TurnDetectionSettings | None = TurnDetectionSettings()
    transcription: bool = True
    transcription_language: str | None = None
    output_modalities: tuple[str, ...] = ("audio",)
    max_output_tokens: int = 200
    binary_audio: bool = False
    tools: tuple[ToolSpec, ...] = ()
    """Client-side function tools (``session.tools``): the client runs them and sends the output."""
    tool_choice: Literal["auto", "none", "required"] = "auto"
    prompt: dict[str, Any] | None = None
    """The persona reference as the client sent it (``{"id", "version", "variables"}``)."""
    persona: Persona | None = None
    greeting: str = ""
    """The chosen persona's greeting, rendered."""
    llm_adapter: str | None = None

    def to_wire(self) -> dict[str, Any]:
        transcription = (
            {"model": "whisper-base", **({"language": self.transcription_language} if self.transcription_language else {})}
            if self.transcription
            else None
        )
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self.id,
            "model": self.model,
            "instructions": self.instructions,
            "output_modalities": list(self.output_modalities),
            "max_output_tokens": self.max_output_tokens,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": self.input_rate_hz},
                    "transcription": transcription,
                    "turn_detection": self.turn_detection.to_wire() if self.turn_detection else None,
                },
                "output": {
                    "format": {"type": "audio/pcm", "rate": self.output_rate_hz},
                    "voice": self.voice,
                    "speed": self.speed,
                },
            },
            "tools": [{"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}
                      for t in self.tools],
            "tool_choice": self.tool_choice,
            **({"prompt": self.prompt} if self.prompt else {}),
        }


def _rate(fmt: Any, param: str) -> int | None:
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise SettingsError("audio format must be an object", param=param)
    if fmt.get("type", "audio/pcm") != "audio/pcm":
        raise SettingsError(f"unsupported audio format {fmt.get('type')!r}; only 'audio/pcm' (PCM16)", param=param)
    rate = fmt.get("rate", REALTIME_RATE_HZ)
    if rate not in SUPPORTED_RATES_HZ:
        raise SettingsError(f"unsupported sample rate {rate!r}; use 24000 or 16000", param=param)
    return int(rate)


def _turn_detection(raw: Any, current: TurnDetectionSettings | None) -> TurnDetectionSettings | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("type") not in ("server_vad", "semantic_vad"):
        raise SettingsError("turn_detection.type must be 'server_vad' or 'semantic_vad'",
                            param="session.audio.input.turn_detection.type")
    base = current or TurnDetectionSettings()
    known = {f.name for f in dataclasses.fields(TurnDetectionSettings)} - {"mode"}
    changes = {k: v for k, v in raw.items() if k in known and v is not None}
    threshold = changes.get("threshold", base.threshold)
    if not 0.0 < float(threshold) < 1.0:
        raise SettingsError("threshold must be between 0 and 1", param="session.audio.input.turn_detection.threshold")
    return dataclasses.replace(base, mode=raw["type"], **changes)


def _tools(raw: Any) -> tuple[ToolSpec, ...]:
    if not isinstance(raw, list):
        raise SettingsError("tools must be a list", param="session.tools")
    specs = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise SettingsError("only function tools are supported", param=f"session.tools.{i}.type")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise SettingsError("a function tool needs a name", param=f"session.tools.{i}.name")
        parameters = tool.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise SettingsError("parameters must be a JSON schema object", param=f"session.tools.{i}.parameters")
        specs.append(ToolSpec(name=name, description=str(tool.get("description") or ""), parameters=parameters))
    return tuple(specs)


def _persona_changes(prompt: Any, personas: PersonaLibrary | None) -> dict[str, Any]:
    """``session.prompt`` names a persona: its instructions, voice, language and adapter."""
    if prompt is None:
        return {"prompt": None, "persona": None, "greeting": "", "llm_adapter": None}
    if not isinstance(prompt, dict) or not isinstance(prompt.get("id"), str):
        raise SettingsError("prompt must be an object with a persona 'id'", param="session.prompt.id")
    if personas is None:
        raise SettingsError("this server has no personas", param="session.prompt.id")
    try:
        persona = personas.get(prompt["id"], prompt.get("version"))
        variables = prompt.get("variables") or {}
        if not isinstance(variables, dict):
            raise PersonaError("variables must be an object")
        instructions, greeting = persona.render(variables)
    except PersonaError as exc:
        raise SettingsError(str(exc), param="session.prompt") from None
    changes: dict[str, Any] = {
        "prompt": {"id": persona.id, "version": str(persona.version), "variables": variables},
        "persona": persona, "instructions": instructions, "greeting": greeting,
        "llm_adapter": persona.llm_adapter or None,
        "transcription_language": persona.recognition_language(),
    }
    if persona.voice:
        changes["voice"] = persona.voice
    return changes


def apply_session_update(settings: SessionSettings, session: dict[str, Any],
                         personas: PersonaLibrary | None = None) -> SessionSettings:
    """Return new settings with the update applied; raises :class:`SettingsError` on a bad field.

    A persona (``prompt``) is applied first, so the same update's own ``instructions``,
    ``voice`` or transcription language win over the persona's."""
    changes: dict[str, Any] = {}
    if "prompt" in session:
        changes.update(_persona_changes(session["prompt"], personas))
    if "tools" in session and session["tools"] is not None:
        changes["tools"] = _tools(session["tools"])
    if (choice := session.get("tool_choice")) is not None:
        if choice not in ("auto", "none", "required"):
            raise SettingsError("tool_choice must be 'auto', 'none' or 'required'", param="session.tool_choice")
        changes["tool_choice"] = choice
    if "instructions" in session and session["instructions"] is not None:
        changes["instructions"] = str(session["instructions"])
    if (modalities := session.get("output_modalities")) is not None:
        if not modalities or any(m not in ("audio", "text") for m in modalities):
            raise SettingsError("output_modalities must be ['audio'] or ['text']", param="session.output_modalities")
        changes["output_modalities"] = tuple(modalities)
    if (max_tokens := session.get("max_output_tokens")) is not None:
        changes["max_output_tokens"] = 4096 if max_tokens == "inf" else int(max_tokens)
    audio = session.get("audio") or {}
    audio_in = audio.get("input") or {}
    audio_out = audio.get("output") or {}
    if (rate := _rate(audio_in.get("format"), "session.audio.input.format")) is not None:
        changes["input_rate_hz"] = rate
    if (rate := _rate(audio_out.get("format"), "session.audio.output.format")) is not None:
        changes["output_rate_hz"] = rate
    if "turn_detection" in audio_in:
        changes["turn_detection"] = _turn_detection(audio_in["turn_detection"], settings.turn_detection)
    if "transcription" in audio_in:
        transcription = audio_in["transcription"]
        changes["transcription"] = transcription is not None
        if isinstance(transcription, dict) and ("language" in transcription or "prompt" not in session):
            # A persona chosen in the same update keeps its language unless one is named here.
            changes["transcription_language"] = transcription.get("language") or None
    if (voice := audio_out.get("voice")) is not None:
        changes["voice"] = voice["id"] if isinstance(voice, dict) else str(voice)
    if (speed := audio_out.get("speed")) is not None:
        if not 0.25 <= float(speed) <= 1.5:
            raise SettingsError("speed must be between 0.25 and 1.5", param="session.audio.output.speed")
        changes["speed"] = float(speed)
    return dataclasses.replace(settings, **changes)
