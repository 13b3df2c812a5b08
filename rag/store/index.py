"""A loaded index: documents, chunks, annotations, dense and lexical search.

What a question does not need stays on disk: documents, chunks and annotations in
``records.sqlite``, read per retrieved chunk (``rag.store.records``); the chunk vectors
only in the FAISS index (``rag.store.dense``), or in a Milvus collection when the
manifest says so (``rag.store.milvus``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import bm25s
import faiss
import numpy as np

from rag.errors import (
    IndexCorruptError,
    IndexNotFoundError,
    UnknownDocumentError,
    VectorStoreError,
)
from rag.filters import Filters
from rag.store import dense as dense_index
from rag.store.catalog import DocumentCatalog, DocumentRows
from rag.store.layout import resolve_version
from rag.store.manifest import Manifest, check_compatible, read_manifest, verify_files
from rag.store.records import RECORDS, CatalogEntry, RecordStore, read_all
from rag.types import Annotations, Chunk, Document

if TYPE_CHECKING:  # pragma: no cover - typing only
    from rag.config import Settings
    from rag.store.milvus import MilvusHit, MilvusVectors

log = logging.getLogger(__name__)

DENSE = "dense.faiss"
LEXICAL = "lexical"

#: Loads tried when the version being read is retired by a newer publish meanwhile.
_LOAD_ATTEMPTS = 5

#: A question's BM25 scores are summed in one collection-sized array when its terms'
#: postings number at least 1/this of the chunks (``Index._term_scores``): zeroing and
#: scanning N floats is then cheaper than sorting and searching the postings.
DENSE_SCORES_RATIO = 16


class Hit(NamedTuple):
    """A chunk row and its score from one retrieval stage."""

    row: int
    score: float


@dataclass(frozen=True, slots=True)
class StoreAccess:
    """How to reach an external vector store recorded in a manifest (``RAG_MILVUS_*``).

    The manifest says which store holds the vectors; these say how this process reaches
    it (a replica may use another address or token than the builder did).
    """

    milvus_uri: str = ""
    milvus_token: str | None = None
    #: Rank lexically with Milvus's BM25 instead of the BM25 files (``RAG_MILVUS_LEXICAL``).
    milvus_lexical: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> StoreAccess:
        token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
        return cls(settings.milvus_uri, token, settings.milvus_lexical == "milvus")


@dataclass(slots=True)
class IndexData:
    """Everything an index holds, in memory: what the builder writes and reads back."""

    documents: list[Document]
    chunks: list[Chunk]
    annotations: list[Annotations]
    #: One row per chunk; on disk only inside the dense index.
    vectors: np.ndarray


class Index:
    """Read-only view over a built index. Create with ``Index.load``."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        records: RecordStore,
        dense: faiss.Index | MilvusVectors,
        lexical: bm25s.BM25,
        *,
        nprobe: int | None = None,
        milvus_lexical: bool = False,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self._records = records
        #: Read-only mappings and sequence over records on disk (``rag.store.records``).
        self.documents: Mapping[str, Document] = records.documents
        self.chunks: Sequence[Chunk] = records.chunks
        self.annotations: Mapping[str, Annotations] = records.annotations
        self._catalog: dict[str, CatalogEntry] = records.catalog
        #: Filters as array operations over the documents (``rag.store.catalog``).
        self.document_catalog = DocumentCatalog(
            {
                doc_id: DocumentRows(entry.chunk_row0, entry.chunk_count, entry.date)
                for doc_id, entry in self._catalog.items()
            }
        )
        #: The FAISS index, or None when the vectors are in Milvus (``self.milvus``).
        self._dense: faiss.Index | None = None
        self.milvus: MilvusVectors | None = None
        if isinstance(dense, faiss.Index):
            self._dense = dense
            self.dense_info = dense_index.info_of(dense, manifest.dense.get("trained_on", 0))
        else:
            self.milvus = dense
            self.dense_info = dense_index.DenseInfo(
                "milvus", len(records.chunks), int(manifest.embedding["dimension"])
            )
        #: BM25 ranking by Milvus instead of the BM25 files (only with the Milvus store).
        self.milvus_lexical = milvus_lexical and self.milvus is not None
        #: IVF cells searched per question (None: the value stored with the index).
        self.nprobe = nprobe
        self._lexical = lexical
        self._vocab: dict[str, int] = dict(lexical.vocab_dict)
        self._indptr = np.asarray(lexical.scores["indptr"])

    # -- loading -----------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings, index_dir: Path | None = None) -> Index:
        """Load the index the settings name, verified against their embedding model."""
        return cls.load(
            Path(index_dir or settings.index_dir),
            embedding_model=settings.embedding_model,
            nprobe=settings.dense_nprobe,
            access=StoreAccess.from_settings(settings),
        )

    @classmethod
    def load(
        cls,
        index_dir: Path,
        *,
        embedding_model: str | None = None,
        nprobe: int | None = None,
        access: StoreAccess | None = None,
    ) -> Index:
        """Load and verify one version: manifest, format, model, checksums, consistency.

        ``current`` is resolved once and every file is read from that version folder, so
        a publish during the load cannot mix two versions. Should the folder be retired
        while it is read (a newer version went live meanwhile), the newer one is loaded.
        """
        for attempt in range(_LOAD_ATTEMPTS):
            folder = resolve_version(index_dir)
            try:
                return cls._load_version(
                    index_dir, folder, embedding_model, nprobe, access or StoreAccess()
                )
            except (IndexCorruptError, IndexNotFoundError):
                if attempt + 1 < _LOAD_ATTEMPTS and resolve_version(index_dir) != folder:
                    log.info("index version %s was replaced while loading; retrying", folder)
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def _load_version(
        cls,
        index_dir: Path,
        folder: Path,
        embedding_model: str | None,
        nprobe: int | None,
        access: StoreAccess,
    ) -> Index:
        manifest = read_manifest(folder)
        check_compatible(manifest, embedding_model)
        verify_files(folder, manifest)
        try:
            records = RecordStore(folder / RECORDS)
            lexical = bm25s.BM25.load(str(folder / LEXICAL), load_corpus=False, mmap=True)
            dense = None if manifest.vector_store_kind == "milvus" else read_dense(folder)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, sqlite3.Error) as exc:
            raise IndexCorruptError(f"cannot read index at {folder}: {exc}") from exc
        n = len(records.chunks)
        store: faiss.Index | MilvusVectors
        if dense is None:
            store = open_milvus(index_dir, manifest, access)
            kind = "milvus"
        else:
            if dense.ntotal != n:
                raise IndexCorruptError(
                    f"index at {folder} is inconsistent: {n} chunks, {dense.ntotal} dense vectors"
                )
            if dense.d != manifest.embedding["dimension"]:
                raise IndexCorruptError(
                    f"index at {folder}: vector dimension differs from manifest"
                )
            store, kind = dense, dense_index.info_of(dense).kind
        log.info(
            "loaded index %s: %d documents, %d chunks, %s dense index",
            folder,
            len(records.documents),
            n,
            kind,
        )
        return cls(
            folder,
            manifest,
            records,
            store,
            lexical,
            nprobe=nprobe,
            milvus_lexical=access.milvus_lexical,
        )

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
        self,
        query: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        *,
        filters: Filters | None = None,
    ) -> list[Hit]:
        """Top ``k`` chunks by inner product with a normalised query vector.

        FAISS restricts its search to the ``allowed`` rows; Milvus gets ``filters`` as a
        boolean expression instead (``allowed`` is what they allow, for the size checks).
        """
        if k <= 0 or not self.chunks or (allowed is not None and allowed.size == 0):
            return []
        k = min(k, len(self.chunks) if allowed is None else int(allowed.size))
        if self.milvus is not None:
            if allowed is not None and filters is None:
                raise ValueError("a Milvus dense search needs the filters behind `allowed`")
            return self._rows_of(self.milvus.search(query, k, filters))
        assert self._dense is not None
        scores, rows = dense_index.search(self._dense, query, k, allowed, self.nprobe)
        return [Hit(int(r), float(s)) for r, s in zip(rows, scores, strict=True) if r >= 0]

    def _rows_of(self, hits: list[MilvusHit]) -> list[Hit]:
        """This version's rows of Milvus hits; a chunk this version does not hold is left out.

        The collection is shared by every version and updated by a build before it
        publishes, so for a few seconds it may be ahead of the version served: a hit on
        a document this version lacks, or whose chunk at that position is another, is not
        this version's and is dropped.
        """
        found: list[Hit] = []
        for hit in hits:
            entry = self._catalog.get(hit.document_id)
            if entry is None or not 0 <= hit.position < entry.chunk_count:
                continue
            row = entry.chunk_row0 + hit.position
            if self.chunks[row].id == hit.chunk_id:
                found.append(Hit(row, hit.score))
        return found

    def lexical_search(
        self,
        query_terms: list[str],
        k: int,
        allowed: np.ndarray | None = None,
        *,
        filters: Filters | None = None,
    ) -> list[Hit]:
        """Top ``k`` chunks by BM25 over stemmed terms; chunks that share no term are left out.

        Only the postings of the question's terms are read (``_term_scores``), and a
        filter costs no more than no filter: the postings are intersected with the
        allowed rows (ascending, as ``allowed_rows`` gives them), or, when a question
        reads many postings, only the allowed rows' sums are read.
        """
        if k <= 0 or not self.chunks or not query_terms:
            return []
        if self.milvus_lexical and self.milvus is not None:
            if allowed is not None and allowed.size == 0:
                return []
            return self._rows_of(self.milvus.full_text_search(query_terms, k, filters))
        rows, scores = self._term_scores(query_terms, allowed)
        positive = scores > 0
        rows, scores = rows[positive], scores[positive]
        if rows.size > k:
            top = np.argpartition(-scores, k - 1)[:k]
            rows, scores = rows[top], scores[top]
        order = np.argsort(-scores, kind="stable")
        return [Hit(int(rows[i]), float(scores[i])) for i in order]

    def _term_scores(
        self, query_terms: list[str], allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """BM25 of every chunk holding a query term (among ``allowed``): rows (ascending), scores.

        The same float32 sums, in the same order, as ``bm25s.BM25.get_scores`` (a repeated
        term counts again, terms are added in the question's order), so rankings are
        identical to scoring every chunk. Two ways to the same sums, chosen by how many
        postings the question reads against the collection's size:

        * few postings: the distinct rows, sorted, and each term's scores added at theirs;
        * many (a common term in a large collection): each term's scores added into one
          collection-sized array, then only the rows holding a score, or only the
          ``allowed`` rows, are read from it. Sorting and searching hundreds of thousands
          of postings per question cost 30 ms at 1M chunks; this costs a few.
        """
        if self._lexical.nonoccurrence_array is not None:  # a variant scoring every chunk
            full = self._lexical.get_scores(query_terms)
            return _restrict(np.arange(full.size), full, allowed)
        term_ids = [self._vocab[t] for t in query_terms if t in self._vocab]
        data, indices = self._lexical.scores["data"], self._lexical.scores["indices"]
        postings = [
            (int(self._indptr[t]), int(self._indptr[t + 1]))
            for t in term_ids
            if self._indptr[t + 1] > self._indptr[t]
        ]
        if not postings:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        dtype = np.dtype(self._lexical.dtype)
        total = sum(b - a for a, b in postings)
        n = len(self.chunks)
        if total * DENSE_SCORES_RATIO >= n:
            dense = np.zeros(n, dtype=dtype)
            for a, b in postings:  # rows are distinct within one term's postings
                dense[indices[a:b]] += data[a:b]
            if allowed is not None:  # O(rows allowed), never more than unfiltered
                found = dense[allowed]
                held = found > 0
                return allowed[held], found[held]
            rows = np.flatnonzero(dense)
            return rows, dense[rows]
        pieces = np.concatenate([indices[a:b] for a, b in postings])
        pieces.sort()
        rows = pieces[np.concatenate(([True], pieces[1:] != pieces[:-1]))]
        scores = np.zeros(rows.size, dtype=dtype)
        for a, b in postings:
            np.add.at(scores, np.searchsorted(rows, indices[a:b]), data[a:b])
        return _restrict(rows, scores, allowed)


def _restrict(
    rows: np.ndarray, scores: np.ndarray, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``rows`` (ascending) that are among ``allowed`` (ascending, as ``allowed_rows``
    gives them), with their scores: O(rows · log allowed), never a collection-sized mask."""
    if allowed is None or rows.size == 0:
        return rows, scores
    if allowed.size == 0:
        return rows[:0], scores[:0]
    at = np.minimum(np.searchsorted(allowed, rows), allowed.size - 1)
    keep = allowed[at] == rows
    return rows[keep], scores[keep]


def open_milvus(index_dir: Path, manifest: Manifest, access: StoreAccess) -> MilvusVectors:
    """The Milvus collection a manifest names, reached as ``access`` says."""
    from rag.store.milvus import MilvusSettings, MilvusVectors, resolve_uri

    recorded = manifest.vector_store
    settings = MilvusSettings(
        uri=resolve_uri(access.milvus_uri, index_dir, recorded),
        collection=str(recorded.get("collection", "rag_chunks")),
        token=access.milvus_token,
        index_type=str(recorded.get("index_type", "FLAT")),
    )
    store = MilvusVectors.open(settings)
    if store.dimension() != manifest.embedding["dimension"]:
        raise VectorStoreError(
            f"Milvus collection {settings.collection!r} holds vectors of another dimension "
            "than the index: rebuild with `rag index`"
        )
    return store


def read_dense(folder: Path) -> faiss.Index:
    """The dense index of a version: the one copy of its chunk vectors."""
    return faiss.read_index(str(folder / DENSE))


def read_data(folder: Path, dense: faiss.Index | None) -> IndexData:
    """A version's data with its chunk vectors read back from ``dense`` (for the builder).

    ``None``: the vectors are in Milvus and stay there (``vectors`` is empty); the builder
    fetches the few it reuses by chunk id.
    """
    try:
        documents, chunks, annotations = read_all(folder / RECORDS)
    except sqlite3.Error as exc:
        raise IndexCorruptError(f"cannot read {folder / RECORDS}: {exc}") from exc
    if dense is None:
        empty = np.zeros((0, 0), dtype=np.float32)
        return IndexData(documents, chunks, annotations, empty)
    vectors = dense_index.vectors_of(dense)
    if vectors.shape[0] != len(chunks):
        raise IndexCorruptError(f"index at {folder} is inconsistent: chunks and dense vectors")
    return IndexData(documents, chunks, annotations, vectors)
