"""Loading an index while new versions are published (and old ones retired) beside it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rag.devserver import publish_copy
from rag.store import Index
from rag.store.layout import VERSIONS, remove_stale

pytestmark = pytest.mark.slow

PUBLISHES = 40


def _consistent(index: Index) -> bool:
    """Every file of the loaded index comes from the version its manifest describes."""
    manifest = index.manifest
    return (
        {s.document_id for s in manifest.sources.values()} == set(index.documents)
        and manifest.counts["chunks"] == len(index.chunks) == index.dense_info.ntotal
        and manifest.counts["documents"] == len(index.documents)
    )


@pytest.mark.parametrize("retire", [False, True], ids=["publish", "publish-and-retire"])
def test_loads_against_publishes_never_fail_or_mix(
    two_versions: tuple[Path, Path], tmp_path: Path, retire: bool
) -> None:
    index_dir = tmp_path / "idx"
    publish_copy(index_dir, two_versions[0])
    done = threading.Event()
    failures: list[BaseException] = []

    def publisher() -> None:
        try:
            for n in range(1, PUBLISHES + 1):
                publish_copy(index_dir, two_versions[n % 2])
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
