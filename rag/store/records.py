"""Documents, chunks and annotations in one SQLite file, read per retrieved chunk.

A served index used to hold every document text, chunk and annotation as Python objects:
about 19 KB a chunk, 19 GB at a million chunks. Here they stay on disk in
``records.sqlite`` (the standard library's SQLite, one plain file checksummed by the
manifest like every other) and a question reads only the rows of the chunks it
retrieves, through small caches. What stays in memory is one catalog entry per document
(its id, date and where its chunks and sentences start), which is what filters and
counts need without opening a record.

The rest of the code keeps its interface: ``documents`` and ``annotations`` are read-only
mappings by document id, ``chunks`` a read-only sequence by row.

A version folder never changes once published, so the file is opened read-only and
``immutable`` (no locking); a version retired while it is open stays readable through
the open file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from rag.types import Annotations, Chunk, Document

RECORDS = "records.sqlite"

#: Parsed records kept per index. A question reads about ``RAG_READ_PASSAGES`` (8)
#: chunks and their documents; a document may be 1M characters, so few are kept.
DOCUMENT_CACHE = 32
ANNOTATION_CACHE = 32
CHUNK_CACHE = 1024

_SCHEMA = """
CREATE TABLE documents (
    ord INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    date TEXT,
    chunk_row0 INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    sentence_row0 INTEGER NOT NULL,
    sentence_count INTEGER NOT NULL,
    document TEXT NOT NULL,
    annotations TEXT NOT NULL
);
CREATE TABLE chunks (row INTEGER PRIMARY KEY, chunk TEXT NOT NULL);
"""

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """What is kept in memory of a document: enough for filters, counts and row lookups."""

    date: str | None
    chunk_row0: int
    chunk_count: int
    sentence_row0: int
    sentence_count: int


def write_records(
    path: Path,
    documents: Sequence[Document],
    chunks: Sequence[Chunk],
    annotations: Sequence[Annotations],
) -> None:
    """Write the records of an index version; chunks must be grouped by document, in order."""
    if [a.document_id for a in annotations] != [d.id for d in documents]:
        raise ValueError("annotations must follow the documents, one each")
    row0: dict[str, int] = {}
    count: dict[str, int] = {}
    for row, chunk in enumerate(chunks):
        if chunk.document_id not in row0:
            row0[chunk.document_id] = row
        elif row0[chunk.document_id] + count[chunk.document_id] != row:
            raise ValueError(f"chunks of {chunk.document_id!r} are not contiguous")
        count[chunk.document_id] = count.get(chunk.document_id, 0) + 1
    connection = sqlite3.connect(path)
    try:
        connection.executescript(_SCHEMA)
        sentence_row = 0
        rows = []
        for ord_, (doc, ann) in enumerate(zip(documents, annotations, strict=True)):
            rows.append(
                (
                    ord_,
                    doc.id,
                    doc.date,
                    row0.get(doc.id, 0),
                    count.get(doc.id, 0),
                    sentence_row,
                    len(ann.sentences),
                    _dumps(doc.to_dict()),
                    _dumps(ann.to_dict()),
                )
            )
            sentence_row += len(ann.sentences)
        connection.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        connection.executemany(
            "INSERT INTO chunks VALUES (?, ?)",
            ((row, _dumps(c.to_dict())) for row, c in enumerate(chunks)),
        )
        connection.commit()
    finally:
        connection.close()


class RecordStore:
    """Read-only access to ``records.sqlite``; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
        self._connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        self.catalog: dict[str, CatalogEntry] = {
            doc_id: CatalogEntry(date, c0, cn, s0, sn)
            for doc_id, date, c0, cn, s0, sn in self._query(
                "SELECT id, date, chunk_row0, chunk_count, sentence_row0, sentence_count "
                "FROM documents ORDER BY ord"
            )
        }
        # Rows are 0..n-1: the largest is found in the key's b-tree, count(*) reads them all.
        (last_row,) = self._query("SELECT max(row) FROM chunks")[0]
        n_chunks = 0 if last_row is None else int(last_row) + 1
        self.documents = _LazyMapping(self.catalog, self._document, DOCUMENT_CACHE)
        self.annotations = _LazyMapping(self.catalog, self._annotations, ANNOTATION_CACHE)
        self.chunks = _LazyChunks(n_chunks, self._chunk, self._all_chunks)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    @property
    def sentence_count(self) -> int:
        return sum(e.sentence_count for e in self.catalog.values())

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection.execute(sql, params).fetchall()

    def _document(self, doc_id: str) -> Document:
        (text,) = self._query("SELECT document FROM documents WHERE id = ?", (doc_id,))[0]
        return Document.from_dict(json.loads(text))

    def _annotations(self, doc_id: str) -> Annotations:
        (text,) = self._query("SELECT annotations FROM documents WHERE id = ?", (doc_id,))[0]
        return Annotations.from_dict(json.loads(text))

    def _chunk(self, row: int) -> Chunk:
        (text,) = self._query("SELECT chunk FROM chunks WHERE row = ?", (row,))[0]
        return Chunk.from_dict(json.loads(text))

    def _all_chunks(self) -> Iterator[Chunk]:
        """Every chunk in row order, in pages (evaluation and reports walk them all)."""
        last = -1
        while True:
            page = self._query(
                "SELECT row, chunk FROM chunks WHERE row > ? ORDER BY row LIMIT 1000", (last,)
            )
            if not page:
                return
            for row, text in page:
                yield Chunk.from_dict(json.loads(text))
                last = row


