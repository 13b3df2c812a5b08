"""Hostile files made in temporary folders: cost limits, encodings, names, vanishing files."""

from __future__ import annotations

import io
import logging
import os
import zipfile
from pathlib import Path

import docx
import pytest

from rag.errors import DocumentLoadError
from rag.ingest import discover, document_id, load_document
from rag.ingest.loaders import decode_text


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def test_a_document_over_the_character_cap_is_skipped_with_the_reason(tmp_path: Path) -> None:
    path = _write(tmp_path, "huge.txt", b"The council met again. " * 500)  # 11,500 chars
    with pytest.raises(DocumentLoadError, match="too much text: 11,500 characters > max 10,000"):
        load_document(path, tmp_path, max_bytes=10**8, max_chars=10_000)
    assert load_document(path, tmp_path, max_bytes=10**8, max_chars=20_000).text


def test_a_huge_text_file_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    path = _write(tmp_path, "huge.txt", b"The council met again. " * 200_000)  # 4.6 MB
    with pytest.raises(DocumentLoadError, match="too much text: at least 1,150,000 characters"):
        load_document(path, tmp_path, max_bytes=10**8, max_chars=1_000_000)
    html = _write(tmp_path, "page.html", b"<html><body>" + b"<p>Minutes.</p>" * 1000)
    with pytest.raises(DocumentLoadError, match="too much text: 15,012 characters"):
        load_document(html, tmp_path, max_bytes=10**8, max_chars=10_000)  # before parsing


def test_pdf_extraction_stops_at_the_character_cap(tmp_path: Path) -> None:
    from test_loaders import make_pdf  # the loader tests' PDF writer

    pages = [[f"Page {n}: the council agreed the plan and the budget."] * 5 for n in range(40)]
    path = _write(tmp_path, "long.pdf", make_pdf(pages))
    with pytest.raises(DocumentLoadError, match=r"too much text: at least [\d,]+ characters"):
        load_document(path, tmp_path, max_bytes=10**8, max_chars=1_000)
    assert load_document(path, tmp_path, max_bytes=10**8, max_chars=100_000).pages == 40


def _zip_bomb(expanded: int) -> bytes:
    """A zip holding word/document.xml of ``expanded`` bytes of one repeated run."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:t>" + "a" * expanded + "</w:t>")
    return buffer.getvalue()


def test_a_docx_that_expands_too_much_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    bomb = _zip_bomb(20_000_000)
    assert len(bomb) < 100_000
    path = _write(tmp_path, "bomb.docx", bomb)
    with pytest.raises(DocumentLoadError, match=r"zip expands [\d,]+ times .*RAG_MAX_ZIP_RATIO"):
        load_document(path, tmp_path, max_bytes=10**8, max_zip_ratio=100)


def test_an_ordinary_docx_passes_the_ratio_cap(tmp_path: Path) -> None:
    document = docx.Document()
    for n in range(40):
        document.add_paragraph(f"Paragraph {n}: the council agreed the plan on {n} March.")
    buffer = io.BytesIO()
    document.save(buffer)
    path = _write(tmp_path, "letter.docx", buffer.getvalue())
    doc = load_document(path, tmp_path, max_bytes=10**8, max_chars=10**6, max_zip_ratio=100)
    assert "Paragraph 39" in doc.text


def test_utf8_with_a_stray_latin1_byte_keeps_its_utf8_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = "Café in Zürich, ".encode() + b"na\xefve"
    with caplog.at_level(logging.WARNING, logger="rag.ingest.loaders"):
        text = decode_text(data, source="corpus/mixed.txt")
    assert text == "Café in Zürich, naïve"
    assert "Ã" not in text
    [record] = caplog.records
    assert "corpus/mixed.txt" in record.getMessage()
    assert "mixed encoding" in record.getMessage() and "1 byte" in record.getMessage()


def test_legacy_text_is_decoded_as_cp1252_with_a_named_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="rag.ingest.loaders"):
        text = decode_text(b"Caf\xe9 \x93quoted\x94 \x80 5", source="corpus/legacy.txt")
    assert text == "Café “quoted” € 5"
    [record] = caplog.records
    assert "corpus/legacy.txt: not UTF-8: decoded as cp1252" in record.getMessage()


def test_clean_utf8_decodes_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rag.ingest.loaders"):
        assert decode_text("Café “quoted”".encode(), source="x") == "Café “quoted”"
    assert caplog.records == []


def test_control_characters_in_a_file_name_become_a_safe_id(tmp_path: Path) -> None:
    path = _write(tmp_path, "letter\nof\tMay\x7f.txt", b"Dear Sir, the plan was agreed.")
    assert discover(tmp_path) == [path]
    doc = load_document(path, tmp_path, max_bytes=10**6)
    assert doc.id == "letter_of_May_"
    assert document_id(Path(tmp_path, "sub\r", "a\x00b.txt"), tmp_path) == "sub_/a_b"
    undecodable = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt")))
    assert document_id(undecodable, tmp_path) == "caf_"


@pytest.mark.slow
def test_vanished_broken_and_misnamed_files_are_skipped_not_fatal(
    builder, corpus_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import rag.store.builder as builder_module

    (corpus_copy / "crashes.txt").write_text("This one makes the loader fail.")
    with open(os.path.join(os.fsencode(corpus_copy), b"caf\xe9.txt"), "wb") as handle:
        handle.write(b"A file whose name is not UTF-8.")
    real_discover, real_load = builder_module.discover, builder_module.load_document

    def discover_then_delete(root: Path) -> list[Path]:
        found = real_discover(root)
        (corpus_copy / "vanishes.txt").unlink()  # deleted between discovery and hashing
        return found

    def load_or_crash(path: Path, *args: object, **kwargs: object) -> object:
        if path.name == "crashes.txt":
            raise RuntimeError("parser state corrupted")
        return real_load(path, *args, **kwargs)  # type: ignore[arg-type]

    (corpus_copy / "vanishes.txt").write_text("Here now, gone soon.")
    monkeypatch.setattr(builder_module, "discover", discover_then_delete)
    monkeypatch.setattr(builder_module, "load_document", load_or_crash)
    report = builder.build(corpus_copy, tmp_path / "idx")
    reasons = dict(report.skipped)
    assert report.documents == 5
    assert reasons["vanishes.txt"].startswith("cannot read file (removed during the build?)")
    assert reasons["crashes.txt"] == "failed to load: RuntimeError: parser state corrupted"
    assert reasons["caf\\udce9.txt"] == "file name is not valid UTF-8: rename the file"
    monkeypatch.undo()
    again = builder.build(corpus_copy, tmp_path / "idx")  # the manifest was written whole
    assert not again.up_to_date and again.new == ["crashes"]  # a crash is tried again
    assert dict(again.skipped) == {"caf\\udce9.txt": reasons["caf\\udce9.txt"]}
    assert builder.build(corpus_copy, tmp_path / "idx").up_to_date
