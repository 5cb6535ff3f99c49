"""Personas: named, versioned assistant characters, one TOML file per version.

A session picks one with the Realtime protocol's own ``session.prompt``
(``{"id": "museum_guide", "version": "2", "variables": {"visitor": "Li"}}``), the
reference OpenAI uses for stored prompts, so existing clients need no extension. A
kiosk pins one through its client secret. Selecting a persona sets the instructions
(its role plus its speaking style, with ``{{variable}}`` placeholders filled), the
voice, the recognition language and the LLM adapter; fields the same update sets
explicitly win over the persona's.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPOKEN_STYLE_EN = ("Your replies are spoken aloud: answer in one to three short sentences of plain "
                   "conversational text, with no lists, no markdown and no emoji.")
SPOKEN_STYLE_ZH = "你的回答会被朗读出来：用一到三句简短的口语回答，不要列表、不要 Markdown、不要表情符号。"
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
RECORD_MODES = ("off", "text", "audio")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class PersonaError(ValueError):
    """An unknown persona or version, a malformed persona file, or a missing variable."""


@dataclass(frozen=True)
class Persona:
    id: str
    version: int
    name: str
    language: str
    """'en' or 'zh': the language it speaks, and the recogniser's hint unless ``asr_language`` says otherwise."""
    instructions: str
    speaking_style: str = ""
    """Appended to the instructions; empty means the spoken style of its language."""
    voice: str = ""
    """A TTS voice (a Kokoro voice, a CosyVoice speaker prompt name); empty keeps the session's."""
    greeting: str = ""
    """Said when the persona is chosen for a conversation that has not started yet."""
    llm_adapter: str = ""
    """A LoRA adapter of the LLM server (vLLM ``--lora-modules NAME=PATH``) fine-tuned for the role."""
    asr_language: str | None = None
    """Pins recognition ('en', 'zh'); None: the persona's ``language``; '' : detect per utterance."""
    variables: dict[str, str] = field(default_factory=dict)
    """Defaults for ``{{name}}`` placeholders in the instructions and the greeting."""
    record: str | None = None
    """What the server keeps of its conversations for training ('off', 'text', 'audio');
    None: the server's ``data.record``. A kiosk persona may turn recording on (or off) for its visitors."""

    def style(self) -> str:
        return self.speaking_style or (SPOKEN_STYLE_ZH if self.language == "zh" else SPOKEN_STYLE_EN)

    def render(self, variables: dict[str, Any] | None = None) -> tuple[str, str]:
        """(instructions with the style, greeting), placeholders filled from ``variables`` over the defaults."""
        values = {**self.variables, **{str(k): str(v) for k, v in (variables or {}).items()}}

        def fill(text: str) -> str:
            def one(match: re.Match[str]) -> str:
                if match.group(1) not in values:
                    raise PersonaError(f"persona {self.id!r} needs the variable {match.group(1)!r}")
                return values[match.group(1)]
            return _PLACEHOLDER.sub(one, text)

        return fill(f"{self.instructions.strip()}\n\n{self.style()}"), fill(self.greeting)

    def recognition_language(self) -> str | None:
        language = self.language if self.asr_language is None else self.asr_language
        return language or None


def read_persona(path: Path) -> Persona:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PersonaError(f"{path}: {exc}") from None
    known = set(Persona.__dataclass_fields__)
    if unknown := set(raw) - known:
        raise PersonaError(f"{path}: unknown fields {sorted(unknown)}")
    missing = [name for name in ("id", "version", "name", "language", "instructions") if name not in raw]
    if missing:
        raise PersonaError(f"{path}: missing {missing}")
    if not _ID.match(str(raw["id"])):
        raise PersonaError(f"{path}: id must be lower-case letters, digits, '-' or '_'")
    if raw["language"] not in ("en", "zh"):
        raise PersonaError(f"{path}: language must be 'en' or 'zh'")
    if raw.get("record") not in (None, *RECORD_MODES):
        raise PersonaError(f"{path}: record must be one of {', '.join(RECORD_MODES)}")
    try:
        return Persona(**{**raw, "version": int(raw["version"]),
                          "variables": {str(k): str(v) for k, v in (raw.get("variables") or {}).items()}})
    except (TypeError, ValueError) as exc:
        raise PersonaError(f"{path}: {exc}") from None


class PersonaLibrary:
    """Every persona file of a directory, read once at start-up (a broken file stops the start)."""

    def __init__(self, personas: list[Persona]) -> None:
        self._by_id: dict[str, dict[int, Persona]] = {}
        for persona in personas:
            versions = self._by_id.setdefault(persona.id, {})
            if persona.version in versions:
                raise PersonaError(f"persona {persona.id!r} version {persona.version} is defined twice")
            versions[persona.version] = persona

    @classmethod
    def from_directory(cls, directory: Path) -> PersonaLibrary:
        if not directory.is_dir():
            return cls([])
        return cls([read_persona(path) for path in sorted(directory.glob("*.toml"))])

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def get(self, persona_id: str, version: str | int | None = None) -> Persona:
        versions = self._by_id.get(persona_id)
        if not versions:
            known = ", ".join(self.ids()) or "none are installed"
            raise PersonaError(f"unknown persona {persona_id!r} ({known})")
        if version in (None, ""):
            return versions[max(versions)]
        try:
            return versions[int(version)]
        except (KeyError, ValueError):
            raise PersonaError(f"persona {persona_id!r} has no version {version!r} "
                               f"(versions {sorted(versions)})") from None
