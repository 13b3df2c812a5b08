"""A loaded index: documents, chunks, annotations, dense and lexical search.

What a question does not need stays on disk: documents, chunks and annotations in
``records.sqlite``, read per retrieved chunk (``rag.store.records``); the chunk vectors
only in the FAISS index (``rag.store.dense``); the sentence vectors memory-mapped, so
only the rows a question reads are paged in.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import bm25s
import faiss
import numpy as np

from rag.errors import IndexCorruptError, IndexNotFoundError, UnknownDocumentError
from rag.filters import Filters
from rag.store import dense as dense_index
from rag.store.catalog import DocumentCatalog, DocumentRows
from rag.store.layout import resolve_version
from rag.store.manifest import Manifest, check_compatible, read_manifest, verify_files
from rag.store.records import RECORDS, CatalogEntry, RecordStore, read_all
from rag.types import Annotations, Chunk, Document

log = logging.getLogger(__name__)

SENTENCE_VECTORS = "sentence_vectors.npy"
DENSE = "dense.faiss"
LEXICAL = "lexical"

#: Loads tried when the version being read is retired by a newer publish meanwhile.
_LOAD_ATTEMPTS = 5


class Hit(NamedTuple):
    """A chunk row and its score from one retrieval stage."""

    row: int
    score: float


@dataclass(slots=True)
class IndexData:
    """Everything an index holds, in memory: what the builder writes and reads back."""

    documents: list[Document]
    chunks: list[Chunk]
    annotations: list[Annotations]
    #: One row per chunk; on disk only inside the dense index.
    vectors: np.ndarray
    #: One row per annotated sentence, documents in order, sentences in order.
    sentence_vectors: np.ndarray

    def sentence_texts(self) -> list[str]:
        """Texts of all sentences, in the row order of ``sentence_vectors``."""
        docs = {d.id: d for d in self.documents}
        return [
            docs[a.document_id].text[s.start : s.end] for a in self.annotations for s in a.sentences
        ]


class Index:
    """Read-only view over a built index. Create with ``Index.load``."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        records: RecordStore,
        sentence_vectors: np.ndarray,
        dense: faiss.Index,
        lexical: bm25s.BM25,
        *,
        nprobe: int | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self._records = records
        #: Read-only mappings and sequence over records on disk (``rag.store.records``).
        self.documents: Mapping[str, Document] = records.documents
        self.chunks: Sequence[Chunk] = records.chunks
        self.annotations: Mapping[str, Annotations] = records.annotations
        self.sentence_vectors = sentence_vectors
        self._catalog: dict[str, CatalogEntry] = records.catalog
        #: First row in ``sentence_vectors`` of each document's sentences.
        self.sentence_row0: dict[str, int] = {
            doc_id: entry.sentence_row0 for doc_id, entry in self._catalog.items()
        }
        #: Filters as array operations over the documents (``rag.store.catalog``).
        self.document_catalog = DocumentCatalog(
            {
                doc_id: DocumentRows(entry.chunk_row0, entry.chunk_count, entry.date)
                for doc_id, entry in self._catalog.items()
            }
        )
        self._dense = dense
        self.dense_info = dense_index.info_of(dense, manifest.dense.get("trained_on", 0))
        #: IVF cells searched per question (None: the value stored with the index).
        self.nprobe = nprobe
        self._lexical = lexical
        self._vocab: dict[str, int] = dict(lexical.vocab_dict)
        self._indptr = np.asarray(lexical.scores["indptr"])

    # -- loading -----------------------------------------------------------------------

    @classmethod
    def load(
        cls, index_dir: Path, *, embedding_model: str | None = None, nprobe: int | None = None
    ) -> Index:
        """Load and verify one version: manifest, format, model, checksums, consistency.

        ``current`` is resolved once and every file is read from that version folder, so
        a publish during the load cannot mix two versions. Should the folder be retired
        while it is read (a newer version went live meanwhile), the newer one is loaded.
        """
        for attempt in range(_LOAD_ATTEMPTS):
            folder = resolve_version(index_dir)
            try:
                return cls._load_version(folder, embedding_model, nprobe)
            except (IndexCorruptError, IndexNotFoundError):
                if attempt + 1 < _LOAD_ATTEMPTS and resolve_version(index_dir) != folder:
                    log.info("index version %s was replaced while loading; retrying", folder)
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def _load_version(cls, folder: Path, embedding_model: str | None, nprobe: int | None) -> Index:
        manifest = read_manifest(folder)
        check_compatible(manifest, embedding_model)
        verify_files(folder, manifest)
        try:
            records = RecordStore(folder / RECORDS)
            sentence_vectors = read_sentence_vectors(folder)
            dense = read_dense(folder)
            lexical = bm25s.BM25.load(str(folder / LEXICAL), load_corpus=False, mmap=True)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, sqlite3.Error) as exc:
            raise IndexCorruptError(f"cannot read index at {folder}: {exc}") from exc
        n = len(records.chunks)
        if dense.ntotal != n:
            raise IndexCorruptError(
                f"index at {folder} is inconsistent: {n} chunks, {dense.ntotal} dense vectors"
            )
        if sentence_vectors.shape[0] != records.sentence_count:
            raise IndexCorruptError(f"index at {folder} is inconsistent: sentence vectors")
        if dense.d != manifest.embedding["dimension"]:
            raise IndexCorruptError(f"index at {folder}: vector dimension differs from manifest")
        log.info(
            "loaded index %s: %d documents, %d chunks, %s dense index",
            folder,
            len(records.documents),
            n,
            dense_index.info_of(dense).kind,
        )
        return cls(folder, manifest, records, sentence_vectors, dense, lexical, nprobe=nprobe)

    @property
    def version(self) -> str:
        """The version folder's name (a UTC timestamp for a built index)."""
        return self.path.name

    # -- lookups -----------------------------------------------------------------------

    def document(self, document_id: str) -> Document:
        try:
            return self.documents[document_id]
        except KeyError:
            raise UnknownDocumentError(document_id) from None

    def document_frequency(self, term: str) -> int:
        """Number of chunks holding a stemmed term (0 when unknown): for IDF weights."""
        term_id = self._vocab.get(term)
        if term_id is None:
            return 0
        return int(self._indptr[term_id + 1] - self._indptr[term_id])

    def rows_of(self, document_ids: list[str]) -> np.ndarray:
        """Chunk rows of the given documents (unknown ids have none), in O(rows returned)."""
        catalog = self.document_catalog
        positions = [
            catalog.position[d] for d in dict.fromkeys(document_ids) if d in catalog.position
        ]
        return catalog.rows(np.array(positions, dtype=np.int64))

    def allowed_rows(self, filters: Filters) -> np.ndarray:
        """Chunk rows a filter allows; an unknown document id raises UnknownDocumentError."""
        return self.document_catalog.allowed_rows(filters)

    # -- search ------------------------------------------------------------------------

    def dense_search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[Hit]:
        """Top ``k`` chunks by inner product with a normalised query vector."""
        if k <= 0 or not self.chunks or (allowed is not None and allowed.size == 0):
            return []
        k = min(k, len(self.chunks) if allowed is None else int(allowed.size))
        scores, rows = dense_index.search(self._dense, query, k, allowed, self.nprobe)
        return [Hit(int(r), float(s)) for r, s in zip(rows, scores, strict=True) if r >= 0]

    def lexical_search(
        self, query_terms: list[str], k: int, allowed: np.ndarray | None = None
    ) -> list[Hit]:
        """Top ``k`` chunks by BM25 over stemmed terms; chunks that share no term are left out.

        Only the postings of the question's terms are read (``_term_scores``), never a
        score per chunk of the collection, and a filter intersects those postings with
        the allowed rows (ascending, as ``allowed_rows`` gives them) instead of masking
        the whole collection.
        """
        if k <= 0 or not self.chunks or not query_terms:
            return []
        rows, scores = self._term_scores(query_terms)
        if allowed is not None and rows.size:
            if allowed.size == 0:
                return []
            # ``allowed`` is ascending (``allowed_rows``): O(postings · log allowed).
            at = np.minimum(np.searchsorted(allowed, rows), allowed.size - 1)
            keep = allowed[at] == rows
            rows, scores = rows[keep], scores[keep]
        positive = scores > 0
        rows, scores = rows[positive], scores[positive]
        if rows.size > k:
            top = np.argpartition(-scores, k - 1)[:k]
            rows, scores = rows[top], scores[top]
        order = np.argsort(-scores, kind="stable")
        return [Hit(int(rows[i]), float(scores[i])) for i in order]

    def _term_scores(self, query_terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """BM25 of every chunk holding a query term: its rows (ascending) and scores.

        The same float32 sums, in the same order, as ``bm25s.BM25.get_scores`` (a repeated
        term counts again), so rankings are identical to scoring every chunk.
        """
        if self._lexical.nonoccurrence_array is not None:  # a variant scoring every chunk
            full = self._lexical.get_scores(query_terms)
            return np.arange(full.size), full
        term_ids = [self._vocab[t] for t in query_terms if t in self._vocab]
        data, indices = self._lexical.scores["data"], self._lexical.scores["indices"]
        postings = [
            (int(self._indptr[t]), int(self._indptr[t + 1]))
            for t in term_ids
            if self._indptr[t + 1] > self._indptr[t]
        ]
        if not postings:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        rows = np.unique(np.concatenate([indices[a:b] for a, b in postings]))
        scores = np.zeros(rows.size, dtype=np.dtype(self._lexical.dtype))
        for a, b in postings:
            np.add.at(scores, np.searchsorted(rows, indices[a:b]), data[a:b])
        return rows, scores


def read_sentence_vectors(folder: Path) -> np.ndarray:
    """Memory-mapped, read-only: paged in row by row as questions read them."""
    return np.load(folder / SENTENCE_VECTORS, mmap_mode="r", allow_pickle=False)


def read_dense(folder: Path) -> faiss.Index:
    """The dense index of a version: the one copy of its chunk vectors."""
    return faiss.read_index(str(folder / DENSE))


def read_data(folder: Path, dense: faiss.Index) -> IndexData:
    """A version's data with its chunk vectors read back from ``dense`` (for the builder)."""
    try:
        documents, chunks, annotations = read_all(folder / RECORDS)
    except sqlite3.Error as exc:
        raise IndexCorruptError(f"cannot read {folder / RECORDS}: {exc}") from exc
    vectors = dense_index.vectors_of(dense)
    if vectors.shape[0] != len(chunks):
        raise IndexCorruptError(f"index at {folder} is inconsistent: chunks and dense vectors")
    return IndexData(documents, chunks, annotations, vectors, read_sentence_vectors(folder))
