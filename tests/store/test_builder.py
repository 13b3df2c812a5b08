"""Index building: offsets, manifest, incremental updates, atomic swap, verification."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.errors import IndexCorruptError, IndexIncompatibleError, IndexNotFoundError
from rag.store import Index, IndexBuilder
from rag.store.builder import BuildLockedError, _lock
from rag.store.files import sha256_file
from rag.store.layout import MANIFEST, resolve_index_dir
from rag.synthetic import write_synthetic_corpus

pytestmark = pytest.mark.slow


def test_every_chunk_is_exactly_its_document_span(index_dir: Path, builder: IndexBuilder) -> None:
    index = Index.load(index_dir)
    assert len(index.documents) == 5
    assert index.chunks
    limit = builder.chunker_settings.chunk_tokens
    for chunk in index.chunks:
        doc = index.documents[chunk.document_id]
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert builder.embedder.count_tokens(chunk.text) <= limit
    assert len({c.id for c in index.chunks}) == len(index.chunks)
    # Consecutive chunks of a document overlap or touch: no text is left out of retrieval.
    for a, b in zip(index.chunks, index.chunks[1:], strict=False):
        if a.document_id == b.document_id:
            gap = index.documents[a.document_id].text[a.end : b.start]
            assert not gap.strip()


def test_manifest_records_what_the_index_was_built_from(index_dir: Path, corpus_dir: Path) -> None:
    manifest = json.loads((resolve_index_dir(index_dir) / MANIFEST).read_text())
    assert manifest["format_version"] == 2
    assert manifest["embedding"] == {
        "model_id": "sentence-transformers/all-MiniLM-L6-v2",
        "dimension": 384,
        "normalized": True,
        "max_tokens": 200,
    }
    assert manifest["chunker"]["chunk_tokens"] == 200
    assert manifest["build_seconds"] > 0
    for path in corpus_dir.glob("*.txt"):
        assert manifest["sources"][path.name]["sha256"] == sha256_file(path)
    for name, entry in manifest["files"].items():
        assert sha256_file(resolve_index_dir(index_dir) / name) == entry["sha256"]
    assert "dense.faiss" in manifest["files"]
    # The chunk vectors are stored once, inside the FAISS index; the letters get exact search.
    assert "vectors.npy" not in manifest["files"]
    assert manifest["dense"] == {
        "kind": "flat",
        "ntotal": manifest["counts"]["chunks"],
        "dimension": 384,
        "nlist": 0,
        "trained_on": 0,
    }
    assert not list(resolve_index_dir(index_dir).rglob("*.pkl"))


def test_second_build_of_unchanged_corpus_embeds_nothing(
    builder: IndexBuilder, corpus_copy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "idx"
    first = builder.build(corpus_copy, out)
    assert first.embedded == first.chunks > 0 and len(first.new) == 5
    second = builder.build(corpus_copy, out)
    assert second.up_to_date
    assert second.embedded == 0
    assert len(second.unchanged) == 5


def test_changed_added_removed_documents_update_only_their_chunks(
    builder: IndexBuilder, corpus_copy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "idx"
    builder.build(corpus_copy, out)
    before = Index.load(out)
    old_texts = {c.text for c in before.chunks}

    news = corpus_copy / "news-2014-councils-review.txt"
    news.write_text(news.read_text() + "\nA new closing paragraph was added for this test.\n")
    (corpus_copy / "timpson-2014-08-28.txt").unlink()
    (corpus_copy / "added-note.md").write_text("# Added note\n\nThe added note says hello.\n")

    report = builder.build(corpus_copy, out)
    assert report.changed == ["news-2014-councils-review"]
    assert report.new == ["added-note"]
    assert report.removed == ["timpson-2014-08-28"]
    assert len(report.unchanged) == 3
    after = Index.load(out)
    fresh = [c for c in after.chunks if c.text not in old_texts]
    assert report.embedded == len(fresh)
    assert 0 < report.embedded < len(after.chunks)
    assert {c.document_id for c in fresh} <= {"news-2014-councils-review", "added-note"}
    assert "timpson-2014-08-28" not in after.documents
    assert after.documents["added-note"].text.startswith("Added note")


def test_unreadable_files_are_skipped_and_counted(
    builder: IndexBuilder, corpus_copy: Path, tmp_path: Path
) -> None:
    (corpus_copy / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (corpus_copy / "empty.txt").write_text("")
    report = builder.build(corpus_copy, tmp_path / "idx")
    reasons = dict(report.skipped)
    assert set(reasons) == {"blob.bin", "empty.txt"}
    assert "binary" in reasons["blob.bin"]
    assert "empty" in reasons["empty.txt"]
    assert report.documents == 5
    assert "skipped 2" in report.summary()


def test_corrupt_index_is_refused_with_a_clear_message(
    builder: IndexBuilder, corpus_copy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "idx"
    builder.build(corpus_copy, out)
    vectors = resolve_index_dir(out) / "dense.faiss"
    data = bytearray(vectors.read_bytes())
    data[-1] ^= 0xFF
    vectors.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=r"dense\.faiss"):
        Index.load(out)
    # A rebuild notices the damage and rebuilds instead of trusting it.
    report = builder.build(corpus_copy, out)
    assert not report.up_to_date and report.full_rebuild_reason
    Index.load(out)


def test_index_of_another_model_or_format_is_refused(index_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(IndexIncompatibleError, match="other-model"):
        Index.load(index_dir, embedding_model="other-model")
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(resolve_index_dir(index_dir), copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["format_version"] = 999
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexIncompatibleError, match="format version"):
        Index.load(copy)


def test_missing_index_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="rag index"):
        Index.load(tmp_path / "nothing")


def test_a_second_concurrent_build_is_refused(tmp_path: Path) -> None:
    with _lock(tmp_path), pytest.raises(BuildLockedError), _lock(tmp_path):
        pass


def test_killed_build_leaves_the_previous_index_intact(
    builder: IndexBuilder, tmp_path: Path, corpus_dir: Path
) -> None:
    corpus = tmp_path / "corpus"
    write_synthetic_corpus(corpus_dir, corpus, 5)
    out = tmp_path / "idx"
    builder.build(corpus, out)
    before = Index.load(out).manifest.corpus_fingerprint

    big = tmp_path / "big"
    write_synthetic_corpus(corpus_dir, big, 150, seed=99)  # enough to take a while
    env = {**os.environ, "RAG_INDEX_DIR": str(out), "RAG_CORPUS_DIR": str(big)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "index"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 180
    seen = ""
    while time.monotonic() < deadline:  # kill once it is working on the new corpus
        line = proc.stderr.readline()
        seen += line
        if "annotate" in line or "Batches" in line or proc.poll() is not None:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "annotate" in seen or "Batches" in seen, seen[-2000:]

    after = Index.load(out)  # the old index, verified, untouched
    assert after.manifest.corpus_fingerprint == before
    assert len(after.documents) == 5
    # The next build cleans up whatever an interrupted build left behind.
    (out / "versions" / "tmp-interrupted").mkdir()
    report = builder.build(corpus, out)
    assert report.up_to_date
    assert len(list((out / "versions").iterdir())) == 1


def test_crash_while_publishing_keeps_the_previous_index(
    builder: IndexBuilder, corpus_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "idx"
    builder.build(corpus_copy, out)
    before = Index.load(out)
    (corpus_copy / "rudd-2016-10-24.txt").unlink()

    def crash(*args: object) -> None:
        raise OSError("simulated crash at the swap")

    monkeypatch.setattr("rag.store.layout.os.replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        builder.build(corpus_copy, out)
    monkeypatch.undo()
    after = Index.load(out)
    assert after.manifest.corpus_fingerprint == before.manifest.corpus_fingerprint
    assert "rudd-2016-10-24" in after.documents
