"""The index on disk: a folder of plain files, built atomically and verified on load."""

from rag.store.builder import BuildReport, IndexBuilder
from rag.store.index import Hit, Index
from rag.store.layout import current_version, resolve_index_dir

__all__ = ["BuildReport", "Hit", "Index", "IndexBuilder", "current_version", "resolve_index_dir"]
