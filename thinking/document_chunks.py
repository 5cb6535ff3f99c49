"""Documents to passages: Markdown, plain text and PDF cut into retrieval-sized chunks.

A passage should answer one question and fit comfortably in the LLM's prompt, so
chunks are about 300-600 characters, cut at the strongest boundary available:
a heading (or PDF page) first, then a paragraph, then a sentence (``.!?`` and
Chinese ``。！？；``, which need no space after them), and only as a last resort
inside a sentence. Consecutive chunks of one section share a sentence or two
(``overlap_chars``) so a fact that straddles a cut is whole in at least one.

Lengths are *weighted*: a CJK character counts ``CJK_CHAR_WEIGHT`` times, because
one Chinese character carries about as much meaning as three Latin letters; a
Chinese chunk is then ~200 characters, as informative as an English one of 600.

Everything here is a pure function of the bytes it is given; only
``find_documents`` and ``read_chunks`` touch the filesystem.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".pdf"})
CJK_CHAR_WEIGHT = 3
CONTEXT_SEPARATOR = " › "


class DocumentError(Exception):
    """A file that cannot become passages: unsupported type, unreadable, or without any text."""


@dataclass(frozen=True, slots=True)
class ChunkingParams:
    max_chars: int = 600
    """Weighted length a chunk stays under; a longer sentence is cut to fit."""
    overlap_chars: int = 150
    """Whole trailing sentences, up to this weighted length, repeated at the start of the next chunk."""


@dataclass(frozen=True, slots=True)
class Chunk:
    source: str
    locator: str
    """Where in the source: ``§Heading`` (Markdown), ``p. 3`` (PDF), ``line 12`` (text); empty before any heading."""
    text: str
    context: str = ""
    """Document title and the headings above the text: embedded with it, so "the museum's wifi" finds a
    section titled only "Wi-Fi", but not repeated to the reader."""

    def embedding_text(self) -> str:
        return f"{self.context}\n{self.text}" if self.context else self.text


@dataclass(frozen=True, slots=True)
class _Unit:
    """A sentence (or a piece of an over-long one), sliced from the source with its trailing whitespace."""

    text: str
    new_paragraph: bool
    line: int
    weight: int


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]")
_SENTENCE_END = re.compile(
    r"[.!?…]+[\"'”’)\]]*\s+"  # Latin: punctuation then whitespace ("9.30" stays whole)
    r"|[。！？；…]+[”’」』）)]*\s*"  # CJK: no space follows
    r"|\n+(?=[ \t]*(?:[-*+•]\s|\d+[.)]\s|\|))"  # before a list item or table row (other newlines are wrapping)
)
_SOFT_BREAK = re.compile(r"[\s，、,：:]")
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def weighted_length(text: str) -> int:
    return len(text) + (CJK_CHAR_WEIGHT - 1) * len(_CJK.findall(text))


def split_sentences(paragraph: str) -> list[str]:
    """Slices of ``paragraph`` that concatenate back to it exactly."""
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(paragraph):
        if match.end() > start:
            pieces.append(paragraph[start : match.end()])
            start = match.end()
    if start < len(paragraph):
        pieces.append(paragraph[start:])
    return pieces


def find_documents(paths: Iterable[Path]) -> list[Path]:
    """Files as given, and supported files found recursively in directories (hidden ones skipped)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            found.append(path)
    return found


