"""The Ray indexing engine on a real local Ray (2 CPUs), against the local engine.

Same corpus, same packaged models: the Ray engine must give the index the local engine
gives (chunk ids, texts, offsets, annotations; vectors within 1e-5), an embed worker
whose process dies in the middle of a batch must be replaced and its batch retried, and
a build whose workers keep dying must publish nothing. The workers' results reach the
build as shard files in a staging folder of the index folder, which no build leaves behind.
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.errors import IndexingEngineError
from rag.store import builder as builder_module
from rag.store.builder import IndexBuilder
from rag.store.dense import vectors_of
from rag.store.index import Index
from rag.store.layout import VERSIONS, current_target
from rag.store.ray_engine import EmbedActor, RayEngine, RayOptions
from rag.store.shards import SHARDS_SUFFIX, ShardSet
from tests.conftest import make_settings
from tests.engines import LocalRay

pytestmark = pytest.mark.slow

#: Set in the workers' environment: where the dying actors keep their one-shot marker.
MARKER_ENV = "RAG_TEST_KILL_MARKER"


class DiesOnceEmbedActor(EmbedActor):
    """An embed worker whose process exits mid-batch, once (a marker file says when)."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        marker = Path(os.environ[MARKER_ENV])
        try:
            marker.unlink()  # only one worker of the pool wins the race to die
        except FileNotFoundError:
            return super().__call__(batch)
        os._exit(1)  # the process is gone, as if the node lost it


class AlwaysDiesEmbedActor(EmbedActor):
    """An embed worker that never finishes a batch (so it need not load the model)."""

    def __init__(self, embedding_model: str, shard_dir: str) -> None:
        self.embedding_model = embedding_model

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        os._exit(1)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real Ray on this machine; the workers learn the marker's path from their env.

    Started with generous timeouts and retried once (tests/engines.py): on a loaded
    machine Ray's head once missed its default 30 s to publish the GCS port."""
    import ray

    marker = tmp_path_factory.mktemp("ray") / "kill-once"
    os.environ[MARKER_ENV] = str(marker)  # inherited by the Ray processes started here
    head = LocalRay(num_cpus=2)
    try:
        head.start()
        # Workers unpickle the test's actor classes by value: they cannot import tests/.
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        yield marker
    finally:
        head.stop()
        os.environ.pop(MARKER_ENV, None)


#: Texts per embed batch of the Ray engine: small, so that ``corpus/`` makes several shards.
EMBED_BATCH = 8


def ray_builder(
    builder: IndexBuilder, embed_actor: type[EmbedActor], max_restarts: int, workers: int = 2
) -> IndexBuilder:
    """The session's builder with the Ray engine (``workers`` actors per step)."""
    settings = make_settings(embed_batch_size=EMBED_BATCH)
    clone = copy.copy(builder)
    clone.engine = RayEngine.from_settings(
        settings,
        RayOptions(address=None, workers=workers, max_restarts=max_restarts),
        embed_actor=embed_actor,
    )
    return clone


def staging_left(index_dir: Path) -> list[str]:
    """Shard folders (or any unpublished folder) a build left in ``index_dir``."""
    return [
        p.name
        for p in (index_dir / VERSIONS).iterdir()
        if p.name.endswith(SHARDS_SUFFIX) or p.name.startswith("tmp-")
    ]


