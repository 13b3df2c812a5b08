"""Shard files: how a distributed build's workers hand their results to the index build.

A worker of the Ray engine (``rag.store.ray_engine``) writes the results of each batch it
processed as one shard file in the build's staging folder, and returns only the file's
name; the build then reads every shard of a step and merges the rows in corpus order,
by the position each row carries, never by the order the workers finished in.

- ``<step>-<first>-<last>.jsonl``: one JSON object per input row, ``{"i": position,
  ...}`` (loaded documents, annotations and chunks).
- ``<step>-<first>-<last>.npz``: ``i`` (positions) and ``vector`` (float32 rows).

A shard is written to a hidden temporary name and renamed into place, so a worker that
dies mid-write leaves no half shard under a shard's name, and a retried batch writes the
same name again (were a retry batched otherwise, the merge still takes each position
once: both attempts computed the same rows). The staging folder is
``versions/tmp-<build>.shards`` inside the index folder (``staging_dir``): on a cluster
it must be on the path every node and the driver share, and it is never published (the
build removes it; ``layout.remove_stale`` removes what a killed build left).

No Ray here: this module only reads and writes files.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexingEngineError
from rag.store.layout import TMP_PREFIX, VERSIONS

SHARDS_SUFFIX = ".shards"


def staging_dir(index_dir: Path, name: str) -> Path:
    """A fresh, empty staging folder for the shards of build ``name`` in ``index_dir``."""
    path = index_dir.absolute() / VERSIONS / f"{TMP_PREFIX}{name}{SHARDS_SUFFIX}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def remove_staging(path: Path | None) -> None:
    """Delete a staging folder and every shard in it (nothing when it is gone)."""
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


@dataclass(slots=True)
class ShardSet:
    """The shards one step of a build wrote: where, which files, and how many rows."""

    folder: Path
    step: str
    #: Rows the step was given: every position in ``range(rows)`` must come back once.
    rows: int
    names: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [self.folder / n for n in sorted(set(self.names))]


def _name(step: str, positions: Sequence[int], ext: str) -> str:
    return f"{step}-{min(positions):09d}-{max(positions):09d}.{ext}"


def _replace_into(folder: Path, name: str, write: Any) -> None:
    """Write through ``write(path)`` to a hidden temporary name, then rename into place."""
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    write(tmp)
    os.replace(tmp, folder / name)


def write_records(folder: Path, step: str, rows: Iterable[dict[str, Any]]) -> str:
    """One JSON Lines shard of ``rows`` (each with its position ``i``); its file name."""
    items = list(rows)
    if not items:
        raise ValueError("a shard holds at least one row")
    name = _name(step, [int(r["i"]) for r in items], "jsonl")

    def write(path: Path) -> None:
        with path.open("w", encoding="utf-8") as handle:
            for row in items:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    _replace_into(folder, name, write)
    return name


def write_vectors(folder: Path, step: str, positions: np.ndarray, vectors: np.ndarray) -> str:
    """One ``.npz`` shard of ``vectors`` (row k is the input at ``positions[k]``)."""
    if len(positions) == 0 or len(positions) != len(vectors):
        raise ValueError("a vector shard holds one position per vector, at least one")
    name = _name(step, [int(p) for p in positions], "npz")

    def write(path: Path) -> None:
        with path.open("wb") as handle:
            np.savez(
                handle,
                i=np.asarray(positions, dtype=np.int64),
                vector=np.asarray(vectors, dtype=np.float32),
            )

    _replace_into(folder, name, write)
    return name


def _check_complete(shards: ShardSet, seen: np.ndarray) -> None:
    if not bool(seen.all()):
        missing = int((~seen).sum())
        raise IndexingEngineError(
            f"the {shards.step} shards in {shards.folder} lack {missing} of {shards.rows} rows"
        )


def merge_records(shards: ShardSet) -> list[dict[str, Any]]:
    """Every row of a step's JSON Lines shards, in input order (by position)."""
    out: list[dict[str, Any] | None] = [None] * shards.rows
    for path in shards.paths:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                i = int(row["i"])
                if not 0 <= i < shards.rows:
                    raise IndexingEngineError(f"shard {path.name} has row {i} of {shards.rows}")
                out[i] = row  # a retried batch wrote the same row again: the same values
    _check_complete(shards, np.array([r is not None for r in out], dtype=bool))
    return [r for r in out if r is not None]


def merge_vectors(shards: ShardSet) -> np.ndarray:
    """The vectors of a step's ``.npz`` shards, one row per input, in input order."""
    vectors: np.ndarray | None = None
    seen = np.zeros(shards.rows, dtype=bool)
    for path in shards.paths:
        with np.load(path) as shard:
            positions = shard["i"]
            rows = shard["vector"]
        if vectors is None:
            vectors = np.zeros((shards.rows, rows.shape[1]), dtype=np.float32)
        if len(positions) and (positions.min() < 0 or positions.max() >= shards.rows):
            raise IndexingEngineError(f"shard {path.name} has rows outside 0..{shards.rows - 1}")
        vectors[positions] = rows
        seen[positions] = True
    _check_complete(shards, seen)
    assert vectors is not None or shards.rows == 0
    return vectors if vectors is not None else np.zeros((0, 0), dtype=np.float32)
