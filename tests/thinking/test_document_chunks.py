"""Markdown, text and PDF become passages of the right size, cut at headings, paragraphs and sentences."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinking.document_chunks import (
    Chunk,
    ChunkingParams,
    DocumentError,
    find_documents,
    markdown_chunks,
    read_chunks,
    split_sentences,
    text_chunks,
    weighted_length,
)

PARAMS = ChunkingParams()
ENGLISH_SENTENCES = [f"Sentence number {i} says that the ferry to island {i} leaves from pier {i % 7}."
                     for i in range(40)]
CHINESE_SENTENCES = [f"第{i}号展厅介绍港口城市的历史和航海工具，参观时间大约需要二十分钟。" for i in range(30)]


def _pdf(pages: list[list[str]], *, title: str = "") -> bytes:
    """A minimal valid PDF: one Helvetica text line per string, xref offsets computed."""
    n = len(pages)
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(n))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % n,
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, lines in enumerate(pages):
        shown = b" ".join(b"(%s) Tj T*" % line.encode("latin-1") for line in lines)
        content = b"BT /F1 11 Tf 72 720 Td 14 TL " + shown + b" ET"
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i))
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    if title:
        objects.append(b"<< /Title (%s) >>" % title.encode("latin-1"))
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info = b" /Info %d 0 R" % len(objects) if title else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return out


def _assert_sizes(chunks: list[Chunk], params: ChunkingParams = PARAMS) -> None:
    for chunk in chunks:
        assert weighted_length(chunk.text) <= params.max_chars, chunk.text


@pytest.mark.parametrize(("paragraph", "expected"), [
    ("Open at 9.30 am. Closed on Mondays! Why? Ask.", ["Open at 9.30 am. ", "Closed on Mondays! ", "Why? ", "Ask."]),
    ("开馆时间是九点。周一闭馆！为什么？请咨询", ["开馆时间是九点。", "周一闭馆！", "为什么？", "请咨询"]),
    ("他说：“明天见。”然后走了。", ["他说：“明天见。”", "然后走了。"]),
    ("Prices:\n- adults 14 euros\n- children free", ["Prices:\n", "- adults 14 euros\n", "- children free"]),
    ("A line that wraps\nin the middle of a sentence.", ["A line that wraps\nin the middle of a sentence."]),
])
def test_sentences_split_and_rejoin_exactly(paragraph: str, expected: list[str]) -> None:
    assert split_sentences(paragraph) == expected
    assert "".join(split_sentences(paragraph)) == paragraph


def test_cjk_weighs_three_latin_characters() -> None:
    assert weighted_length("abc") == 3
    assert weighted_length("图书馆") == 9
    assert weighted_length("Wi-Fi 密码") == 6 + 2 * 3


def test_markdown_sections_become_chunks_with_heading_locators() -> None:
    text = (
        "---\ntitle: ignored front matter\n---\n"
        "# Harbour Museum\n\nWelcome to the museum.\n\n"
        "## Opening hours\n\nOpen Tuesday to Sunday,\n9:30 am to 5:30 pm.\n\n"
        "## Wi-Fi\n\n```\n# not a heading\n\nnetwork: HarbourGuest\n```\n\n"
        "Tickets\n-------\n\nAdults pay 14 euros.\n\n"
        "### Discounts\n\nStudents pay 9 euros.\n"
    )
    chunks = markdown_chunks(text, source="handbook.md", title="handbook")
    assert [(c.locator, c.context) for c in chunks] == [
        ("§Harbour Museum", "Harbour Museum"),
        ("§Opening hours", "Harbour Museum › Opening hours"),
        ("§Wi-Fi", "Harbour Museum › Wi-Fi"),
        ("§Tickets", "Harbour Museum › Tickets"),
        ("§Discounts", "Harbour Museum › Tickets › Discounts"),
    ]
    assert chunks[1].text == "Open Tuesday to Sunday,\n9:30 am to 5:30 pm."
    assert chunks[2].text == "```\n# not a heading\n\nnetwork: HarbourGuest\n```"
    assert "front matter" not in " ".join(c.text for c in chunks)
    assert chunks[1].embedding_text() == "Harbour Museum › Opening hours\nOpen Tuesday to Sunday,\n9:30 am to 5:30 pm."
    assert all(c.source == "handbook.md" for c in chunks)


def test_markdown_without_h1_takes_its_title_from_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "visitor_guide.md"
    path.write_text("Intro before any heading.\n\n## Parking\n\nNo car park.\n", encoding="utf-8")
    chunks = read_chunks(path)
    assert [(c.locator, c.context) for c in chunks] == [("", "visitor guide"), ("§Parking", "visitor guide › Parking")]


def test_long_english_section_is_cut_at_sentences_with_overlap() -> None:
    body = " ".join(ENGLISH_SENTENCES)
    chunks = markdown_chunks(f"# Ferries\n\n## Timetable\n\n{body}\n", source="f.md")
    assert len(chunks) >= 5
    _assert_sizes(chunks)
    assert all(300 <= weighted_length(c.text) for c in chunks[:-1])
    assert all(c.locator == "§Timetable" for c in chunks)
    for chunk in chunks:  # every chunk starts and ends on a sentence boundary
        assert chunk.text.startswith("Sentence number") and chunk.text.endswith(".")
    for before, after in zip(chunks, chunks[1:]):  # the next chunk repeats the previous one's last sentences
        overlap = split_sentences(before.text)[-2:]
        assert after.text.startswith("".join(overlap).strip())
        assert weighted_length("".join(overlap)) <= PARAMS.overlap_chars + 1
    joined = " ".join(c.text for c in chunks)
    assert all(sentence in joined for sentence in ENGLISH_SENTENCES)


def test_chinese_without_spaces_is_cut_at_chinese_punctuation() -> None:
    chunks = text_chunks("".join(CHINESE_SENTENCES), source="展厅.txt", title="展厅")
    assert len(chunks) >= 4
    _assert_sizes(chunks)
    assert all(len(c.text) < 250 for c in chunks)  # about 200 characters, not 600
    for chunk in chunks:
        assert chunk.text.startswith("第") and chunk.text.endswith("。")
    joined = "".join(c.text for c in chunks)
    assert all(sentence in joined for sentence in CHINESE_SENTENCES)


def test_sentence_longer_than_a_chunk_is_cut_at_a_comma_or_anywhere() -> None:
    no_overlap = ChunkingParams(overlap_chars=0)
    commas = "，".join(["这是一个没有句号的很长的句子"] * 40)
    no_breaks = "长" * 500
    for text in (commas, no_breaks):
        chunks = text_chunks(text, source="x.txt", params=no_overlap)
        _assert_sizes(chunks)
        assert len(chunks) >= 2
        assert "".join(c.text for c in chunks) == text
    assert text_chunks(commas, source="x.txt")[0].text.endswith("，")


def test_text_locators_are_line_numbers() -> None:
    text = "Title\n\nFirst paragraph\nstill first.\n\n\nSecond paragraph.\n"
    chunks = text_chunks(text, source="notes.txt", title="notes", params=ChunkingParams(max_chars=40, overlap_chars=0))
    assert [(c.locator, c.text) for c in chunks] == [
        ("line 1", "Title\n\nFirst paragraph\nstill first."),
        ("line 7", "Second paragraph."),
    ]


def test_gb18030_text_files_are_read(tmp_path: Path) -> None:
    path = tmp_path / "通知.txt"
    path.write_bytes("图书馆周一闭馆。".encode("gb18030"))
    assert read_chunks(path)[0].text == "图书馆周一闭馆。"


def test_pdf_text_is_extracted_per_page(tmp_path: Path) -> None:
    path = tmp_path / "leaflet.pdf"
    path.write_bytes(_pdf([["Opening hours", "The museum opens at 9:30 am", "and closes at 5:30 pm."],
                           ["Tickets", "An adult ticket costs 14 euros."]], title="Harbour Museum leaflet"))
    chunks = read_chunks(path)
    assert [c.locator for c in chunks] == ["p. 1", "p. 2"]
    assert "The museum opens at 9:30 am and closes at 5:30 pm." in chunks[0].text  # layout lines rejoined
    assert "An adult ticket costs 14 euros." in chunks[1].text
    assert chunks[0].context == "Harbour Museum leaflet"


def test_pdf_without_title_uses_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "price-list.pdf"
    path.write_bytes(_pdf([["Adults 14 euros."]]))
    assert read_chunks(path)[0].context == "price list"


@pytest.mark.parametrize(("name", "data", "message"), [
    ("notes.docx", b"PK\x03\x04", "unsupported file type"),
    ("broken.pdf", b"%PDF-1.4\nthis is not a pdf", "not a readable PDF"),
    ("blank.pdf", None, "no text found"),
    ("empty.md", b"\n\n   \n", "no text found"),
    ("latin1.txt", b"caf\xe9 \xff\xfe\xfd", "not UTF-8 or GB18030"),
])
def test_unusable_files_raise_document_error(tmp_path: Path, name: str, data: bytes | None, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(_pdf([[]]) if data is None else data)
    with pytest.raises(DocumentError, match=message):
        read_chunks(path)


def test_missing_file_raises_document_error(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="cannot read"):
        read_chunks(tmp_path / "gone.md")


def test_find_documents_recurses_into_folders(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    for name in ("a/one.md", "a/b/two.TXT", "a/b/three.pdf", "a/skip.docx", ".git/hidden.md", "a/four.markdown"):
        (tmp_path / name).write_text("x")
    explicit = tmp_path / "a" / "skip.docx"
    found = find_documents([tmp_path, explicit])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a/b/three.pdf", "a/b/two.TXT", "a/four.markdown", "a/one.md", "a/skip.docx"]