def test_ray_engine_gives_the_local_index_even_when_a_worker_dies(
    local_ray: Path,
    builder: IndexBuilder,
    corpus_dir: Path,
    index_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_ray.write_text("die", encoding="utf-8")
    out = tmp_path / "ray-index"
    # What the build merges: the shard files, seen on disk at the moment of the merge.
    merged: dict[str, list[tuple[Path, int]]] = {}
    shard_vectors: list[np.ndarray] = []

    def seen(shards: ShardSet) -> None:
        assert shards.paths, f"no {shards.step} shards"
        for path in shards.paths:
            assert path.is_file() and path.stat().st_size > 0
            assert path.parent.parent == out.absolute() / VERSIONS
            assert path.parent.name.endswith(SHARDS_SUFFIX)
        merged[shards.step] = [(p, p.stat().st_size) for p in shards.paths]

    def records(shards: ShardSet) -> list[dict[str, Any]]:
        seen(shards)
        return real_records(shards)

    def vectors(shards: ShardSet) -> np.ndarray:
        seen(shards)
        for path in shards.paths:
            with np.load(path) as shard:
                assert 1 <= len(shard["i"]) <= EMBED_BATCH  # one embed batch each
                shard_vectors.append(shard["vector"][np.argsort(shard["i"])])
        return real_vectors(shards)

    real_records, real_vectors = builder_module.merge_records, builder_module.merge_vectors
    monkeypatch.setattr(builder_module, "merge_records", records)
    monkeypatch.setattr(builder_module, "merge_vectors", vectors)
    engine_builder = ray_builder(builder, DiesOnceEmbedActor, max_restarts=3)
    report = engine_builder.build(corpus_dir, out)
    assert not local_ray.exists()  # a worker did die mid-batch, and the build went on

    # Every step's results came as shard files, all merged, and none is left.
    assert set(merged) == {"load", "prepare", "embed"}
    assert report.shards == {step: len(files) for step, files in merged.items()}
    assert report.to_dict()["shards"] == report.shards
    assert f"shards merged load {report.shards['load']}, prepare" in report.summary()
    assert report.embedded == report.chunks  # a first build: every chunk in a shard
    assert report.shards["embed"] >= -(-report.chunks // EMBED_BATCH) >= 2
    assert report.shards["prepare"] >= 2  # 5 documents, at most 4 a batch
    assert not any(path.exists() for files in merged.values() for path, _ in files)
    assert staging_left(out) == []

    local, remote = Index.load(index_dir), Index.load(out)  # both verified by checksum
    assert report.documents == len(local.documents) and report.skipped == []
    assert list(remote.documents) == list(local.documents)
    key = [(c.id, c.document_id, c.start, c.end, c.text) for c in local.chunks]
    assert [(c.id, c.document_id, c.start, c.end, c.text) for c in remote.chunks] == key
    for doc_id in local.documents:
        assert remote.documents[doc_id].to_dict() == local.documents[doc_id].to_dict()
        assert remote.annotations[doc_id].to_dict() == local.annotations[doc_id].to_dict()
    assert local._dense is not None and remote._dense is not None
    assert np.abs(vectors_of(remote._dense) - vectors_of(local._dense)).max() <= 1e-5
    # The published vectors are the shards' (in order: shards are named by first row).
    assert np.array_equal(np.concatenate(shard_vectors), vectors_of(remote._dense))
    assert remote.manifest.counts == local.manifest.counts
    assert remote.manifest.corpus_fingerprint == local.manifest.corpus_fingerprint


def test_a_build_whose_workers_keep_dying_publishes_nothing(
    local_ray: Path, builder: IndexBuilder, corpus_copy: Path, index_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "idx"
    shutil.copytree(index_dir, out, symlinks=True)  # the live index: a local build
    before = current_target(out)
    versions = sorted(p.name for p in (out / VERSIONS).iterdir())
    letter = corpus_copy / "rudd-2016-10-24.txt"
    letter.write_text(letter.read_text(encoding="utf-8") + "\n\nA new paragraph.\n", "utf-8")

    with pytest.raises(IndexingEngineError, match="embed"):
        ray_builder(builder, AlwaysDiesEmbedActor, max_restarts=1, workers=1).build(
            corpus_copy, out
        )
    assert current_target(out) == before
    assert sorted(p.name for p in (out / VERSIONS).iterdir()) == versions
    assert staging_left(out) == []  # the load and prepare shards written went too
    assert len(Index.load(out).documents) == 5  # the previous index, whole
