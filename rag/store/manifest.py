"""The manifest: what an index was built from and with, and checksums of its files."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import IndexCorruptError, IndexIncompatibleError, IndexNotFoundError
from rag.store.files import sha256_file, write_json
from rag.store.layout import MANIFEST

#: Bump when the layout or meaning of any index file changes. 2: the chunk vectors are
#: stored once, inside ``dense.faiss`` (no ``vectors.npy``), whose type the manifest's
#: ``dense`` section records; documents, chunks and annotations in ``records.sqlite``
#: (no JSON Lines).
FORMAT_VERSION = 2

#: Threads hashing an index's files while it loads (``verify_files``).
VERIFY_THREADS = min(4, os.cpu_count() or 1)


@dataclass(slots=True)
class SourceFile:
    """One corpus file as it was when indexed."""

    document_id: str
    sha256: str
    size: int


@dataclass(slots=True)
class Manifest:
    format_version: int
    created_at: str
    build_seconds: float
    embedding: dict[str, Any]
    chunker: dict[str, Any]
    annotator: str
    ingest_version: int
    corpus_fingerprint: str
    sources: dict[str, SourceFile] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The dense index's type and parameters (``rag.store.dense.DenseInfo``).
    dense: dict[str, Any] = field(default_factory=dict)
    #: Which store holds the chunk vectors: ``{"kind": "faiss"}`` (``dense.faiss`` in this
    #: folder) or a Milvus collection (``rag.store.milvus.MilvusSettings.describe``).
    #: Manifests written before it existed are FAISS ones.
    vector_store: dict[str, Any] = field(default_factory=lambda: {"kind": "faiss"})

    @property
    def vector_store_kind(self) -> str:
        return str(self.vector_store.get("kind", "faiss"))

    @property
    def embedding_model(self) -> str:
        return str(self.embedding["model_id"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        sources = {k: SourceFile(**v) for k, v in data.get("sources", {}).items()}
        rest = {k: v for k, v in data.items() if k != "sources"}
        return cls(sources=sources, **rest)

    def write(self, folder: Path, data_files: list[str]) -> None:
        """Checksum ``data_files`` (paths relative to ``folder``) and write the manifest."""
        self.files = {
            name: {"sha256": sha256_file(folder / name), "size": (folder / name).stat().st_size}
            for name in data_files
        }
        write_json(folder / MANIFEST, self.to_dict())


def read_manifest(folder: Path) -> Manifest:
    """Read and parse a manifest; never trusts it further than its own format."""
    path = folder / MANIFEST
    if not path.exists():
        raise IndexNotFoundError(
            f"no index at {folder.parent if folder.name == 'current' else folder}: "
            "build it with `rag index` (or `make run`)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        manifest = Manifest.from_dict(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise IndexCorruptError(f"{path} is not a valid index manifest: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise IndexIncompatibleError(
            f"index at {folder} has format version {manifest.format_version}, this version of "
            f"rag reads {FORMAT_VERSION}: rebuild it with `rag index`"
        )
    return manifest


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Refuse an index whose files are missing, truncated or altered since it was built.

    The files are hashed on up to ``VERIFY_THREADS`` threads (hashlib lets go of the GIL):
    at 1M chunks that is 3.9 GB, 3.3 s on one core of this machine.
    """
    items = list(manifest.files.items())
    with ThreadPoolExecutor(max_workers=max(1, min(VERIFY_THREADS, len(items)))) as pool:
        checks = list(pool.map(lambda item: _check_file(folder, *item), items))
    for name, matches in zip((n for n, _ in items), checks, strict=True):
        path = folder / name
        if matches is None:
            # Also a version retired by a newer publish while it is read: Index.load retries.
            raise IndexCorruptError(f"index file missing: {path}; rebuild with `rag index`")
        if not matches:
            raise IndexCorruptError(
                f"index file {path} does not match its checksum in the manifest "
                "(altered or truncated); rebuild with `rag index`"
            )


def _check_file(folder: Path, name: str, expected: dict[str, Any]) -> bool | None:
    """The file matches its size and checksum; None when it is missing."""
    path = folder / name
    try:
        return path.stat().st_size == expected["size"] and sha256_file(path) == expected["sha256"]
    except FileNotFoundError:
        return None


def check_compatible(manifest: Manifest, embedding_model: str | None) -> None:
    """Refuse an index built with another embedding model than the one configured."""
    if embedding_model is not None and manifest.embedding_model != embedding_model:
        raise IndexIncompatibleError(
            f"the index was built with embedding model {manifest.embedding_model!r} but "
            f"{embedding_model!r} is configured; rebuild with `rag index` or set "
            f"RAG_EMBEDDING_MODEL={manifest.embedding_model}"
        )
