"""Where an index lives inside its folder, and how a new build is swapped in.

``<index_dir>/current`` is a symbolic link to ``versions/<id>``. A build writes a new
version folder next to the live one and then replaces the link with ``os.replace``,
which is atomic: a reader sees the old index or the new one, never a mix, and a build
that crashes or is killed leaves the old one in place. A folder that holds a
``manifest.json`` directly is accepted too, so a copied index still loads.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rag.store.files import fsync_path

CURRENT = "current"
VERSIONS = "versions"
MANIFEST = "manifest.json"
TMP_PREFIX = "tmp-"


def resolve_index_dir(index_dir: Path) -> Path:
    """The folder holding the live index's files (it may not exist yet)."""
    if (index_dir / MANIFEST).exists():
        return index_dir
    return index_dir / CURRENT


def resolve_version(index_dir: Path) -> Path:
    """The real folder of the live version, with ``current`` resolved once.

    Read every file of one load through this path, never through ``current`` again: a
    publish in between would otherwise mix files of two versions.
    """
    return Path(os.path.realpath(resolve_index_dir(index_dir)))


def current_target(index_dir: Path) -> str | None:
    """What ``current`` points at now (one ``readlink``): a cheap change detector."""
    try:
        return os.readlink(index_dir / CURRENT)
    except OSError:
        return str(index_dir.resolve()) if (index_dir / MANIFEST).exists() else None


def current_version(index_dir: Path) -> Path | None:
    """The live version folder, or None when no index was built."""
    target = resolve_index_dir(index_dir)
    return target.resolve() if (target / MANIFEST).exists() else None


def new_version_dir(index_dir: Path, name: str) -> Path:
    """A fresh temporary folder for a build; the caller fills it then calls ``publish``."""
    versions = index_dir / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    path = versions / f"{TMP_PREFIX}{name}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir()
    return path


def publish(index_dir: Path, tmp_dir: Path) -> Path:
    """Rename the finished build into place and atomically point ``current`` at it."""
    final = tmp_dir.with_name(tmp_dir.name.removeprefix(TMP_PREFIX))
    os.rename(tmp_dir, final)
    fsync_path(final.parent)
    link_tmp = index_dir / f".{CURRENT}.new"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    os.symlink(Path(VERSIONS) / final.name, link_tmp)
    os.replace(link_tmp, index_dir / CURRENT)
    fsync_path(index_dir)
    return final


def remove_stale(index_dir: Path, keep: int = 1) -> list[Path]:
    """Delete leftovers of interrupted builds and all but the ``keep`` newest versions.

    The live version is always kept, and so are the ``keep - 1`` newest published ones
    before it: a service still answering from an older version (it swaps a few seconds
    after a publish) or still loading one never has its folder deleted under it.
    Version names are UTC timestamps, so their order is their age.
    """
    live = current_version(index_dir)
    removed: list[Path] = []
    versions = index_dir / VERSIONS
    if not versions.is_dir():
        return removed
    entries = sorted(versions.iterdir(), key=lambda e: e.name, reverse=True)
    published = [e for e in entries if not e.name.startswith(TMP_PREFIX)]
    kept = {e for e in published if live is None or e.resolve() != live}
    kept = set(sorted(kept, key=lambda e: e.name, reverse=True)[: max(keep - 1, 0)])
    for entry in entries:
        if (live is not None and entry.resolve() == live) or entry in kept:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
