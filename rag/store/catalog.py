"""Which chunk rows a filter allows, in array operations over the documents, never per chunk.

A filtered question used to build a collection-sized mask and parse every document's date
in Python. Here each document is one position in a few NumPy arrays (its chunks' first
row and count, the first and last day its date names), built once when the index loads:
a date filter is one vectorised comparison over the documents, and the allowed rows are
built from the selected documents' ranges in O(rows allowed).

The rules are ``rag.filters.Filters``'s (a document dated "2014" matches any range that
overlaps 2014; an undated document never matches a date filter), and the tests hold the
two to the same answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rag.errors import UnknownDocumentError
from rag.filters import Filters, date_period


@dataclass(frozen=True, slots=True)
class DocumentRows:
    """Where one document's chunks are: rows ``row0 .. row0 + count - 1``."""

    row0: int
    count: int
    date: str | None


class DocumentCatalog:
    """Per-document arrays for filtering; built from ``RecordStore.catalog``."""

    def __init__(self, documents: Mapping[str, DocumentRows]) -> None:
        self.ids = list(documents)
        self.position = {doc_id: i for i, doc_id in enumerate(self.ids)}
        entries = list(documents.values())
        self.row0 = np.array([e.row0 for e in entries], dtype=np.int64)
        self.count = np.array([e.count for e in entries], dtype=np.int64)
        first = np.zeros(len(entries), dtype=np.int64)
        last = np.zeros(len(entries), dtype=np.int64)
        dated = np.zeros(len(entries), dtype=bool)
        for i, entry in enumerate(entries):
            if not entry.date:
                continue
            try:
                start, end = date_period(entry.date)
            except ValueError:
                continue  # an unreadable date never matches a date filter, as in Filters
            first[i], last[i], dated[i] = start.toordinal(), end.toordinal(), True
        self.first_day, self.last_day, self.dated = first, last, dated

    def select(self, filters: Filters) -> np.ndarray:
        """Positions of the documents that pass ``filters``; an unknown id is an error."""
        if filters.documents is not None:
            positions = []
            for doc_id in dict.fromkeys(filters.documents):
                position = self.position.get(doc_id)
                if position is None:
                    raise UnknownDocumentError(doc_id)
                positions.append(position)
            chosen = np.array(sorted(positions), dtype=np.int64)
        else:
            chosen = None  # every document: the arrays are compared whole, not gathered
        if filters.date_from is None and filters.date_to is None:
            return np.arange(len(self.ids), dtype=np.int64) if chosen is None else chosen
        at = slice(None) if chosen is None else chosen
        keep = self.dated[at].copy()
        if filters.date_from is not None:
            keep &= self.last_day[at] >= filters.date_from.toordinal()
        if filters.date_to is not None:
            keep &= self.first_day[at] <= filters.date_to.toordinal()
        return np.flatnonzero(keep) if chosen is None else chosen[keep]

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """The chunk rows of the documents at ``positions``, ascending (ranges are disjoint)."""
        positions = np.sort(np.asarray(positions, dtype=np.int64))
        counts = self.count[positions]
        total = int(counts.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        # Row j of the output is row0 of its document plus its offset inside the document:
        # j - (rows of the documents before it) + row0, one repeat over the documents.
        starts = self.row0[positions]
        shift = starts - (np.cumsum(counts) - counts)
        rows = np.arange(total, dtype=np.int64) + np.repeat(shift, counts)
        if positions.size > 1 and bool(np.any(starts[1:] < starts[:-1])):
            rows.sort()  # documents whose chunks are not in document order
        return rows

    def allowed_rows(self, filters: Filters) -> np.ndarray:
        return self.rows(self.select(filters))
