"""Build or update an index from a folder of documents: incremental, atomic, locked.

Unchanged files (same path, same sha256) reuse their document, chunks, annotations
and vectors from the live index; chunk text that was embedded before is never embedded
again. An IVF dense index is updated rather than rebuilt: its quantiser is kept until the
collection outgrows it (``rag.store.dense.update_dense``). The new version is written to a
temporary folder and published with an atomic link swap (``layout.publish``), so a crash or
a kill leaves the previous index intact.

With ``RAG_VECTOR_STORE=milvus`` the chunk vectors go to a Milvus collection instead of
``dense.faiss``: the build upserts the chunks the collection lacks (and those of new or
changed documents) and deletes the ones gone, by chunk id, just before it publishes; the
manifest records the collection (``rag.store.milvus``). Everything else in the version
folder is the same.

With the Ray engine (``rag.store.ray_engine``) the workers write their results as shard
files in ``versions/tmp-<build>.shards`` (``rag.store.shards``), which the build merges in
corpus order and deletes after the publish or the failure; it is never published.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bm25s
import faiss
import numpy as np
from tqdm import tqdm

from rag.annotate import Annotator
from rag.chunking import Chunker, ChunkerSettings, text_hash
from rag.config import Settings
from rag.embedding import Embedder, build_embedder
from rag.errors import DocumentLoadError, RagError, VectorStoreError
from rag.ingest import discover, document_id, load_document
from rag.lexical import terms
from rag.store.dense import (
    DenseInfo,
    DenseKind,
    DenseSettings,
    build_dense,
    update_dense,
)
from rag.store.files import fsync_path, sha256_bytes, sha256_file
from rag.store.index import (
    DENSE,
    LEXICAL,
    IndexData,
    read_data,
    read_dense,
)
from rag.store.layout import current_version, new_version_dir, publish, remove_stale
from rag.store.manifest import FORMAT_VERSION, Manifest, SourceFile, read_manifest, verify_files
from rag.store.milvus import ChunkRow, MilvusSettings, MilvusVectors, resolve_uri
from rag.store.ray_engine import LoadFailure, RayEngine
from rag.store.records import RECORDS, write_records
from rag.store.shards import ShardSet, merge_records, merge_vectors, remove_staging, staging_dir
from rag.types import Annotations, Chunk, Document

log = logging.getLogger(__name__)

#: Bump when loading, cleaning or metadata extraction changes what a file becomes:
#: every document is then processed again even if its file did not change.
INGEST_VERSION = 1

#: Per-file steps show a progress bar only for corpora large enough to take a while.
_BAR_MIN_FILES = 200


#: What surrogateescape makes of the bytes of a file name that is not UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _skip(report: BuildReport, rel: str, reason: str) -> None:
    log.warning("skipped %s: %s", _printable(rel), reason)
    report.skipped.append((rel, reason))


class BuildLockedError(RagError):
    code = "index_locked"


@dataclass(slots=True)
class BuildReport:
    """What a build did; printed as the final summary."""

    path: Path
    documents: int = 0
    chunks: int = 0
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: Skipped for a reason that may pass (a loader crash): tried again by the next build.
    retry: set[str] = field(default_factory=set)
    embedded: int = 0
    seconds: float = 0.0
    up_to_date: bool = False
    full_rebuild_reason: str | None = None
    #: Shard files merged per step of the engine (``load``, ``prepare``, ``embed``);
    #: empty for the local engine, which hands nothing between processes.
    shards: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready fields (``rag index --report``, the admin reindex route)."""
        return {
            "version": self.path.name,
            "documents": self.documents,
            "chunks": self.chunks,
            "new": self.new,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": len(self.unchanged),
            "skipped": [
                {"path": p.encode("utf-8", "backslashreplace").decode(), "reason": r}
                for p, r in self.skipped
            ],
            "embedded": self.embedded,
            "seconds": round(self.seconds, 2),
            "up_to_date": self.up_to_date,
            "shards": dict(self.shards),
            "summary": self.summary(),
        }

    def summary(self) -> str:
        state = "index up to date" if self.up_to_date else f"index written to {self.path}"
        return (
            f"{state}: {self.documents} documents, {self.chunks} chunks | new {len(self.new)}, "
            f"changed {len(self.changed)}, removed {len(self.removed)}, unchanged "
            f"{len(self.unchanged)}, skipped {len(self.skipped)} | embedded {self.embedded} "
            f"chunks{self._shards_summary()} | {self.seconds:.1f} s"
        )

    def _shards_summary(self) -> str:
        if not self.shards:
            return ""
        return " | shards merged " + ", ".join(f"{k} {n}" for k, n in self.shards.items())


