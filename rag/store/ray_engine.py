"""The Ray indexing engine: read, clean, annotate, chunk and embed on a Ray cluster.

``rag index --engine ray`` runs the three costly steps of a build as Ray Data jobs and
keeps everything else where it is: the builder still decides what is new, changed or
unchanged, reuses what it can, merges the results in corpus order and writes, checksums
and publishes the version exactly as the local engine does (``rag.store.builder``). So
the index is the same format, and a build that fails anywhere publishes nothing.

1. **Load**: each file to (re)process is read and cleaned by a Ray task on whichever
   node runs it, so the corpus must be at the same path on every node (a shared
   filesystem; README "Scaling out").
2. **Annotate and chunk**: an actor pool; each actor loads spaCy and the embedding
   model's tokenizer (chunk sizes are in its tokens) once, then takes batches of
   documents.
3. **Embed**: an actor pool; each actor loads the embedding model once and embeds
   batches of ``RAG_EMBED_BATCH_SIZE`` texts.

Each step's workers write their results as shard files (``rag.store.shards``) into the
build's staging folder, ``versions/tmp-<build>.shards`` inside the index folder (on a
cluster, a path every node shares), and hand back only the shards' names; the build
merges the shards in corpus order by the position every result carries, so the merge
never depends on the order Ray finishes in. The driver alone writes the index version,
and the staging folder is removed after the publish or the failure.

Ray Data restarts an actor whose process dies and retries its batch on another
(``max_restarts`` here; Ray's own default is to retry forever). A shard is renamed into
place only once it is whole, and a retried batch writes the same name again.

``ray[data]`` is an optional extra (``pip install 'rag[ray]'``), imported only here.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.annotate import Annotator
from rag.chunking import Chunker, ChunkerSettings
from rag.embedding import build_embedder
from rag.errors import DocumentLoadError, IndexingEngineError
from rag.store.shards import ShardSet, write_records, write_vectors
from rag.types import Document

if TYPE_CHECKING:  # pragma: no cover - typing only
    import ray.data

    from rag.config import Settings

log = logging.getLogger(__name__)

#: Documents per annotate-and-chunk batch: a few, so that the pool shares a small corpus.
DOCUMENTS_PER_BATCH = 4


@dataclass(frozen=True, slots=True)
class RayOptions:
    """Where the cluster is and how much of it a build uses."""

    #: ``None`` starts a local Ray; ``"auto"`` joins the cluster of this node
    #: (``ray start --head``); ``"ray://head:10001"`` connects through Ray Client.
    address: str | None = None
    #: Actors in each pool (and CPUs of a local Ray).
    workers: int = 2
    #: Restarts of a dead actor before the build fails (-1: Ray's default, forever).
    max_restarts: int = 3


@dataclass(frozen=True, slots=True)
class LoadLimits:
    """The ingest limits of ``rag.ingest.load_document``, sent to every loading task."""

    max_bytes: int
    max_chars: int | None
    max_zip_ratio: float | None


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """Why a file was not loaded, and whether the next build should try it again."""

    reason: str
    retry: bool


def _shard_row(name: str) -> dict[str, Any]:
    """What a worker hands back for a batch: the name of the shard it wrote."""
    return {"shard": np.array([name], dtype=object)}


def _load_batch(
    batch: dict[str, np.ndarray], root: str, limits: LoadLimits, shard_dir: str
) -> dict[str, Any]:
    """Ray task: read and clean files into a shard; a failure is the file's, not the build's.

    Each row: ``i``, ``doc`` (``Document.to_dict``, or None), ``error`` and ``retry``.
    """
    from rag.ingest import load_document

    docs: list[dict[str, Any] | None] = []
    errors: list[str] = []
    retries: list[bool] = []
    for path in batch["path"]:
        try:
            doc = load_document(
                Path(str(path)),
                Path(root),
                max_bytes=limits.max_bytes,
                max_chars=limits.max_chars,
                max_zip_ratio=limits.max_zip_ratio,
            )
        except DocumentLoadError as exc:
            docs.append(None)
            errors.append(exc.reason)
            retries.append(False)
            continue
        except Exception as exc:  # a loader's own failure: this file, not the build
            docs.append(None)
            errors.append(f"failed to load: {exc.__class__.__name__}: {exc}")
            retries.append(True)
            continue
        docs.append(doc.to_dict())
        errors.append("")
        retries.append(False)
    rows = [
        {"i": int(i), "doc": d, "error": e, "retry": r}
        for i, d, e, r in zip(batch["i"], docs, errors, retries, strict=True)
    ]
    return _shard_row(write_records(Path(shard_dir), "load", rows))


class PrepareActor:
    """Ray actor: annotates and chunks documents into shards; spaCy and the tokenizer load
    once. Each row: ``i``, ``annotations`` (``Annotations.to_dict``) and ``chunks``."""

    def __init__(
        self, spacy_model: str, embedding_model: str, chunker: dict[str, int], shard_dir: str
    ) -> None:
        self.shard_dir = Path(shard_dir)
        self.annotator = Annotator(spacy_model)
        self.embedder = build_embedder(embedding_model)
        self.annotator.warm_up()
        self.embedder.warm_up()
        self.chunker = Chunker(ChunkerSettings(**chunker), self.embedder.count_tokens)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        docs = [Document.from_dict(json.loads(str(d))) for d in batch["doc"]]
        annotations = self.annotator.annotate(docs)
        rows = [
            {
                "i": int(i),
                "annotations": a.to_dict(),
                "chunks": [c.to_dict() for c in self.chunker.split(d)],
            }
            for i, d, a in zip(batch["i"], docs, annotations, strict=True)
        ]
        return _shard_row(write_records(self.shard_dir, "prepare", rows))


class EmbedActor:
    """Ray actor: embeds batches of texts into ``.npz`` shards; the model loads once."""

    def __init__(self, embedding_model: str, shard_dir: str) -> None:
        self.shard_dir = Path(shard_dir)
        self.embedder = build_embedder(embedding_model)
        self.embedder.warm_up()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        texts = [str(t) for t in batch["text"]]
        vectors = self.embedder.embed(texts, batch_size=max(len(texts), 1))
        return _shard_row(write_vectors(self.shard_dir, "embed", batch["i"], vectors))


class RayEngine:
    """Runs a build's load, annotate-and-chunk and embed steps as Ray Data jobs."""

    def __init__(
        self,
        options: RayOptions,
        *,
        embedding_model: str,
        spacy_model: str,
        chunker_settings: ChunkerSettings,
        batch_size: int,
        limits: LoadLimits,
        prepare_actor: type[PrepareActor] = PrepareActor,
        embed_actor: type[EmbedActor] = EmbedActor,
    ) -> None:
        if options.workers < 1:
            raise ValueError("workers must be at least 1")
        self.options = options
        self.embedding_model = embedding_model
        self.spacy_model = spacy_model
        self.chunker_settings = chunker_settings
        self.batch_size = batch_size
        self.limits = limits
        #: The actor classes (a test gives subclasses that kill their own process).
        self.prepare_actor = prepare_actor
        self.embed_actor = embed_actor

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        options: RayOptions,
        *,
        embed_actor: type[EmbedActor] = EmbedActor,
    ) -> RayEngine:
        """The engine for ``settings``: the same models, chunking and load limits as the
        local build, so both engines produce the same index."""
        return cls(
            options,
            embedding_model=settings.embedding_model,
            spacy_model=settings.spacy_model,
            chunker_settings=ChunkerSettings(settings.chunk_tokens, settings.chunk_overlap),
            batch_size=settings.embed_batch_size,
            limits=LoadLimits(
                settings.max_file_bytes, settings.max_document_chars, settings.max_zip_ratio
            ),
            embed_actor=embed_actor,
        )

    # -- the cluster ---------------------------------------------------------------------

    def _ray(self) -> Any:
        """The ``ray`` module, connected: a running Ray is used as it is."""
        try:
            import ray
            import ray.data
        except ImportError as exc:
            raise IndexingEngineError(
                "`rag index --engine ray` needs Ray Data: pip install 'rag[ray]'"
            ) from exc
        if not ray.is_initialized():
            # Ray reports usage statistics by default; nothing leaves the machine unasked.
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            try:
                if self.options.address is None:
                    ray.init(num_cpus=self.options.workers, include_dashboard=False)
                else:
                    ray.init(address=self.options.address)
            except Exception as exc:  # ConnectionError, RuntimeError, ray's own
                raise IndexingEngineError(
                    f"cannot start or reach Ray at {self.options.address or 'a local Ray'}: {exc}"
                ) from exc
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        return ray

    def _run(
        self, dataset: ray.data.Dataset, step: str, label: str, staging: Path, rows: int
    ) -> ShardSet:
        """Run a job whose workers write ``step`` shards into ``staging``: the shards.

        Only the shards' names come back through Ray; the results stay in the files.
        """
        try:
            names = [str(row["shard"]) for row in dataset.take_all()]
        except Exception as exc:  # a job that ran out of retries: the build fails
            raise IndexingEngineError(f"Ray {label} failed: {exc}") from exc
        log.info("Ray %s: %d rows in %d shards in %s", label, rows, len(set(names)), staging)
        return ShardSet(staging, step, rows, names)

    def _map_actors(
        self, dataset: ray.data.Dataset, actor: type, kwargs: dict[str, Any], batch_size: int
    ) -> ray.data.Dataset:
        """``dataset`` through a fixed pool of ``actor``s whose deaths are bounded.

        Ray Data's default restarts a dead actor and retries its batch forever, so one
        input that kills every worker would hang the build; ``max_restarts`` bounds both.
        Ray 2.60 takes them only as the ``ray_remote_args`` it warns are deprecated.
        """
        import ray.data

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            return dataset.map_batches(
                actor,
                fn_constructor_kwargs=kwargs,
                batch_size=batch_size,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=self.options.workers),
                max_restarts=self.options.max_restarts,
                max_task_retries=self.options.max_restarts,
            )

    # -- the steps -----------------------------------------------------------------------

    def load(self, paths: list[Path], corpus_dir: Path, staging: Path) -> ShardSet:
        """Each file read and cleaned by a Ray task (the paths must be visible to workers),
        into ``load`` shards in ``staging``."""
        if not paths:
            return ShardSet(staging, "load", 0)
        ray = self._ray()
        items = [{"i": i, "path": str(p.absolute())} for i, p in enumerate(paths)]
        dataset = ray.data.from_items(items).map_batches(
            _load_batch,
            fn_kwargs={
                "root": str(corpus_dir.absolute()),
                "limits": self.limits,
                "shard_dir": str(staging),
            },
            batch_size=DOCUMENTS_PER_BATCH,
            batch_format="numpy",
        )
        return self._run(dataset, "load", "load", staging, len(items))

    def prepare(self, documents: list[Document], staging: Path) -> ShardSet:
        """Annotations and chunks of each document, by the prepare actors, into
        ``prepare`` shards in ``staging``."""
        if not documents:
            return ShardSet(staging, "prepare", 0)
        ray = self._ray()
        items = [
            {"i": i, "doc": json.dumps(d.to_dict(), ensure_ascii=False)}
            for i, d in enumerate(documents)
        ]
        dataset = self._map_actors(
            ray.data.from_items(items),
            self.prepare_actor,
            {
                "spacy_model": self.spacy_model,
                "embedding_model": self.embedding_model,
                "chunker": {
                    "chunk_tokens": self.chunker_settings.chunk_tokens,
                    "chunk_overlap": self.chunker_settings.chunk_overlap,
                },
                "shard_dir": str(staging),
            },
            DOCUMENTS_PER_BATCH,
        )
        return self._run(dataset, "prepare", "annotate and chunk", staging, len(items))

    def embed(self, texts: list[str], staging: Path) -> ShardSet:
        """L2-normalised vectors of ``texts``, by the embed actors, into ``embed`` shards
        in ``staging`` (one vector per text)."""
        if not texts:
            return ShardSet(staging, "embed", 0)
        ray = self._ray()
        items = [{"i": i, "text": t} for i, t in enumerate(texts)]
        dataset = self._map_actors(
            ray.data.from_items(items),
            self.embed_actor,
            {"embedding_model": self.embedding_model, "shard_dir": str(staging)},
            self.batch_size,
        )
        return self._run(dataset, "embed", "embed", staging, len(items))
