"""Ingestion: files on disk -> cleaned :class:`~rag.types.Document` objects.

``discover`` lists the files of a collection, ``document_id`` names them and
``load_document`` runs one file through loader -> cleaning -> metadata. Every
failure a user can fix (unreadable, binary, empty, too large, corrupt) is raised
as :class:`~rag.errors.DocumentLoadError` naming the file and the reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from rag.errors import DocumentLoadError
from rag.ingest.clean import clean
from rag.ingest.loaders import load_bytes
from rag.ingest.metadata import extract_metadata
from rag.types import Document

__all__ = ["discover", "document_id", "load_document"]

# Editor backups, office lock files, partial downloads and OS litter: never documents.
_SKIPPED_SUFFIXES = frozenset(
    {".swp", ".swo", ".tmp", ".temp", ".bak", ".part", ".partial", ".crdownload", ".lock"}
)
_SKIPPED_NAMES = frozenset({"thumbs.db", "desktop.ini"})
_SKIPPED_DIRS = frozenset({"__pycache__", "__MACOSX"})


def discover(root: Path) -> list[Path]:
    """Regular files under ``root``, recursively, sorted by their relative path.

    Hidden files and folders (``.git``, ``.DS_Store``) and temporary or sidecar
    files (``~$letter.docx``, ``notes.txt~``, ``#draft#``, ``.swp``) are skipped
    because they are not documents of the collection. Symbolic links are not
    followed, so the walk cannot leave ``root`` or loop.
    """
    root = Path(root)
    if root.is_file():
        return [] if _is_skipped_file(root.name) else [root]
    if not root.is_dir():
        raise DocumentLoadError(str(root), "no such directory")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not _is_skipped_dir(d)]
        for name in filenames:
            path = Path(dirpath, name)
            if not _is_skipped_file(name) and _is_regular_file(path):
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _is_skipped_dir(name: str) -> bool:
    return name.startswith(".") or name in _SKIPPED_DIRS


def _is_skipped_file(name: str) -> bool:
    lowered = name.lower()
    return (
        name.startswith((".", "~", "#"))
        or name.endswith(("~", "#"))
        or lowered in _SKIPPED_NAMES
        or Path(lowered).suffix in _SKIPPED_SUFFIXES
    )


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def document_id(path: Path, root: Path) -> str:
    """The path relative to ``root`` without its extension, with ``/`` separators.

    ``corpus/sub/dir/report.pdf`` under ``corpus`` -> ``"sub/dir/report"``. Two
    files differing only by extension get the same id; callers that index a
    folder should treat that as a conflict.

    Control characters (a newline in a file name) cannot travel in a URL or a log line:
    each becomes ``_``, so the document stays reachable (``a\\nb.txt`` -> ``"a_b"``).
    """
    path, root = Path(path), Path(root)
    relative = Path(path.name) if path == root else path.relative_to(root)
    name = relative.with_suffix("").as_posix() if relative.suffix else relative.as_posix()
    return _CONTROL.sub("_", name)


#: C0 and C1 control characters, DEL, and the lone surrogates that stand for bytes of a
#: file name that is not UTF-8.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def load_document(
    path: Path,
    root: Path,
    *,
    max_bytes: int,
    max_chars: int | None = None,
    max_zip_ratio: float | None = None,
) -> Document:
    """Read, load, clean and describe one file.

    Raises DocumentLoadError for a file that cannot be read, is larger than
    ``max_bytes``, is binary, is corrupt, holds no text, holds more than
    ``max_chars`` characters of text or is a zip expanding over ``max_zip_ratio``.
    """
    if max_bytes <= 0:
        raise ValueError("max_bytes must be greater than 0.")
    path, root = Path(path), Path(root)
    data = _read_bytes(path, max_bytes)
    loaded = load_bytes(
        data,
        source=str(path),
        suffix=path.suffix,
        max_chars=max_chars,
        max_zip_ratio=max_zip_ratio,
    )
    text, page_starts = clean(loaded)
    if not text.strip():
        raise DocumentLoadError(str(path), "no text left after removing page furniture")
    doc_id = document_id(path, root)
    relative = Path(path.name) if path == root else path.relative_to(root)
    return Document(
        id=doc_id,
        text=text,
        source_path=relative.as_posix(),
        format=loaded.format,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        metadata=extract_metadata(text, doc_id=doc_id, format_title=loaded.title),
        page_starts=page_starts,
    )


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """Read at most ``max_bytes`` (+1 to notice growth) so a huge file is never loaded."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise DocumentLoadError(str(path), "not a regular file")
        if size > max_bytes:
            raise DocumentLoadError(str(path), _too_large(size, max_bytes))
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise DocumentLoadError(str(path), f"cannot read file: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise DocumentLoadError(str(path), _too_large(len(data), max_bytes))
    return data


def _too_large(size: int, max_bytes: int) -> str:
    return f"file too large: {size} bytes > max {max_bytes}"