@dataclass(slots=True)
class _Previous:
    """The live index, as far as it can be reused."""

    manifest: Manifest
    data: IndexData
    by_path: dict[str, Document]
    #: The live dense index, loaded (an IVF update changes this copy in place); None when
    #: the vectors are in Milvus.
    dense: faiss.Index | None
    dense_info: DenseInfo
    #: The previous chunk vectors of the given rows (from FAISS's copy, or from Milvus).
    chunk_vectors: Callable[[list[int]], np.ndarray]
    #: The Milvus collection holds exactly the previous version's chunks (FAISS: True).
    store_in_sync: bool = True


@dataclass(slots=True)
class _EmbedJob:
    """Texts to vectorise, and what a previous build embedded (reused by text hash)."""

    texts: list[str]
    previous_texts: list[str]
    #: The previous vectors of the given rows of ``previous_texts`` (None: no previous).
    previous: Callable[[list[int]], np.ndarray] | None


@contextmanager
def _lock(index_dir: Path) -> Iterator[None]:
    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildLockedError(f"another build of {index_dir} is running") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class IndexBuilder:
    """Turns a corpus folder into an index folder."""

    def __init__(
        self,
        *,
        embedder: Embedder,
        annotator: Annotator,
        chunker_settings: ChunkerSettings,
        max_file_bytes: int,
        batch_size: int = 64,
        keep_versions: int = 3,
        max_document_chars: int | None = None,
        max_zip_ratio: float | None = None,
        dense: DenseSettings | None = None,
        milvus: MilvusSettings | None = None,
        engine: RayEngine | None = None,
    ) -> None:
        self.embedder = embedder
        self.annotator = annotator
        self.chunker_settings = chunker_settings
        self.max_file_bytes = max_file_bytes
        self.batch_size = batch_size
        #: Versions kept after a publish: a running service may still serve the previous.
        self.keep_versions = keep_versions
        self.max_document_chars = max_document_chars
        self.max_zip_ratio = max_zip_ratio
        self.dense = dense or DenseSettings()
        #: The Milvus collection that holds the vectors, or None for ``dense.faiss``. An
        #: empty ``uri`` is the milvus-lite file inside the index folder being built.
        self.milvus = milvus
        #: Where loading, annotating, chunking and embedding run: None in this process,
        #: or on Ray (``rag.store.ray_engine``); the rest of the build is the same.
        self.engine = engine

    @classmethod
    def from_settings(cls, settings: Settings, *, engine: RayEngine | None = None) -> IndexBuilder:
        return cls(
            engine=engine,
            embedder=build_embedder(settings.embedding_model),
            annotator=Annotator(settings.spacy_model),
            chunker_settings=ChunkerSettings(settings.chunk_tokens, settings.chunk_overlap),
            max_file_bytes=settings.max_file_bytes,
            batch_size=settings.embed_batch_size,
            keep_versions=settings.index_keep_versions,
            max_document_chars=settings.max_document_chars,
            max_zip_ratio=settings.max_zip_ratio,
            dense=DenseSettings(
                kind=DenseKind(settings.dense_index),
                ivf_min_chunks=settings.dense_ivf_min_chunks,
                nlist=settings.dense_nlist,
                nprobe=settings.dense_nprobe,
                retrain_growth=settings.dense_retrain_growth,
            ),
            milvus=(
                MilvusSettings(
                    uri=settings.milvus_uri,
                    collection=settings.milvus_collection,
                    token=(
                        settings.milvus_token.get_secret_value() if settings.milvus_token else None
                    ),
                    index_type=settings.milvus_index_type,
                )
                if settings.vector_store == "milvus"
                else None
            ),
        )

    def milvus_for(self, index_dir: Path) -> MilvusSettings | None:
        """The Milvus settings of a build into ``index_dir`` (the default file resolved)."""
        if self.milvus is None:
            return None
        return dataclasses.replace(self.milvus, uri=resolve_uri(self.milvus.uri, index_dir))

    def vector_store_for(self, index_dir: Path) -> dict[str, object]:
        """What the manifest of a build into ``index_dir`` records as the vector store."""
        milvus = self.milvus_for(index_dir)
        return {"kind": "faiss"} if milvus is None else milvus.describe(index_dir)

    def settings_fingerprint(self) -> dict[str, object]:
        """What must match for a previous index's parts to be reused."""
        return {
            "format_version": FORMAT_VERSION,
            "embedding_model": self.embedder.model_id,
            "chunker": self.chunker_settings.to_dict(),
            "annotator": self.annotator.model_name,
            "ingest_version": INGEST_VERSION,
        }

    def build(
        self, corpus_dir: Path, index_dir: Path, *, progress: bool = False, force: bool = False
    ) -> BuildReport:
        started = time.perf_counter()
        if not corpus_dir.is_dir():
            raise RagError(f"corpus folder not found: {corpus_dir}")
        with _lock(index_dir):
            remove_stale(index_dir, self.keep_versions)  # leftovers of a crashed build
            # The engine's workers write their results here (inside the index folder, the
            # path a cluster shares); never published, removed whatever happens next.
            staging = (
                staging_dir(index_dir, datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ"))
                if self.engine is not None
                else None
            )
            try:
                report = self._build(
                    corpus_dir,
                    index_dir,
                    progress=progress,
                    force=force,
                    started=started,
                    staging=staging,
                )
            finally:
                remove_staging(staging)
        report.seconds = time.perf_counter() - started
        return report

    # -- steps -------------------------------------------------------------------------

    def _previous(self, index_dir: Path, report: BuildReport) -> _Previous | None:
        live = current_version(index_dir)
        if live is None:
            report.full_rebuild_reason = "no previous index"
            return None
        try:
            manifest = read_manifest(live)
            verify_files(live, manifest)
            if self._manifest_settings(manifest) != self.settings_fingerprint():
                report.full_rebuild_reason = "settings or model changed since the last build"
                return None
            if not self._same_store(manifest.vector_store, index_dir):
                report.full_rebuild_reason = "vector store changed since the last build"
                return None
            dense_info = DenseInfo.from_dict(manifest.dense)
            if manifest.vector_store_kind == "milvus":
                return self._previous_milvus(index_dir, live, manifest, dense_info)
            dense = read_dense(live)
            data = read_data(live, dense)
        except (RagError, OSError, RuntimeError, TypeError, ValueError) as exc:
            report.full_rebuild_reason = f"previous index unusable: {exc}"
            log.warning("%s", report.full_rebuild_reason)
            return None
        by_path = {d.source_path: d for d in data.documents}
        vectors = data.vectors
        return _Previous(
            manifest, data, by_path, dense, dense_info, lambda rows: vectors[np.asarray(rows)]
        )

    def _same_store(self, recorded: dict[str, object], index_dir: Path) -> bool:
        """The live version's vectors are where this build would put them."""
        wanted = self.vector_store_for(index_dir)
        keys = ("kind", "collection") if wanted["kind"] == "milvus" else ("kind",)
        return all(recorded.get(k, "faiss" if k == "kind" else None) == wanted[k] for k in keys)

    def _previous_milvus(
        self, index_dir: Path, live: Path, manifest: Manifest, dense_info: DenseInfo
    ) -> _Previous:
        """The live version's records; its vectors stay in Milvus, fetched only when reused."""
        data = read_data(live, None)
        settings = self.milvus_for(index_dir)
        assert settings is not None
        store = MilvusVectors.open(settings)
        try:
            # Ids, not a count: a build that died between its sync and its publish may have
            # left as many rows as the live version has, but not the same ones.
            in_sync = store.ids() == {c.id for c in data.chunks}
        finally:
            store.close()
        chunks = data.chunks

        def chunk_vectors(rows: list[int]) -> np.ndarray:
            reader = MilvusVectors.open(settings)
            try:
                return reader.vectors([chunks[r].id for r in rows], missing_ok=True)
            finally:
                reader.close()

        by_path = {d.source_path: d for d in data.documents}
        return _Previous(manifest, data, by_path, None, dense_info, chunk_vectors, in_sync)

    @staticmethod
    def _manifest_settings(manifest: Manifest) -> dict[str, object]:
        return {
            "format_version": manifest.format_version,
            "embedding_model": manifest.embedding_model,
            "chunker": manifest.chunker,
            "annotator": manifest.annotator,
            "ingest_version": manifest.ingest_version,
        }

    def _build(
        self,
        corpus_dir: Path,
        index_dir: Path,
        *,
        progress: bool,
        force: bool,
        started: float,
        staging: Path | None = None,
    ) -> BuildReport:
        report = BuildReport(path=index_dir)
        previous = None if force else self._previous(index_dir, report)
        if force:
            report.full_rebuild_reason = "forced"
        if not force:
            self._check_collection_owner(index_dir)

        files = discover(corpus_dir)
        hashes = self._hash(corpus_dir, files, report, progress=progress)
        if (
            previous is not None
            and self._unchanged(previous.manifest, hashes)
            and self._dense_current(previous.dense_info)
            and previous.store_in_sync
        ):
            report.up_to_date = True
            report.path = current_version(index_dir) or index_dir
            report.documents = len(previous.data.documents)
            report.chunks = len(previous.data.chunks)
            report.unchanged = [d.id for d in previous.data.documents]
            report.skipped = [(s["path"], s["reason"]) for s in previous.manifest.skipped]
            return report

        documents, reused, to_process = self._load(
            corpus_dir, files, hashes, previous, report, progress=progress, staging=staging
        )
        # The local engine runs spaCy in a thread beside chunking and embedding (chunks do
        # not depend on annotations): spaCy takes one core and the embedder the rest until
        # spaCy is done (``Embedder.embed(sharing=...)``).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-annotate") as annotating:
            chunker = Chunker(self.chunker_settings, self.embedder.count_tokens)
            chunks: list[Chunk] = []
            annotations: dict[str, Annotations] = {}
            prev_chunks: dict[str, list[Chunk]] = {}
            prev_rows: dict[str, list[int]] = {}
            prev_ann: dict[str, Annotations] = {}
            if previous is not None:
                for row, c in enumerate(previous.data.chunks):
                    prev_chunks.setdefault(c.document_id, []).append(c)
                    prev_rows.setdefault(c.document_id, []).append(row)
                prev_ann = {a.document_id: a for a in previous.data.annotations}
            #: New row of each previous chunk kept as it was (-1: gone), for the dense update.
            kept = np.full(len(previous.data.chunks) if previous else 0, -1, dtype=np.int64)
            fresh = [d for d in documents if d.id in to_process]
            prepared: dict[str, list[Chunk]] = {}
            spacy: Future[list[Annotations]] | None = None
            if fresh and self.engine is not None:
                assert staging is not None
                merged = self._merge(self.engine.prepare(fresh, staging), report)
                for doc, out in zip(fresh, merged, strict=True):
                    annotations[doc.id] = Annotations.from_dict(out["annotations"])
                    prepared[doc.id] = [Chunk.from_dict(c) for c in out["chunks"]]
            elif fresh:
                spacy = annotating.submit(self.annotator.annotate, fresh, progress=progress)
            for doc in documents:
                if doc.id in reused:
                    old_rows = prev_rows.get(doc.id, [])
                    kept[old_rows] = np.arange(len(chunks), len(chunks) + len(old_rows))
                    chunks.extend(prev_chunks.get(doc.id, []))
                    annotations[doc.id] = prev_ann.get(doc.id, Annotations(document_id=doc.id))
                elif doc.id in prepared:
                    chunks.extend(prepared[doc.id])
                else:
                    chunks.extend(chunker.split(doc))
            prev_chunk_texts = [c.text for c in previous.data.chunks] if previous else []
            dimension = int(previous.manifest.embedding["dimension"]) if previous else None
            chunk_job = _EmbedJob(
                [c.text for c in chunks],
                prev_chunk_texts,
                previous.chunk_vectors if previous else None,
            )
            vectors, embedded = self._embed_cached(
                chunk_job,
                dimension,
                progress=progress,
                report=report,
                staging=staging,
                sharing=(lambda: not spacy.done()) if spacy is not None else None,
            )
            if spacy is not None:
                for doc, ann in zip(fresh, spacy.result(), strict=True):
                    annotations[doc.id] = ann
            data = IndexData(documents, chunks, [annotations[d.id] for d in documents], vectors)
        report.embedded = embedded
        report.documents, report.chunks = len(documents), len(chunks)
        tmp = new_version_dir(index_dir, datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ"))
        manifest = self._manifest(hashes, documents, report, data.vectors)
        manifest.vector_store = self.vector_store_for(index_dir)
        milvus = self.milvus_for(index_dir)
        dense: faiss.Index | None = None
        if milvus is not None:
            info = DenseInfo("milvus", len(chunks), int(data.vectors.shape[1]))
        elif previous is not None and previous.dense is not None:
            dense, info = update_dense(
                previous.dense, previous.dense_info, data.vectors, kept, self.dense
            )
        else:
            dense, info = build_dense(data.vectors, self.dense)
        manifest.dense = info.to_dict()
        self._write(tmp, data, dense, manifest, started=started)
        if milvus is not None:
            # After the files are written (a failure there leaves Milvus alone), before the
            # publish: the new version must find every one of its vectors.
            self._sync_milvus(milvus, data, to_process)
        report.path = publish(index_dir, tmp)
        remove_stale(index_dir, self.keep_versions)
        return report

    @staticmethod
    def _hash(
        corpus_dir: Path, files: list[Path], report: BuildReport, *, progress: bool
    ) -> dict[str, str]:
        """sha256 of each file by relative path; a file that cannot be hashed is skipped.

        Files come and go while a build runs: one deleted after discovery is skipped
        with its reason instead of ending the build.
        """
        hashes: dict[str, str] = {}
        bar = tqdm(
            files, desc="hash", unit="file", disable=not progress or len(files) < _BAR_MIN_FILES
        )
        for path in bar:
            rel = path.relative_to(corpus_dir).as_posix()
            if _SURROGATE.search(rel):
                _skip(report, _printable(rel), "file name is not valid UTF-8: rename the file")
                continue
            try:
                hashes[rel] = sha256_file(path)
            except OSError as exc:
                reason = f"cannot read file (removed during the build?): {exc.strerror or exc}"
                _skip(report, rel, reason)
        return hashes

    def _check_collection_owner(self, index_dir: Path) -> None:
        """Refuse to take over a non-empty Milvus collection that another index fills.

        A build makes the collection hold exactly its own chunks, deleting the rest: a
        second index folder (an evaluation corpus, a colleague's build) pointed at the
        same server and collection would wipe the first. A collection is this index's
        when the live version's manifest names it, or when it is empty; ``--force``
        takes it over anyway.
        """
        milvus = self.milvus_for(index_dir)
        if milvus is None:
            return
        live = current_version(index_dir)
        if live is not None:
            try:
                recorded = read_manifest(live).vector_store
            except RagError:
                recorded = {}
            if self._same_store(recorded, index_dir):
                return
        if not MilvusVectors.exists(milvus):
            return
        store = MilvusVectors.open(milvus)
        try:
            held = store.count()
        finally:
            store.close()
        if held:
            raise VectorStoreError(
                f"Milvus collection {milvus.collection!r} at {milvus.uri} already holds {held} "
                f"chunks of another index than {index_dir}: set RAG_MILVUS_COLLECTION to a "
                "collection of its own, or `rag index --force` to replace its contents"
            )

    @staticmethod
    def _sync_milvus(settings: MilvusSettings, data: IndexData, rewrite: set[str]) -> None:
        """Upsert and delete by chunk id until the collection holds this version's chunks."""
        dates = {d.id: d.date for d in data.documents}
        position: dict[str, int] = {}
        rows: list[ChunkRow] = []
        for chunk in data.chunks:
            n = position.get(chunk.document_id, 0)
            position[chunk.document_id] = n + 1
            rows.append(
                ChunkRow(
                    chunk_id=chunk.id,
                    document_id=chunk.document_id,
                    position=n,
                    date=dates.get(chunk.document_id),
                    text=chunk.text,
                    terms=" ".join(terms(chunk.text)),
                )
            )
        store = MilvusVectors.create_or_open(settings, int(data.vectors.shape[1]))
        try:
            vectors = data.vectors
            store.sync(rows, lambda i: vectors[i], rewrite=rewrite)
        finally:
            store.close()

    def _dense_current(self, info: DenseInfo) -> bool:
        """The live dense index is of the type (and cells) the settings ask for its size.

        Otherwise an unchanged corpus is still rebuilt (embedding nothing), so that a
        changed ``RAG_DENSE_INDEX`` or ``RAG_DENSE_NLIST`` takes effect on the next build.
        """
        if self.milvus is not None or info.kind == "milvus":
            return self.milvus is not None and info.kind == "milvus"
        wanted = self.dense.kind_for(info.ntotal)
        if wanted.value != info.kind:
            return False
        return wanted is DenseKind.FLAT or self.dense.nlist in (0, info.nlist)

    @staticmethod
    def _unchanged(manifest: Manifest, hashes: dict[str, str]) -> bool:
        known = {p: s.sha256 for p, s in manifest.sources.items()}
        # A file skipped before it could be hashed has no sha256 and no entry in hashes.
        known.update({s["path"]: s["sha256"] for s in manifest.skipped if s["sha256"]})
        return known == hashes

    def _load(
        self,
        corpus_dir: Path,
        files: list[Path],
        hashes: dict[str, str],
        previous: _Previous | None,
        report: BuildReport,
        *,
        progress: bool,
        staging: Path | None = None,
    ) -> tuple[list[Document], set[str], set[str]]:
        """Documents in corpus order; ids reused from the previous index; ids to process."""
        documents: list[Document] = []
        reused: set[str] = set()
        to_process: set[str] = set()
        seen: dict[str, str] = {}
        prev_sources = previous.manifest.sources if previous else {}
        preloaded = self._preload(corpus_dir, files, hashes, previous, report, staging)
        bar = tqdm(
            files, desc="load", unit="file", disable=not progress or len(files) < _BAR_MIN_FILES
        )
        for path in bar:
            rel = path.relative_to(corpus_dir).as_posix()
            if rel not in hashes:  # skipped while hashing
                continue
            doc_id = document_id(path, corpus_dir)
            if doc_id in seen:
                reason = f"duplicate document id {doc_id!r} (also {seen[doc_id]})"
                log.warning("skipped %s: %s", rel, reason)
                report.skipped.append((rel, reason))
                continue
            old = prev_sources.get(rel)
            if previous is not None and old is not None and old.sha256 == hashes[rel]:
                doc = previous.by_path.get(rel)
                if doc is not None:
                    documents.append(doc)
                    reused.add(doc.id)
                    seen[doc_id] = rel
                    report.unchanged.append(doc.id)
                    continue
            outcome = preloaded.get(rel)
            if isinstance(outcome, LoadFailure):  # loaded (and failed) on the engine
                _skip(report, rel, outcome.reason)
                if outcome.retry:
                    report.retry.add(rel)
                continue
            try:
                doc = outcome or load_document(
                    path,
                    corpus_dir,
                    max_bytes=self.max_file_bytes,
                    max_chars=self.max_document_chars,
                    max_zip_ratio=self.max_zip_ratio,
                )
            except DocumentLoadError as exc:
                _skip(report, rel, exc.reason)
                continue
            except Exception as exc:  # a loader's own failure: this file, not the build
                _skip(report, rel, f"failed to load: {exc.__class__.__name__}: {exc}")
                report.retry.add(rel)
                continue
            seen[doc_id] = rel
            documents.append(doc)
            to_process.add(doc.id)
            (report.changed if old is not None else report.new).append(doc.id)
        current = {document_id(p, corpus_dir) for p in files}
        if previous is not None:
            report.removed = sorted(d.id for d in previous.data.documents if d.id not in current)
        return documents, reused, to_process

    def _preload(
        self,
        corpus_dir: Path,
        files: list[Path],
        hashes: dict[str, str],
        previous: _Previous | None,
        report: BuildReport,
        staging: Path | None,
    ) -> dict[str, Document | LoadFailure]:
        """With an engine, every file that will not be reused, loaded there at once (its
        workers write the documents as shards in ``staging``, merged here).

        The same files ``_load`` would load one by one (a possible duplicate id too: which
        of two files keeps an id depends on which loads, as it does locally).
        """
        if self.engine is None:
            return {}
        assert staging is not None
        prev_sources = previous.manifest.sources if previous else {}
        wanted: list[Path] = []
        for path in files:
            rel = path.relative_to(corpus_dir).as_posix()
            if rel not in hashes:
                continue
            old = prev_sources.get(rel)
            reusable = (
                previous is not None
                and old is not None
                and old.sha256 == hashes[rel]
                and rel in previous.by_path
            )
            if not reusable:
                wanted.append(path)
        outcomes: list[Document | LoadFailure] = [
            Document.from_dict(row["doc"])
            if row["doc"] is not None
            else LoadFailure(str(row["error"]), bool(row["retry"]))
            for row in self._merge(self.engine.load(wanted, corpus_dir, staging), report)
        ]
        return {
            p.relative_to(corpus_dir).as_posix(): o for p, o in zip(wanted, outcomes, strict=True)
        }

    @staticmethod
    def _merge(shards: ShardSet, report: BuildReport) -> list[dict[str, Any]]:
        """The rows of an engine step's shard files, in input order; counted in ``report``."""
        report.shards[shards.step] = len(shards.paths)
        return merge_records(shards)

    def _embed_texts(
        self,
        texts: list[str],
        *,
        progress: bool,
        report: BuildReport,
        staging: Path | None,
        sharing: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """Vectors of ``texts``: on the engine's embed actors (merged from their shards), or
        with this process's model."""
        if self.engine is not None:
            assert staging is not None
            shards = self.engine.embed(texts, staging)
            report.shards[shards.step] = len(shards.paths)
            return merge_vectors(shards)
        return self.embedder.embed(
            texts, batch_size=self.batch_size, progress=progress, sharing=sharing
        )

    def _embed_cached(
        self,
        job: _EmbedJob,
        dimension: int | None,
        *,
        progress: bool,
        report: BuildReport,
        staging: Path | None = None,
        sharing: Callable[[], bool] | None = None,
    ) -> tuple[np.ndarray, int]:
        """One row per text of ``job``: rows copied for text embedded before, new
        embeddings for the rest; and how many texts were embedded now.

        ``job.previous(rows)`` gives the vectors of its ``previous_texts`` rows; it is
        called once, for the rows reused, so a Milvus store is asked only for those. A row
        it cannot give back (NaN: a collection left incomplete) is embedded again. With an
        engine the missing texts go in one Ray job (its actors load the model once).
        """
        reused, found, missing = self._plan(job)
        texts = [job.texts[i] for i in missing]
        fresh = (
            self._embed_texts(
                texts, progress=progress, report=report, staging=staging, sharing=sharing
            )
            if missing
            else None
        )
        reusing = job.previous is not None and bool(job.previous_texts)
        dim = dimension if reusing and dimension else None
        if dim is None:  # no previous index: the model's dimension, from what it embedded
            dim = int(fresh.shape[1]) if fresh is not None else self.embedder.dimension
        vectors = np.zeros((len(job.texts), dim), dtype=np.float32)
        if found is not None:
            vectors[reused] = np.nan_to_num(found)
        if fresh is not None:
            vectors[missing] = fresh
        return vectors, len(missing)

    @staticmethod
    def _plan(job: _EmbedJob) -> tuple[list[int], np.ndarray | None, list[int]]:
        """Rows of ``job`` reused (with their vectors) and rows to embed."""
        prev = job.previous if job.previous is not None and job.previous_texts else None
        cache = (
            {text_hash(t): i for i, t in enumerate(job.previous_texts)} if prev is not None else {}
        )
        missing: list[int] = []
        reused: list[int] = []
        reused_from: list[int] = []
        for i, text in enumerate(job.texts):
            row = cache.get(text_hash(text))
            if row is None:
                missing.append(i)
            else:
                reused.append(i)
                reused_from.append(row)
        found = prev(reused_from) if reused and prev is not None else None
        if found is not None:
            lost = np.isnan(found).any(axis=1)
            missing = sorted(missing + [i for i, gone in zip(reused, lost, strict=True) if gone])
        return reused, found, missing

    def _manifest(
        self,
        hashes: dict[str, str],
        documents: list[Document],
        report: BuildReport,
        vectors: np.ndarray,
    ) -> Manifest:
        sources = {
            d.source_path: SourceFile(document_id=d.id, sha256=hashes[d.source_path], size=d.size)
            for d in documents
        }
        fingerprint_rows = sorted((p, s.sha256) for p, s in sources.items())
        return Manifest(
            format_version=FORMAT_VERSION,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            build_seconds=0.0,
            embedding={
                "model_id": self.embedder.model_id,
                "dimension": int(vectors.shape[1]),
                "normalized": True,
                "max_tokens": self.chunker_settings.chunk_tokens,
            },
            chunker=self.chunker_settings.to_dict(),
            annotator=self.annotator.model_name,
            ingest_version=INGEST_VERSION,
            corpus_fingerprint=sha256_bytes(json.dumps(fingerprint_rows).encode()),
            sources=sources,
            skipped=[
                {"path": p, "reason": r, "sha256": "" if p in report.retry else hashes.get(p, "")}
                for p, r in report.skipped
            ],
            counts={"documents": len(documents), "chunks": int(vectors.shape[0])},
        )

    def _write(
        self,
        folder: Path,
        data: IndexData,
        dense: faiss.Index | None,
        manifest: Manifest,
        *,
        started: float,
        corpus_terms: Sequence[list[str]] | None = None,
    ) -> None:
        """Write a version's files and its manifest (with their checksums) into ``folder``.

        ``corpus_terms`` are the chunks' BM25 terms when the caller has them already
        (``bench/index_scale.py`` computes them once per distinct text); by default they
        are ``rag.lexical.terms`` of each chunk's text.
        """
        write_records(folder / RECORDS, data.documents, data.chunks, data.annotations)
        if dense is not None:  # None: the vectors are in Milvus
            faiss.write_index(dense, str(folder / DENSE))
        if corpus_terms is None:
            corpus_terms = [terms(c.text) for c in data.chunks]
        write_lexical(folder / LEXICAL, corpus_terms)
        names = [RECORDS] + ([DENSE] if dense is not None else [])
        names += sorted(
            p.relative_to(folder).as_posix() for p in (folder / LEXICAL).rglob("*") if p.is_file()
        )
        manifest.build_seconds = round(time.perf_counter() - started, 3)
        manifest.write(folder, names)
        for name in names:
            fsync_path(folder / name)


def write_lexical(path: Path, corpus_terms: Sequence[list[str]]) -> None:
    """The BM25 files of an index version: one row of terms per chunk, in row order."""
    lexical = bm25s.BM25()
    rows = [t or [""] for t in corpus_terms]
    lexical.index(rows or [[""]], show_progress=False)
    lexical.save(str(path), allow_pickle=False)