def read_all(path: Path) -> tuple[list[Document], list[Chunk], list[Annotations]]:
    """Every record as objects: for the builder, which reuses what did not change."""
    store = RecordStore(path)
    try:
        docs = [
            (Document.from_dict(json.loads(d)), Annotations.from_dict(json.loads(a)))
            for d, a in store._query("SELECT document, annotations FROM documents ORDER BY ord")
        ]
        chunks = list(store.chunks)
    finally:
        store.close()
    return [d for d, _ in docs], chunks, [a for _, a in docs]


class _Cache(Generic[K, V]):
    """A small least-recently-used cache of parsed records (thread-safe)."""

    def __init__(self, load: Callable[[K], V], size: int) -> None:
        self._load = load
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = self._load(key)
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


class _LazyMapping(Mapping[str, V]):
    """Document id -> record, read from disk on access; ids and order from the catalog."""

    def __init__(
        self, catalog: dict[str, CatalogEntry], load: Callable[[str], V], size: int
    ) -> None:
        self._catalog = catalog
        self._cache: _Cache[str, V] = _Cache(load, size)

    def __getitem__(self, key: str) -> V:
        if key not in self._catalog:
            raise KeyError(key)
        return self._cache.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._catalog

    def __iter__(self) -> Iterator[str]:
        return iter(self._catalog)

    def __len__(self) -> int:
        return len(self._catalog)


class _LazyChunks(Sequence[Chunk]):
    """Row -> chunk, read from disk on access."""

    def __init__(
        self, n: int, load: Callable[[int], Chunk], scan: Callable[[], Iterator[Chunk]]
    ) -> None:
        self._n = n
        self._cache: _Cache[int, Chunk] = _Cache(load, CHUNK_CACHE)
        self._scan = scan

    @overload
    def __getitem__(self, index: int) -> Chunk: ...

    @overload
    def __getitem__(self, index: slice) -> list[Chunk]: ...

    def __getitem__(self, index: int | slice) -> Chunk | list[Chunk]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        row = index + self._n if index < 0 else index
        if not 0 <= row < self._n:
            raise IndexError(index)
        return self._cache.get(row)

    def __iter__(self) -> Iterator[Chunk]:
        return self._scan()

    def __len__(self) -> int:
        return self._n


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False)
