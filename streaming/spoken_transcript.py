"""Maps audio played to the words it carried, so an interrupted answer keeps only what was heard.

Each speakable chunk is recorded with its text and audio duration. Within a
chunk the heard share is estimated proportionally by characters and cut back to
a word boundary (or a character for CJK), erring towards fewer words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_CJK_RANGES = ((0x3000, 0x303F), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0xFF00, 0xFFEF))


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


@dataclass(slots=True)
class _SpokenChunk:
    text: str
    audio_ms: float


@dataclass
class SpokenTranscript:
    chunks: list[_SpokenChunk] = field(default_factory=list)

    def add_text(self, text: str) -> None:
        """A new chunk starts; its audio follows through :meth:`add_audio`."""
        self.chunks.append(_SpokenChunk(text=text, audio_ms=0.0))

    def add_audio(self, duration_ms: float) -> None:
        if self.chunks:
            self.chunks[-1].audio_ms += duration_ms

    @property
    def total_audio_ms(self) -> float:
        return sum(c.audio_ms for c in self.chunks)

    def full_text(self) -> str:
        return _join([c.text for c in self.chunks])

    def heard_text(self, played_ms: float) -> str:
        parts: list[str] = []
        remaining = played_ms
        for chunk in self.chunks:
            if remaining <= 0 or chunk.audio_ms <= 0:
                break
            if remaining >= chunk.audio_ms:
                parts.append(chunk.text)
                remaining -= chunk.audio_ms
                continue
            parts.append(_prefix_by_share(chunk.text, remaining / chunk.audio_ms))
            break
        return _join([p for p in parts if p])


def _prefix_by_share(text: str, share: float) -> str:
    cut = int(len(text) * share)
    if cut <= 0:
        return ""
    if _is_cjk(text[cut - 1]):
        return text[:cut]
    space = text.rfind(" ", 0, cut + 1)
    return text[:space].rstrip() if space > 0 else ""


def _join(parts: list[str]) -> str:
    out = ""
    for part in parts:
        if out and not (_is_cjk(out[-1]) and _is_cjk(part[0])):
            out += " "
        out += part
    return out
