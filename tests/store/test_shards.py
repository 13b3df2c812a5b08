"""Shard files of a distributed build: written whole, merged in input order, complete."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.errors import IndexingEngineError
from rag.store.layout import VERSIONS, remove_stale
from rag.store.shards import (
    ShardSet,
    merge_records,
    merge_vectors,
    remove_staging,
    staging_dir,
    write_records,
    write_vectors,
)


def test_records_merge_in_input_order_whatever_order_the_shards_came_in(tmp_path: Path) -> None:
    names = [
        write_records(tmp_path, "prepare", [{"i": 3, "x": "d"}, {"i": 4, "x": "e"}]),
        write_records(tmp_path, "prepare", [{"i": 0, "x": "a"}, {"i": 2, "x": "c"}]),
        write_records(tmp_path, "prepare", [{"i": 1, "x": "b"}]),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temporary left
    rows = merge_records(ShardSet(tmp_path, "prepare", 5, names))
    assert [r["x"] for r in rows] == ["a", "b", "c", "d", "e"]


def test_a_retried_batch_rewrites_its_shard_and_a_missing_row_fails(tmp_path: Path) -> None:
    first = write_records(tmp_path, "load", [{"i": 0, "x": "a"}, {"i": 1, "x": "b"}])
    again = write_records(tmp_path, "load", [{"i": 0, "x": "a"}, {"i": 1, "x": "b"}])
    assert first == again and len(list(tmp_path.iterdir())) == 1
    # A half-written temporary (a worker killed mid-write) is never read.
    (tmp_path / f".{first}.123.tmp").write_text('{"i": 2', encoding="utf-8")
    assert len(merge_records(ShardSet(tmp_path, "load", 2, [first, again]))) == 2
    with pytest.raises(IndexingEngineError, match="lack 1 of 3 rows"):
        merge_records(ShardSet(tmp_path, "load", 3, [first]))


def test_vectors_merge_by_position(tmp_path: Path) -> None:
    vectors = np.random.default_rng(0).random((5, 3), dtype=np.float32)
    names = [
        write_vectors(tmp_path, "embed", np.array([4, 1]), vectors[[4, 1]]),
        write_vectors(tmp_path, "embed", np.array([0, 2, 3]), vectors[[0, 2, 3]]),
    ]
    assert np.array_equal(merge_vectors(ShardSet(tmp_path, "embed", 5, names)), vectors)
    with pytest.raises(IndexingEngineError, match="lack 2 of 5"):
        merge_vectors(ShardSet(tmp_path, "embed", 5, names[1:]))
    assert merge_vectors(ShardSet(tmp_path, "embed", 0, [])).shape == (0, 0)


def test_the_staging_folder_is_never_a_version_and_never_survives(tmp_path: Path) -> None:
    staging = staging_dir(tmp_path, "20261201T000000Z")
    assert staging.parent == tmp_path.absolute() / VERSIONS
    write_records(staging, "load", [{"i": 0}])
    # Left by a killed build: the next build's clean-up removes it (never published).
    assert remove_stale(tmp_path, keep=3) == [staging]
    staging = staging_dir(tmp_path, "20261201T000001Z")
    remove_staging(staging)
    remove_staging(staging)  # gone already: nothing to do
    assert list((tmp_path / VERSIONS).iterdir()) == []
