"""Chunk vectors in a Milvus collection: the serving store for collections past one machine.

FAISS keeps the vectors in a file on each replica's disk. At millions of chunks the
vectors belong in a database that shards and replicates them, and Milvus is one: the
same collection answers every replica, and a build updates it in place by chunk id
(upserts for new or changed chunks, deletes for gone ones) instead of writing a new file.

One collection row per chunk: its id (the primary key, ``rag.chunking.chunk_id``), its
vector, its document id, its position among its document's chunks, the document's date
(as stated, and the first and last day it names), the chunk text and its stemmed terms
with Milvus's own BM25 over them. Dense search pushes the filters of ``rag.filters`` into
the engine as a boolean expression with the same rules (a document dated "2014" matches
any range that overlaps 2014; an undated one never matches a date filter).

The collection is shared by every index version: a build updates it before it publishes
its version. A version being served maps a hit back to its own chunk rows through its
catalog (document id + position) and keeps only hits whose chunk id is the one it holds
at that row, so a replica still on the previous version for a few seconds never cites a
chunk it does not have.

``pymilvus`` (and ``milvus-lite``, the embedded engine for tests and small installs) are
an optional extra, ``pip install 'rag[milvus]'``, imported only when a Milvus store is used.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from rag.errors import VectorStoreError
from rag.filters import Filters, date_period

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pymilvus import MilvusClient

log = logging.getLogger(__name__)

#: The milvus-lite file inside the index folder when ``RAG_MILVUS_URI`` is empty.
LITE_FILE = "milvus.db"

#: Rows per upsert, delete or get call: small enough for gRPC's message limit at
#: 384-dimensional vectors and 2,000-character texts, large enough to amortise a call.
BATCH = 500

#: Longest document id and chunk text Milvus will hold (VARCHAR lengths are in bytes).
MAX_ID_BYTES = 1024
MAX_TEXT_BYTES = 65_535

#: How Milvus splits the stemmed terms: they are already what ``rag.lexical.terms`` makes
#: of the text, so Milvus only lower-cases. milvus-lite 3.2.2 accepts but ignores a
#: ``stemmer`` filter, so stemming is ours, on both sides (README "Scaling out").
TERMS_ANALYZER: dict[str, Any] = {"tokenizer": "standard", "filter": ["lowercase"]}


class MilvusHit(NamedTuple):
    """One search result: which chunk, where it sits in its document, and its score."""

    chunk_id: str
    document_id: str
    position: int
    score: float


@dataclass(frozen=True, slots=True)
class MilvusSettings:
    """Where the collection lives and how it is indexed (``RAG_MILVUS_*``)."""

    #: A milvus-lite file path, or a server URI (``http://milvus:19530``).
    uri: str
    collection: str = "rag_chunks"
    token: str | None = None
    #: Milvus index type of the vector field: FLAT is exact (FAISS's flat answers); a
    #: large collection on a cluster wants HNSW or IVF_FLAT.
    index_type: str = "FLAT"

    @property
    def is_lite(self) -> bool:
        """A local file (milvus-lite) rather than a server URI."""
        return "://" not in self.uri

    def describe(self, index_dir: Path) -> dict[str, Any]:
        """What the manifest records: a lite file relative to the index folder, if inside."""
        uri = self.uri
        if self.is_lite:
            path = Path(uri).resolve()
            try:
                uri = path.relative_to(index_dir.resolve()).as_posix()
            except ValueError:
                uri = str(path)
        return {
            "kind": "milvus",
            "uri": uri,
            "lite": self.is_lite,
            "collection": self.collection,
            "index_type": self.index_type,
        }


def resolve_uri(configured: str, index_dir: Path, recorded: dict[str, Any] | None = None) -> str:
    """The URI to connect to: the configured one, else the manifest's, else the default file.

    A replica may reach the cluster by another address than the builder did, so a
    configured ``RAG_MILVUS_URI`` wins; a lite file recorded relative to the index folder
    is found wherever the folder was moved.
    """
    if configured:
        return configured
    if recorded and recorded.get("uri"):
        uri = str(recorded["uri"])
        if recorded.get("lite") and not Path(uri).is_absolute():
            return str(index_dir / uri)
        return uri
    return str(index_dir / LITE_FILE)


def _client(settings: MilvusSettings) -> MilvusClient:
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise VectorStoreError(
            "RAG_VECTOR_STORE=milvus needs pymilvus (and milvus-lite for a local file): "
            "pip install 'rag[milvus]'"
        ) from exc
    if settings.is_lite:
        Path(settings.uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        return MilvusClient(settings.uri, token=settings.token or "")
    except Exception as exc:  # pymilvus raises its own and milvus-lite's exception types
        hint = (
            " (milvus-lite serves one process at a time: is a `rag serve` or another build "
            "holding this file? Use a Milvus server to build while serving)"
            if settings.is_lite
            else ""
        )
        raise VectorStoreError(f"cannot open Milvus at {settings.uri}: {exc}{hint}") from exc


def date_bounds(date: str | None) -> tuple[int, int, bool]:
    """First and last day (proleptic ordinals) a document's date names, and whether it has one."""
    if not date:
        return 0, 0, False
    try:
        first, last = date_period(date)
    except ValueError:
        return 0, 0, False  # an unreadable date never matches a date filter, as in Filters
    return first.toordinal(), last.toordinal(), True


