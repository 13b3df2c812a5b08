"""The version folders and the ``current`` link, without models."""

from __future__ import annotations

from pathlib import Path

from rag.store.layout import (
    MANIFEST,
    VERSIONS,
    current_target,
    current_version,
    new_version_dir,
    publish,
    remove_stale,
    resolve_version,
)


def _publish(index_dir: Path, name: str) -> Path:
    tmp = new_version_dir(index_dir, name)
    (tmp / MANIFEST).write_text("{}")
    return publish(index_dir, tmp)


def test_remove_stale_keeps_the_live_version_and_the_newest_before_it(tmp_path: Path) -> None:
    for name in ("20260101T000000Z", "20260102T000000Z", "20260103T000000Z", "20260104T000000Z"):
        _publish(tmp_path, name)
    (tmp_path / VERSIONS / "tmp-crashed").mkdir()
    removed = remove_stale(tmp_path, keep=3)
    assert sorted(p.name for p in removed) == ["20260101T000000Z", "tmp-crashed"]
    left = sorted(p.name for p in (tmp_path / VERSIONS).iterdir())
    assert left == ["20260102T000000Z", "20260103T000000Z", "20260104T000000Z"]
    assert current_version(tmp_path) == (tmp_path / VERSIONS / "20260104T000000Z").resolve()


def test_remove_stale_never_removes_the_live_version_even_when_older(tmp_path: Path) -> None:
    _publish(tmp_path, "20260105T000000Z")
    _publish(tmp_path, "20260101T000000Z")  # live, but sorts first
    remove_stale(tmp_path, keep=1)
    assert [p.name for p in (tmp_path / VERSIONS).iterdir()] == ["20260101T000000Z"]


def test_current_target_and_resolve_version_name_one_folder(tmp_path: Path) -> None:
    assert current_target(tmp_path) is None
    final = _publish(tmp_path, "20260101T000000Z")
    assert current_target(tmp_path) == f"{VERSIONS}/20260101T000000Z"
    assert resolve_version(tmp_path) == final.resolve()
    copied = tmp_path / "copied"
    copied.mkdir()
    (copied / MANIFEST).write_text("{}")  # a copied index folder without the link
    assert resolve_version(copied) == copied.resolve()
    assert current_target(copied) == str(copied.resolve())