def read_chunks(path: Path, *, data: bytes | None = None, params: ChunkingParams = ChunkingParams()) -> list[Chunk]:
    """Chunks of one file (``data``: its bytes, when the caller has already read them)."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"{path}: unsupported file type (supported: {', '.join(sorted(SUPPORTED_SUFFIXES))})")
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DocumentError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    title = _title_from_name(path)
    if suffix == ".pdf":
        chunks = pdf_chunks(data, source=str(path), title=title, params=params)
    elif suffix == ".txt":
        chunks = text_chunks(decode_text(data, source=str(path)), source=str(path), title=title, params=params)
    else:
        chunks = markdown_chunks(decode_text(data, source=str(path)), source=str(path), title=title, params=params)
    if not chunks:
        raise DocumentError(f"{path}: no text found" + (" (a scanned PDF needs OCR first)" if suffix == ".pdf" else ""))
    return chunks


def decode_text(data: bytes, *, source: str) -> str:
    # UTF-8 first; GB18030 (a superset of GBK/GB2312) is what Chinese Windows tools save by default.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DocumentError(f"{source}: not UTF-8 or GB18030 text")


def markdown_chunks(text: str, *, source: str, title: str = "",
                    params: ChunkingParams = ChunkingParams()) -> list[Chunk]:
    """One group of chunks per heading's section; the locator is the innermost heading."""
    lines = _without_front_matter(text.splitlines())
    h1 = next((m.group(2) for line in lines if (m := _ATX_HEADING.match(line)) and len(m.group(1)) == 1), "")
    title = h1 or title
    chunks: list[Chunk] = []
    headings: list[tuple[int, str]] = []
    paragraphs: list[tuple[int, str]] = []
    buffer: list[str] = []
    buffer_line = 0
    in_fence = False

    def flush_paragraph() -> None:
        nonlocal buffer
        if any(line.strip() for line in buffer):
            paragraphs.append((buffer_line, "\n".join(buffer).strip("\n")))
        buffer = []

    def flush_section() -> None:
        flush_paragraph()
        locator = f"§{headings[-1][1]}" if headings else ""
        context = CONTEXT_SEPARATOR.join(_dedupe([title, *(h for _, h in headings)]))
        chunks.extend(_chunks_of(paragraphs, source=source, locator=lambda _: locator, context=context, params=params))
        paragraphs.clear()

    for number, line in enumerate(lines, start=1):
        fence = _FENCE.match(line)
        if fence or in_fence:  # code is kept verbatim, blank lines and all
            in_fence = in_fence != bool(fence)
            if not buffer:
                buffer_line = number
            buffer.append(line)
            continue
        atx = _ATX_HEADING.match(line)
        setext = _SETEXT_UNDERLINE.match(line)
        if atx or (setext and len(buffer) == 1):
            level = len(atx.group(1)) if atx else (1 if setext.group(1)[0] == "=" else 2)
            heading = atx.group(2).strip() if atx else buffer.pop().strip()
            flush_section()
            headings[:] = [h for h in headings if h[0] < level] + [(level, heading)]
        elif not line.strip() or setext:  # a blank line, or a thematic break (---)
            flush_paragraph()
        else:
            if not buffer:
                buffer_line = number
            buffer.append(line)
    flush_section()
    return chunks


def text_chunks(text: str, *, source: str, title: str = "", params: ChunkingParams = ChunkingParams()) -> list[Chunk]:
    """Paragraphs are separated by blank lines; the locator is the line a chunk starts on."""
    paragraphs: list[tuple[int, str]] = []
    start, buffer = 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            start = start if buffer else number
            buffer.append(line)
        elif buffer:
            paragraphs.append((start, "\n".join(buffer)))
            buffer = []
    if buffer:
        paragraphs.append((start, "\n".join(buffer)))
    return _chunks_of(paragraphs, source=source, locator=lambda line: f"line {line}", context=title, params=params)


def pdf_chunks(data: bytes, *, source: str, title: str = "", params: ChunkingParams = ChunkingParams()) -> list[Chunk]:
    """One group of chunks per page (locator ``p. N``), with the layout's line breaks joined back into prose."""
    try:
        from pypdf import PdfReader
    except ImportError as exc:
        raise DocumentError(f"{source}: reading PDFs needs pypdf (pip install pypdf)") from exc
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(f"{source}: the PDF is password-protected")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except DocumentError:
        raise
    except Exception as exc:  # a damaged PDF surfaces as any of a dozen exception types from deep in pypdf
        raise DocumentError(f"{source}: not a readable PDF: {exc}") from exc
    context = meta_title.strip() or title
    chunks: list[Chunk] = []
    for number, page_text in enumerate(pages, start=1):
        paragraphs = [(number, _join_layout_lines(p)) for p in re.split(r"\n\s*\n", page_text) if p.strip()]
        chunks.extend(_chunks_of(paragraphs, source=source, locator=lambda _, n=number: f"p. {n}", context=context,
                                 params=params))
    return chunks


