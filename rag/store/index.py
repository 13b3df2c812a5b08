"""A loaded index: documents, chunks, annotations, dense and lexical search.

The chunk vectors live only in the FAISS index (``rag.store.dense``); the sentence
vectors are memory-mapped, so only the rows a question reads are paged in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import bm25s
import faiss
import numpy as np

from rag.errors import IndexCorruptError, IndexNotFoundError, UnknownDocumentError
from rag.store import dense as dense_index
from rag.store.files import read_jsonl
from rag.store.layout import resolve_version
from rag.store.manifest import Manifest, check_compatible, read_manifest, verify_files
from rag.types import Annotations, Chunk, Document

log = logging.getLogger(__name__)

DOCUMENTS = "documents.jsonl"
CHUNKS = "chunks.jsonl"
ANNOTATIONS = "annotations.jsonl"
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
        records: _Records,
        dense: faiss.Index,
        lexical: bm25s.BM25,
        *,
        nprobe: int | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.documents = {d.id: d for d in records.documents}
        self.chunks = records.chunks
        self.annotations = {a.document_id: a for a in records.annotations}
        self.sentence_vectors = records.sentence_vectors
        #: First row in ``sentence_vectors`` of each document's sentences.
        self.sentence_row0: dict[str, int] = {}
        row = 0
        for ann in records.annotations:
            self.sentence_row0[ann.document_id] = row
            row += len(ann.sentences)
        self._dense = dense
        self.dense_info = dense_index.info_of(dense, manifest.dense.get("trained_on", 0))
        #: IVF cells searched per question (None: the value stored with the index).
        self.nprobe = nprobe
        self._lexical = lexical
        self._vocab: dict[str, int] = dict(lexical.vocab_dict)
        self._indptr = np.asarray(lexical.scores["indptr"])
        self._rows_by_document: dict[str, list[int]] = {}
        for row, chunk in enumerate(self.chunks):
            self._rows_by_document.setdefault(chunk.document_id, []).append(row)

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
            records = read_records(folder)
            dense = read_dense(folder)
            lexical = bm25s.BM25.load(str(folder / LEXICAL), load_corpus=False, mmap=False)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IndexCorruptError(f"cannot read index at {folder}: {exc}") from exc
        n = len(records.chunks)
        if dense.ntotal != n:
            raise IndexCorruptError(
                f"index at {folder} is inconsistent: {n} chunks, {dense.ntotal} dense vectors"
            )
        n_sent = sum(len(a.sentences) for a in records.annotations)
        if records.sentence_vectors.shape[0] != n_sent:
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
        return cls(folder, manifest, records, dense, lexical, nprobe=nprobe)

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
        """Chunk rows of the given documents (for filtered search)."""
        rows = [r for d in document_ids for r in self._rows_by_document.get(d, [])]
        return np.array(sorted(rows), dtype=np.int64)

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
        """Top ``k`` chunks by BM25 over stemmed terms; chunks that share no term are left out."""
        if k <= 0 or not self.chunks or not query_terms:
            return []
        scores = self._lexical.get_scores(query_terms)
        if allowed is not None:
            mask = np.zeros_like(scores)
            mask[allowed] = 1.0
            scores = scores * mask
        candidates = np.flatnonzero(scores > 0)
        if candidates.size > k:
            top = np.argpartition(-scores[candidates], k - 1)[:k]
            candidates = candidates[top]
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [Hit(int(r), float(scores[r])) for r in order]


@dataclass(slots=True)
class _Records:
    """What a served index reads of a version: no chunk vectors (FAISS holds them)."""

    documents: list[Document]
    chunks: list[Chunk]
    annotations: list[Annotations]
    #: Memory-mapped: read-only, paged in row by row as questions read them.
    sentence_vectors: np.ndarray


def read_records(folder: Path) -> _Records:
    """Read the plain data files of an index version (no model objects)."""
    return _Records(
        documents=[Document.from_dict(row) for row in read_jsonl(folder / DOCUMENTS)],
        chunks=[Chunk.from_dict(row) for row in read_jsonl(folder / CHUNKS)],
        annotations=[Annotations.from_dict(row) for row in read_jsonl(folder / ANNOTATIONS)],
        sentence_vectors=np.load(folder / SENTENCE_VECTORS, mmap_mode="r", allow_pickle=False),
    )


def read_dense(folder: Path) -> faiss.Index:
    """The dense index of a version: the one copy of its chunk vectors."""
    return faiss.read_index(str(folder / DENSE))


def read_data(folder: Path, dense: faiss.Index) -> IndexData:
    """A version's data with its chunk vectors read back from ``dense`` (for the builder)."""
    records = read_records(folder)
    vectors = dense_index.vectors_of(dense)
    if vectors.shape[0] != len(records.chunks):
        raise IndexCorruptError(f"index at {folder} is inconsistent: chunks and dense vectors")
    return IndexData(
        records.documents, records.chunks, records.annotations, vectors, records.sentence_vectors
    )
