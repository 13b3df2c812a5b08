"""Loading an index while new versions are published (and old ones retired) beside it."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from rag.store import Index, IndexBuilder
from rag.store.layout import VERSIONS, new_version_dir, publish, remove_stale, resolve_version

pytestmark = pytest.mark.slow

PUBLISHES = 40


@pytest.fixture(scope="module")
def two_versions(
    index_dir: Path, builder: IndexBuilder, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """Two version folders that differ: the whole corpus, and the corpus less one letter."""
    corpus = tmp_path_factory.mktemp("corpus-less-one")
    shutil.copytree(Path(__file__).resolve().parents[2] / "corpus", corpus, dirs_exist_ok=True)
    (corpus / "rudd-2016-10-24.txt").unlink()
    smaller = tmp_path_factory.mktemp("index-less-one")
    builder.build(corpus, smaller)
    return resolve_version(index_dir), resolve_version(smaller)


def _publish_copy(index_dir: Path, source: Path, n: int) -> None:
    tmp = new_version_dir(index_dir, f"v{n:04d}")
    shutil.copytree(source, tmp, dirs_exist_ok=True)
    publish(index_dir, tmp)


def _consistent(index: Index) -> bool:
    """Every file of the loaded index comes from the version its manifest describes."""
    manifest = index.manifest
    return (
        {s.document_id for s in manifest.sources.values()} == set(index.documents)
        and manifest.counts["chunks"] == len(index.chunks) == index.vectors.shape[0]
        and manifest.counts["documents"] == len(index.documents)
    )


@pytest.mark.parametrize("retire", [False, True], ids=["publish", "publish-and-retire"])
def test_loads_against_publishes_never_fail_or_mix(
    two_versions: tuple[Path, Path], tmp_path: Path, retire: bool
) -> None:
    index_dir = tmp_path / "idx"
    _publish_copy(index_dir, two_versions[0], 0)
    done = threading.Event()
    failures: list[BaseException] = []

    def publisher() -> None:
        try:
            for n in range(1, PUBLISHES + 1):
                _publish_copy(index_dir, two_versions[n % 2], n)
                if retire:
                    remove_stale(index_dir, keep=3)
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=publisher)
    thread.start()
    loads, mixed, errors = 0, 0, []
    try:
        while not done.is_set() or loads < 20:
            try:
                index = Index.load(index_dir)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            else:
                mixed += not _consistent(index)
                assert index.path.parent.name == VERSIONS
            loads += 1
    finally:
        thread.join(timeout=120)
    assert not failures, failures
    assert errors == [], f"{len(errors)} of {loads} loads failed, e.g. {errors[:3]}"
    assert mixed == 0, f"{mixed} of {loads} loads mixed files of two versions"
    if retire:
        assert len(list((index_dir / VERSIONS).iterdir())) == 3