def _chunks_of(paragraphs: list[tuple[int, str]], *, source: str, locator, context: str,
               params: ChunkingParams) -> list[Chunk]:
    units = list(_units(paragraphs, params.max_chars))
    return [
        Chunk(source=source, locator=locator(group[0].line), text=text, context=context)
        for group in _pack(units, params)
        if (text := _join(group))
    ]


def _units(paragraphs: list[tuple[int, str]], max_chars: int) -> Iterator[_Unit]:
    for first_line, paragraph in paragraphs:
        line, first = first_line, True
        for sentence in split_sentences(paragraph):
            for piece in _hard_split(sentence, max_chars):
                yield _Unit(text=piece, new_paragraph=first, line=line, weight=weighted_length(piece.strip()))
                first = False
            line += sentence.count("\n")


def _hard_split(sentence: str, max_chars: int) -> list[str]:
    """A sentence longer than a whole chunk is cut at a space or comma near the limit (or anywhere, for CJK)."""
    pieces: list[str] = []
    while weighted_length(sentence) > max_chars:
        cut, weight = 0, 0
        while cut < len(sentence) and weight + weighted_length(sentence[cut]) <= max_chars:
            weight += weighted_length(sentence[cut])
            cut += 1
        soft = [m.end() for m in _SOFT_BREAK.finditer(sentence, 0, cut)]
        if soft and soft[-1] > cut // 2:
            cut = soft[-1]
        pieces.append(sentence[:cut])
        sentence = sentence[cut:]
    return [*pieces, sentence] if sentence else pieces


def _pack(units: list[_Unit], params: ChunkingParams) -> list[list[_Unit]]:
    """Greedy packing aimed at equal chunks: 700 characters become two of ~400, not 600 + 200.

    ``fresh`` counts what a chunk adds beyond the overlap it repeats, so the overlap does
    not leave a sliver at the end.
    """
    total = sum(u.weight for u in units)
    if total <= params.max_chars:
        return [units] if units else []
    overlap = min(params.overlap_chars, params.max_chars // 2)
    target = total / math.ceil((total - overlap) / (params.max_chars - overlap))
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    weight = fresh = 0
    for unit in units:
        if current and (fresh >= target or weight + unit.weight > params.max_chars):
            groups.append(current)
            current = _overlap(current, overlap)
            weight, fresh = sum(u.weight for u in current), 0
            if weight + unit.weight > params.max_chars:
                current, weight = [], 0
        current.append(unit)
        weight += unit.weight
        fresh += unit.weight
    if current:
        groups.append(current)
    return groups


def _overlap(group: list[_Unit], overlap_chars: int) -> list[_Unit]:
    """The group's trailing whole sentences that fit in ``overlap_chars`` (never the whole group)."""
    tail: list[_Unit] = []
    weight = 0
    for unit in reversed(group[1:]):
        if weight + unit.weight > overlap_chars:
            break
        tail.insert(0, unit)
        weight += unit.weight
    return tail


def _join(group: list[_Unit]) -> str:
    text = ""
    for unit in group:
        if text and unit.new_paragraph:
            text = text.rstrip() + "\n\n"
        text += unit.text
    return text.strip()


def _join_layout_lines(paragraph: str) -> str:
    """PDF text comes as layout lines: rejoin them with a space, or with nothing between CJK characters."""
    lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
    text = lines[0] if lines else ""
    for line in lines[1:]:
        text += ("" if _CJK.match(text[-1]) or _CJK.match(line[0]) else " ") + line
    return text


def _without_front_matter(lines: list[str]) -> list[str]:
    """YAML front matter (``---`` ... ``---`` at the top) is metadata, not text; blank lines keep numbering."""
    if lines and lines[0].strip() == "---":
        for end in range(1, len(lines)):
            if lines[end].strip() in ("---", "..."):
                return [""] * (end + 1) + lines[end + 1 :]
    return lines


def _title_from_name(path: Path) -> str:
    return re.sub(r"[_\-]+", " ", path.stem).strip()


def _dedupe(items: list[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item and item not in out:
            out.append(item)
    return out
