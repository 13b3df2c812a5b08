"""The record store: documents, chunks and annotations read from SQLite per access."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.filters import Filters
from rag.store import Index
from rag.store.layout import resolve_version
from rag.store.records import DOCUMENT_CACHE, RECORDS, RecordStore, _Cache, read_all, write_records
from rag.types import Annotations, Chunk, Document


def _doc(doc_id: str, text: str, date: str | None = None) -> Document:
    doc = Document(doc_id, text, f"{doc_id}.txt", "text", len(text), "0" * 64)
    doc.metadata.date = date
    return doc


def _chunk(doc: Document, start: int, end: int) -> Chunk:
    return Chunk(f"{doc.id}:{start}", doc.id, start, end, doc.text[start:end])


def test_records_round_trip_and_are_read_on_access(tmp_path: Path) -> None:
    a = _doc("a", "Alpha text here. Second sentence.", "2016-10-24")
    b = _doc("b/é", "Beta: ünïcode text.")
    chunks = [_chunk(a, 0, 16), _chunk(a, 17, 33), _chunk(b, 0, 19)]
    annotations = [Annotations("a"), Annotations("b/é")]
    path = tmp_path / RECORDS
    write_records(path, [a, b], chunks, annotations)

    store = RecordStore(path)
    assert list(store.documents) == ["a", "b/é"] and len(store.documents) == 2
    assert store.documents["b/é"] == b and store.documents.get("c") is None
    assert "a" in store.documents and "c" not in store.documents
    with pytest.raises(KeyError):
        store.documents["c"]
    assert list(store.chunks) == chunks and len(store.chunks) == 3
    assert store.chunks[-1] == chunks[2] and store.chunks[1:] == chunks[1:]
    with pytest.raises(IndexError):
        store.chunks[3]
    entry = store.catalog["a"]
    assert (entry.date, entry.chunk_row0, entry.chunk_count) == ("2016-10-24", 0, 2)
    assert store.catalog["b/é"].chunk_row0 == 2
    assert read_all(path) == ([a, b], chunks, annotations)


def test_chunks_of_a_document_must_be_contiguous(tmp_path: Path) -> None:
    a, b = _doc("a", "Alpha text."), _doc("b", "Beta text.")
    chunks = [_chunk(a, 0, 5), _chunk(b, 0, 4), _chunk(a, 6, 11)]
    with pytest.raises(ValueError, match="not contiguous"):
        write_records(tmp_path / RECORDS, [a, b], chunks, [Annotations("a"), Annotations("b")])


def test_the_cache_is_bounded_and_loads_each_record_once() -> None:
    loads: list[int] = []

    def load(key: int) -> str:
        loads.append(key)
        return str(key)

    cache: _Cache[int, str] = _Cache(load, 2)
    assert [cache.get(k) for k in (1, 2, 1, 3, 1, 2)] == ["1", "2", "1", "3", "1", "2"]
    assert loads == [1, 2, 3, 2]  # 2 was the least recently used when 3 came in


@pytest.mark.slow
def test_the_served_index_reads_the_letters_from_disk(index_dir: Path) -> None:
    index = Index.load(index_dir)
    folder = resolve_version(index_dir)
    documents, chunks, annotations = read_all(folder / RECORDS)
    assert list(index.documents) == [d.id for d in documents]
    assert [index.documents[d.id] for d in documents] == documents
    assert list(index.chunks) == chunks
    assert [index.annotations[a.document_id] for a in annotations] == annotations
    assert len(index.documents) == 5 <= DOCUMENT_CACHE
    for doc in documents:
        expected = [r for r, c in enumerate(chunks) if c.document_id == doc.id]
        assert index.rows_of([doc.id]).tolist() == expected
        assert index.document_catalog.select(Filters.create([doc.id])).tolist() == [
            index.document_catalog.position[doc.id]
        ]
    both = [documents[0].id, documents[2].id]
    assert index.rows_of(both).tolist() == sorted(
        r for r, c in enumerate(chunks) if c.document_id in both
    )
    assert index.rows_of(["no-such-document"]).size == 0
    assert index.rows_of(both + both).tolist() == index.rows_of(both).tolist()
