"""Loaders, content sniffing, refusals and the public ingest API, on real files.

Every file is written by the test itself: PDFs by a tiny hand-written PDF
builder (no PDF writer is a dependency), DOCX through python-docx.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import docx
import pytest

from rag.errors import DocumentLoadError
from rag.ingest import discover, document_id, load_document
from rag.ingest.loaders import load_bytes, looks_like_html, meaningful_title
from rag.types import Document

MAX = 1_000_000


# ----------------------------------------------------------------------------
# File builders
# ----------------------------------------------------------------------------


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def make_pdf(pages: list[list[str]], *, title: str | None = None) -> bytes:
    """A minimal valid PDF: one Helvetica text line per list item, one page per list."""
    count = len(pages)
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: (
            "<< /Type /Pages /Kids ["
            + " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
            + f"] /Count {count} >>"
        ).encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for i, lines in enumerate(pages):
        shows = " ".join(f"{_pdf_string(line)} Tj T*" for line in lines)
        stream = f"BT /F1 11 Tf 14 TL 72 760 Td {shows} ET".encode("latin-1")
        objects[4 + 2 * i] = (
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>"
        ).encode()
        objects[5 + 2 * i] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
    info = None
    if title is not None:
        info = 4 + 2 * count
        objects[info] = f"<< /Title {_pdf_string(title)} >>".encode("latin-1")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        out += b"%010d 00000 n \n" % offsets[number]
    trailer = f"<< /Size {size} /Root 1 0 R" + (f" /Info {info} 0 R" if info else "") + " >>"
    out += b"trailer\n%s\nstartxref\n%d\n%%%%EOF\n" % (trailer.encode(), xref)
    return bytes(out)


def make_docx(*, title: str | None = "Annual safeguarding review") -> bytes:
    document = docx.Document()
    if title is not None:
        document.core_properties.title = title
    document.add_heading("Safeguarding review", level=1)
    document.add_paragraph("The board met twice this year.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Meeting"
    table.cell(0, 1).text = "Date"
    table.cell(1, 0).text = "Spring"
    table.cell(1, 1).text = "3 March 2015"
    document.add_paragraph("First action", style="List Bullet")
    document.add_paragraph("Second action", style="List Bullet")
    document.add_paragraph("The review closes here.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


HTML_PAGE = """<!DOCTYPE html>
<html><head><title>Council news | Example Gazette</title>
<style>p { color: red; }</style>
<script>var tracking = "do not index";</script></head>
<body>
<header><a href="/">Example Gazette home</a></header>
<nav><ul><li>Sport</li><li>Weather</li></ul></nav>
<article>
  <header><h1>Councils told to review services</h1></header>
  <p>Councils have been ordered to <b>review</b>
     the way they protect children.</p>
  <p>Line one<br>Line two</p>
  <ul><li>first point</li><li>second point</li></ul>
  <ol><li>step one</li><li>step two</li></ol>
  <table><tr><th>Council</th><th>Score</th></tr><tr><td>York</td><td>3</td></tr></table>
  <div hidden>Hidden teaser</div>
  <noscript>Enable JavaScript</noscript>
</article>
<aside>Most read stories</aside>
<footer>Copyright Example Gazette</footer>
</body></html>
"""

MARKDOWN = """---
title: "Inspection summary"
date: 2015-01-02
---

# Findings of the inspection

