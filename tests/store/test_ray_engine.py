"""The Ray indexing engine on a real local Ray (2 CPUs), against the local engine.

Same corpus, same packaged models: the Ray engine must give the index the local engine
gives (chunk ids, texts, offsets, annotations; vectors within 1e-5), an embed worker
whose process dies in the middle of a batch must be replaced and its batch retried, and
a build whose workers keep dying must publish nothing.
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
from rag.store.builder import IndexBuilder
from rag.store.dense import vectors_of
from rag.store.index import Index
from rag.store.layout import VERSIONS, current_target
from rag.store.ray_engine import EmbedActor, RayEngine, RayOptions
from tests.conftest import make_settings

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

    def __init__(self, embedding_model: str) -> None:
        self.embedding_model = embedding_model

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        os._exit(1)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real Ray on this machine; the workers learn the marker's path from their env."""
    import ray

    marker = tmp_path_factory.mktemp("ray") / "kill-once"
    os.environ[MARKER_ENV] = str(marker)  # inherited by the Ray processes started here
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # CI has no internet to report to
    ray.init(num_cpus=2, include_dashboard=False)
    # Workers unpickle the test's actor classes by value: they cannot import tests/.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield marker
    finally:
        ray.shutdown()
        os.environ.pop(MARKER_ENV, None)


def ray_builder(
    builder: IndexBuilder, embed_actor: type[EmbedActor], max_restarts: int, workers: int = 2
) -> IndexBuilder:
    """The session's builder with the Ray engine (``workers`` actors per step)."""
    settings = make_settings()
    clone = copy.copy(builder)
    clone.engine = RayEngine.from_settings(
        settings,
        RayOptions(address=None, workers=workers, max_restarts=max_restarts),
        embed_actor=embed_actor,
    )
    return clone


def test_ray_engine_gives_the_local_index_even_when_a_worker_dies(
    local_ray: Path, builder: IndexBuilder, corpus_dir: Path, index_dir: Path, tmp_path: Path
) -> None:
    local_ray.write_text("die", encoding="utf-8")
    out = tmp_path / "ray-index"
    report = ray_builder(builder, DiesOnceEmbedActor, max_restarts=3).build(corpus_dir, out)
    assert not local_ray.exists()  # a worker did die mid-batch, and the build went on

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
    assert len(Index.load(out).documents) == 5  # the previous index, whole