def filter_expression(filters: Filters | None) -> str:
    """The Milvus boolean expression of ``filters`` (empty: no filter).

    The same rules as ``Filters.select``: the document list restricts, and a date range
    keeps only dated documents whose period overlaps it. Unknown document ids are the
    caller's to reject (``Index.allowed_rows`` raises before a search).
    """
    if filters is None or not filters.active:
        return ""
    parts: list[str] = []
    if filters.documents is not None:
        # json.dumps quotes and escapes each id the way Milvus string literals read them.
        ids = ", ".join(json.dumps(d) for d in dict.fromkeys(filters.documents))
        parts.append(f"document_id in [{ids}]")
    if filters.date_from is not None or filters.date_to is not None:
        parts.append("dated == true")
        if filters.date_from is not None:
            parts.append(f"date_last >= {filters.date_from.toordinal()}")
        if filters.date_to is not None:
            parts.append(f"date_first <= {filters.date_to.toordinal()}")
    return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """What the collection holds of one chunk (its vector apart)."""

    chunk_id: str
    document_id: str
    position: int
    date: str | None
    text: str
    terms: str


class MilvusVectors:
    """One Milvus collection of chunk vectors: search for the service, sync for the builder."""

    def __init__(self, settings: MilvusSettings, client: MilvusClient) -> None:
        self.settings = settings
        self._client = client
        self.collection = settings.collection

    @classmethod
    def open(cls, settings: MilvusSettings) -> MilvusVectors:
        """Connect to an existing collection and load it for search."""
        store = cls(settings, _client(settings))
        if not store._call(store._client.has_collection, store.collection):
            raise VectorStoreError(
                f"Milvus at {settings.uri} has no collection {settings.collection!r}: "
                "build the index with RAG_VECTOR_STORE=milvus `rag index`"
            )
        store._call(store._client.load_collection, store.collection)
        return store

    @classmethod
    def exists(cls, settings: MilvusSettings) -> bool:
        """Whether the collection exists (a missing lite file is no collection, not made)."""
        if settings.is_lite and not Path(settings.uri).exists():
            return False
        store = cls(settings, _client(settings))
        try:
            return bool(store._call(store._client.has_collection, store.collection))
        finally:
            store.close()

    @classmethod
    def create_or_open(cls, settings: MilvusSettings, dimension: int) -> MilvusVectors:
        """The collection for a build: created with its schema and indexes if missing."""
        store = cls(settings, _client(settings))
        if store._call(store._client.has_collection, store.collection):
            found = store.dimension()
            if found != dimension:
                raise VectorStoreError(
                    f"Milvus collection {store.collection!r} holds {found}-dimensional vectors, "
                    f"the embedding model makes {dimension}: set RAG_MILVUS_COLLECTION to a new "
                    "name or drop the collection"
                )
        else:
            store._create(dimension)
        store._call(store._client.load_collection, store.collection)
        return store

    def close(self) -> None:
        self._client.close()

    # -- schema ------------------------------------------------------------------------

    def _create(self, dimension: int) -> None:
        from pymilvus import DataType, Function, FunctionType

        client = self._client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("chunk_id", DataType.VARCHAR, max_length=64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        schema.add_field("document_id", DataType.VARCHAR, max_length=MAX_ID_BYTES)
        schema.add_field("position", DataType.INT64)
        schema.add_field("date", DataType.VARCHAR, max_length=32)
        schema.add_field("date_first", DataType.INT64)
        schema.add_field("date_last", DataType.INT64)
        schema.add_field("dated", DataType.BOOL)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
        schema.add_field(
            "terms",
            DataType.VARCHAR,
            max_length=MAX_TEXT_BYTES,
            enable_analyzer=True,
            analyzer_params=TERMS_ANALYZER,
        )
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="terms_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["terms"],
                output_field_names=["sparse"],
            )
        )
        indexes = client.prepare_index_params()
        indexes.add_index("vector", index_type=self.settings.index_type, metric_type="IP")
        indexes.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        # Strong: a search right after a build's publish sees every row the build wrote.
        self._call(
            client.create_collection,
            self.collection,
            schema=schema,
            index_params=indexes,
            consistency_level="Strong",
        )
        log.info("created Milvus collection %s (%d dimensions)", self.collection, dimension)

    def dimension(self) -> int:
        described = self._call(self._client.describe_collection, self.collection)
        for field in described["fields"]:
            if field["name"] == "vector":
                return int(field["params"]["dim"])
        raise VectorStoreError(f"Milvus collection {self.collection!r} has no vector field")

    # -- builder side ------------------------------------------------------------------

    def count(self) -> int:
        rows = self._call(
            self._client.query, self.collection, filter="", output_fields=["count(*)"]
        )
        return int(rows[0]["count(*)"])

    def ids(self) -> set[str]:
        """Every chunk id the collection holds (a build diffs its chunks against them)."""
        # milvus-lite lacks the call the iterator uses for a snapshot timestamp; pymilvus
        # warns on every iteration and falls back to the client's time, which is right here.
        logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
        iterator = self._call(
            self._client.query_iterator,
            self.collection,
            batch_size=BATCH * 4,
            filter="",
            output_fields=["chunk_id"],
        )
        found: set[str] = set()
        try:
            while batch := iterator.next():
                found.update(str(row["chunk_id"]) for row in batch)
        finally:
            iterator.close()
        return found

    def vectors(self, chunk_ids: Sequence[str], *, missing_ok: bool = False) -> np.ndarray:
        """The stored vectors of ``chunk_ids``, in that order (the builder's embedding cache).

        A chunk the collection lacks is an error, or with ``missing_ok`` a row of NaN.
        """
        by_id: dict[str, list[float]] = {}
        for batch in _batches(list(dict.fromkeys(chunk_ids)), BATCH):
            for row in self._call(
                self._client.get, self.collection, ids=batch, output_fields=["vector"]
            ):
                by_id[str(row["chunk_id"])] = row["vector"]
        missing = [c for c in chunk_ids if c not in by_id]
        if missing and not missing_ok:
            raise VectorStoreError(
                f"Milvus collection {self.collection!r} lacks {len(missing)} chunk vectors "
                f"(first: {missing[0]})"
            )
        dimension = self.dimension()
        out = np.full((len(chunk_ids), dimension), np.nan, dtype=np.float32)
        for i, chunk in enumerate(chunk_ids):
            if chunk in by_id:
                out[i] = by_id[chunk]
        return out

    def sync(
        self,
        rows: Sequence[ChunkRow],
        vector_of: Callable[[int], np.ndarray],
        *,
        rewrite: Iterable[str] = (),
    ) -> tuple[int, int]:
        """Make the collection hold exactly ``rows``: upsert what it lacks, delete the rest.

        ``vector_of(i)`` is the vector of ``rows[i]``. Chunk ids are content hashes
        (document, start, text), so a chunk already stored is the same chunk; the chunks
        of ``rewrite`` documents (new or changed files, whose dates may have changed) are
        upserted anyway. The diff is against what the collection holds, not against the
        previous version, so a build that died after its sync and before its publish is
        put right by the next one. Returns (upserted, deleted).
        """
        existing = self.ids()
        wanted = {r.chunk_id for r in rows}
        rewrite = set(rewrite)
        todo = [
            i for i, r in enumerate(rows) if r.chunk_id not in existing or r.document_id in rewrite
        ]
        for batch in _batches(todo, BATCH):
            data = [_entity(rows[i], vector_of(i)) for i in batch]
            self._call(self._client.upsert, self.collection, data)
        gone = sorted(existing - wanted)
        for ids in _batches(gone, BATCH):
            self._call(self._client.delete, self.collection, ids=ids)
        self._call(self._client.flush, self.collection)
        log.info("Milvus %s: %d upserted, %d deleted", self.collection, len(todo), len(gone))
        return len(todo), len(gone)

    # -- service side ------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int, filters: Filters | None = None) -> list[MilvusHit]:
        """The ``k`` chunks of highest inner product with ``query`` that pass ``filters``."""
        vector = np.asarray(query, dtype=np.float32).reshape(-1).tolist()
        results = self._call(
            self._client.search,
            self.collection,
            data=[vector],
            anns_field="vector",
            limit=k,
            filter=filter_expression(filters),
            output_fields=["document_id", "position"],
            search_params={"metric_type": "IP"},
        )
        return [_hit(h, sign=1.0) for h in results[0]]

    def full_text_search(
        self, query_terms: Sequence[str], k: int, filters: Filters | None = None
    ) -> list[MilvusHit]:
        """Milvus's own BM25 over the stemmed terms (``rag.lexical.terms`` of the question).

        milvus-lite 3.2.2 reports a BM25 score as a negative distance; the sign is turned
        back so that higher is better, as everywhere else.
        """
        if not query_terms:
            return []
        results = self._call(
            self._client.search,
            self.collection,
            data=[" ".join(query_terms)],
            anns_field="sparse",
            limit=k,
            filter=filter_expression(filters),
            output_fields=["document_id", "position"],
            search_params={"metric_type": "BM25"},
        )
        return [_hit(h, sign=-1.0 if h["distance"] < 0 else 1.0) for h in results[0]]

    def hybrid_search(
        self,
        query: np.ndarray,
        query_terms: Sequence[str],
        k: int,
        filters: Filters | None = None,
        *,
        rrf_k: int = 60,
        depth: int = 50,
    ) -> list[MilvusHit]:
        """Dense and BM25 fused inside Milvus by its (unweighted) RRF ranker."""
        from pymilvus import AnnSearchRequest, RRFRanker

        expr = filter_expression(filters)
        requests = [
            AnnSearchRequest(
                [np.asarray(query, dtype=np.float32).reshape(-1).tolist()],
                "vector",
                {"metric_type": "IP"},
                limit=depth,
                expr=expr or None,
            ),
            AnnSearchRequest(
                [" ".join(query_terms) or " "],
                "sparse",
                {"metric_type": "BM25"},
                limit=depth,
                expr=expr or None,
            ),
        ]
        results = self._call(
            self._client.hybrid_search,
            self.collection,
            requests,
            ranker=RRFRanker(rrf_k),
            limit=k,
            output_fields=["document_id", "position"],
        )
        return [_hit(h, sign=1.0) for h in results[0]]

    # -- helpers -----------------------------------------------------------------------

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one client call; Milvus's own errors become a VectorStoreError naming the store."""
        try:
            return method(*args, **kwargs)
        except VectorStoreError:
            raise
        except Exception as exc:  # pymilvus.MilvusException and grpc errors
            name = getattr(method, "__name__", "call")
            raise VectorStoreError(
                f"Milvus {name} on {self.collection!r} at {self.settings.uri} failed: {exc}"
            ) from exc


def _entity(row: ChunkRow, vector: np.ndarray) -> dict[str, Any]:
    first, last, dated = date_bounds(row.date)
    return {
        "chunk_id": row.chunk_id,
        "vector": np.asarray(vector, dtype=np.float32).tolist(),
        "document_id": row.document_id,
        "position": row.position,
        "date": row.date or "",
        "date_first": first,
        "date_last": last,
        "dated": dated,
        "text": row.text,
        # May be empty (a chunk of stop words only): milvus-lite stores it and BM25 skips it.
        "terms": row.terms,
    }


def _hit(raw: dict[str, Any], *, sign: float) -> MilvusHit:
    entity = raw.get("entity", {})
    return MilvusHit(
        str(raw.get("chunk_id", raw.get("id"))),
        str(entity["document_id"]),
        int(entity["position"]),
        sign * float(raw["distance"]),
    )


def _batches(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