The inspectors found **serious** weaknesses in *management* oversight
and in [risk assessment](https://example.org/risk) practice.

## Actions

- Appoint a director
* Review `case files`
1. Report back by March

```
code block stays
```

![Chart of referrals](chart.png)
"""


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def load(tmp_path: Path, name: str, data: bytes | str, *, max_bytes: int = MAX) -> Document:
    return load_document(write(tmp_path, name, data), tmp_path, max_bytes=max_bytes)


def refusal(tmp_path: Path, name: str, data: bytes | str, **kwargs: int) -> DocumentLoadError:
    with pytest.raises(DocumentLoadError) as info:
        load(tmp_path, name, data, **kwargs)
    assert info.value.path == str(tmp_path / name)
    assert str(tmp_path / name) in str(info.value)
    return info.value


# ----------------------------------------------------------------------------
# Formats
# ----------------------------------------------------------------------------


def test_txt_keeps_text_and_normalises_newlines(tmp_path: Path) -> None:
    doc = load(tmp_path, "note.txt", b"First line\r\nSecond line\rThird line\n")
    assert doc.format == "txt"
    assert doc.text == "First line\nSecond line\nThird line"
    assert doc.page_starts == []


def test_txt_decodes_utf8_with_bom_and_cp1252(tmp_path: Path) -> None:
    assert load(tmp_path, "bom.txt", "\ufeffCafé “quoted”".encode()).text == "Café “quoted”"
    legacy = load(tmp_path, "legacy.txt", b"Caf\xe9 \x93quoted\x94 \x80 5")
    assert legacy.text == "Café “quoted” € 5"


def test_pdf_pages_and_page_starts(tmp_path: Path) -> None:
    data = make_pdf(
        [
            ["Report on the scheme", "The council agreed the plan.", "Page 1 of 2"],
            ["Second page text (with brackets).", "2"],
        ],
        title="Scheme report",
    )
    doc = load(tmp_path, "report.pdf", data)
    assert doc.format == "pdf"
    assert doc.metadata.title == "Scheme report"
    assert doc.pages == 2
    assert doc.text == (
        "Report on the scheme\nThe council agreed the plan.\n\nSecond page text (with brackets)."
    )
    second = doc.text.index("Second page")
    assert doc.page_starts == [0, second]
    assert doc.page_at(0) == 1
    assert doc.page_at(second - 1) == 1
    assert doc.page_at(second) == 2
    assert doc.page_at(len(doc.text) - 1) == 2


def test_pdf_title_ignored_when_it_is_a_file_name(tmp_path: Path) -> None:
    data = make_pdf([["Plan for the year ahead"]], title="Microsoft Word - plan.docx")
    assert load(tmp_path, "plan.pdf", data).metadata.title == "Plan for the year ahead"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Annual report", "Annual report"),
        ("  Annual\n report ", "Annual report"),
        ("Microsoft Word - Letter to leaders", "Letter to leaders"),
        ("letter.docx", None),
        ("Untitled", None),
        ("", None),
        ("12", None),
        (None, None),
    ],
)
def test_meaningful_title(raw: str | None, expected: str | None) -> None:
    assert meaningful_title(raw) == expected


def test_docx_paragraphs_tables_and_lists_in_body_order(tmp_path: Path) -> None:
    doc = load(tmp_path, "review.docx", make_docx())
    assert doc.format == "docx"
    assert doc.metadata.title == "Annual safeguarding review"
    assert doc.text == (
        "Safeguarding review\n\n"
        "The board met twice this year.\n\n"
        "Meeting | Date\nSpring | 3 March 2015\n\n"
        "- First action\n- Second action\n\n"
        "The review closes here."
    )


def test_html_drops_furniture_and_keeps_blocks(tmp_path: Path) -> None:
    doc = load(tmp_path, "page.html", HTML_PAGE)
    assert doc.format == "html"
    assert doc.metadata.title == "Council news | Example Gazette"
    assert doc.text == (
        "Councils told to review services\n\n"
        "Councils have been ordered to review the way they protect children.\n\n"
        "Line one\nLine two\n\n"
        "- first point\n- second point\n\n"
        "1. step one\n2. step two\n\n"
        "Council | Score\nYork | 3"
    )


def test_html_title_falls_back_to_first_h1(tmp_path: Path) -> None:
    page = "<html><body><h1>Main heading</h1><p>Body text.</p></body></html>"
    assert load(tmp_path, "page.htm", page).metadata.title == "Main heading"


def test_markdown_strips_markup_and_keeps_words(tmp_path: Path) -> None:
    doc = load(tmp_path, "summary.md", MARKDOWN)
    assert doc.format == "md"
    assert doc.metadata.title == "Inspection summary"
    assert doc.text == (
        "Findings of the inspection\n\n"
        "The inspectors found serious weaknesses in management oversight "
        "and in risk assessment practice.\n\n"
        "Actions\n\n"
        "- Appoint a director\n- Review case files\n1. Report back by March\n\n"
        "code block stays\n\n"
        "Chart of referrals"
    )


def test_markdown_title_from_first_heading(tmp_path: Path) -> None:
    doc = load(tmp_path, "notes.markdown", "Intro line\n\nMain Title\n==========\n\nText.\n")
    assert doc.metadata.title == "Main Title"
    assert doc.text == "Intro line\n\nMain Title\n\nText."


# ----------------------------------------------------------------------------
# Sniffing by content
# ----------------------------------------------------------------------------


def test_pdf_named_txt_is_read_as_pdf(tmp_path: Path) -> None:
    doc = load(tmp_path, "disguised.txt", make_pdf([["Hidden PDF content"]]))
    assert doc.format == "pdf"
    assert doc.text == "Hidden PDF content"


def test_html_named_txt_is_read_as_html(tmp_path: Path) -> None:
    doc = load(tmp_path, "saved-page.txt", HTML_PAGE)
    assert doc.format == "html"
    assert "tracking" not in doc.text


def test_docx_without_extension_is_read_as_docx(tmp_path: Path) -> None:
    assert load(tmp_path, "download", make_docx()).format == "docx"


def test_markdown_extension_is_only_a_hint_for_text(tmp_path: Path) -> None:
    assert load(tmp_path, "plain.txt", "# Not a heading in plain text\n").text == (
        "# Not a heading in plain text"
    )
    assert load(tmp_path, "page.md", HTML_PAGE).format == "html"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<!doctype html><p>x</p>", True),
        ("  <html lang='en'><body>x</body></html>", True),
        ("<div><p>a</p><p>b</p><span>c</span><a href='#'>d</a><br><br><p>e</p></div>", True),
        ("A note with one <br> tag and a <b>bold</b> word.", False),
        ("Plain text about 3 < 4 and 5 > 2.", False),
    ],
)
def test_looks_like_html(text: str, expected: bool) -> None:
    assert looks_like_html(text) is expected


# ----------------------------------------------------------------------------
# Refusals
# ----------------------------------------------------------------------------


def test_binary_file_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01")
    assert error.reason == "binary file"


def test_control_characters_are_refused_as_binary(tmp_path: Path) -> None:
    assert refusal(tmp_path, "noise.txt", bytes(range(1, 9)) * 20).reason == "binary file"


def test_zip_that_is_not_a_word_file_is_binary(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", "a,b\n")
    assert refusal(tmp_path, "archive.zip", buffer.getvalue()).reason == "binary file"


@pytest.mark.parametrize("content", [b"", b"  \n\t\n"])
def test_empty_file_is_refused(tmp_path: Path, content: bytes) -> None:
    assert refusal(tmp_path, "empty.txt", content).reason == "empty file"


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "big.txt", "x" * 101, max_bytes=100)
    assert error.reason == "file too large: 101 bytes > max 100"


def test_corrupt_pdf_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "broken.pdf", b"%PDF-1.7\nthis is not really a pdf\n")
    assert error.reason.startswith("invalid PDF")


def test_pdf_without_text_layer_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "scan.pdf", make_pdf([[]]))
    assert "no extractable text" in error.reason
    assert "scanned" in error.reason


def test_corrupt_docx_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document><unclosed>")
    error = refusal(tmp_path, "broken.docx", buffer.getvalue())
    assert error.reason.startswith("invalid DOCX file")


def test_truncated_docx_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "cut.docx", make_docx()[:200])
    assert error.reason.startswith("invalid DOCX file")


def test_file_with_only_furniture_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "ads.txt", "Hide Ad\nHide Ad\n")
    assert "no text left" in error.reason


def test_html_without_visible_text_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "blank.html", "<html><body><script>x()</script></body></html>")
    assert error.reason == "no text in HTML file (empty after extraction)"


def test_directory_is_not_loadable(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(DocumentLoadError):
        load_document(tmp_path / "folder", tmp_path, max_bytes=MAX)


def test_load_bytes_names_the_source() -> None:
    with pytest.raises(DocumentLoadError, match=r"^upload\.bin: binary file$"):
        load_bytes(b"\x00\x01", source="upload.bin")


# ----------------------------------------------------------------------------
# Public API: discover, document_id, load_document
# ----------------------------------------------------------------------------


def test_discover_recurses_sorts_and_skips_hidden_and_temporary(tmp_path: Path) -> None:
    for name in [
        "b.txt",
        "a.md",
        "sub/dir/report.pdf",
        "sub/notes.txt",
        ".hidden.txt",
        ".git/config",
        "sub/.cache/x.txt",
        "~$letter.docx",
        "draft.txt~",
        "#autosave#",
        "edit.swp",
        "download.part",
        "Thumbs.db",
    ]:
        write(tmp_path, name, "x")
    found = [path.relative_to(tmp_path).as_posix() for path in discover(tmp_path)]
    assert found == ["a.md", "b.txt", "sub/dir/report.pdf", "sub/notes.txt"]


def test_discover_skips_symlinks(tmp_path: Path) -> None:
    write(tmp_path, "real.txt", "x")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    assert [p.name for p in discover(tmp_path)] == ["real.txt"]


def test_discover_missing_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DocumentLoadError, match="no such directory"):
        discover(tmp_path / "missing")


def test_document_id_is_relative_posix_without_extension(tmp_path: Path) -> None:
    assert document_id(tmp_path / "timpson-2014-08-28.txt", tmp_path) == "timpson-2014-08-28"
    assert document_id(tmp_path / "sub" / "dir" / "report.pdf", tmp_path) == "sub/dir/report"
    assert document_id(tmp_path / "notes.v2.md", tmp_path) == "notes.v2"
    assert document_id(tmp_path / "README", tmp_path) == "README"


def test_load_document_fills_every_field(tmp_path: Path) -> None:
    raw = b"Dear Jo,\n\nThe plan is agreed.\n\nYours sincerely\n\nSam Smith\n"
    doc = load(tmp_path, "letters/2015-03-02-plan.txt", raw)
    assert doc.id == "letters/2015-03-02-plan"
    assert doc.source_path == "letters/2015-03-02-plan.txt"
    assert doc.format == "txt"
    assert doc.size == len(raw)
    assert doc.sha256 == hashlib.sha256(raw).hexdigest()
    assert doc.text == "Dear Jo,\n\nThe plan is agreed.\n\nYours sincerely\n\nSam Smith"
    assert doc.metadata.date == "2015-03-02"
    assert doc.metadata.authors == ["Sam Smith"]
    assert doc.metadata.recipients == ["Jo"]


def test_load_document_rejects_non_positive_limit(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        load(tmp_path, "a.txt", "x", max_bytes=0)
