"""Metadata filters: restrict a question to some documents or a date range.

Document dates are as precise as the document states them ("2014" for an undated
note from 2014), so a document matches a date range when the period its date names
overlaps the range. A document without a date never matches a date filter.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from rag.errors import InvalidFilterError, UnknownDocumentError


def date_period(value: str) -> tuple[date, date]:
    """First and last day named by an ISO date of any precision (YYYY, YYYY-MM, YYYY-MM-DD)."""
    parts = value.split("-")
    try:
        if len(parts) == 1:
            year = int(parts[0])
            return date(year, 1, 1), date(year, 12, 31)
        if len(parts) == 2:
            year, month = int(parts[0]), int(parts[1])
            return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
        day = date.fromisoformat(value)
        return day, day
    except ValueError as exc:
        raise ValueError(f"not an ISO date: {value!r}") from exc


def parse_filter_date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidFilterError(f"{name} must be a date as YYYY-MM-DD, got {value!r}") from None


@dataclass(frozen=True, slots=True)
class Filters:
    documents: tuple[str, ...] | None = None
    date_from: date | None = None
    date_to: date | None = None

    def __post_init__(self) -> None:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise InvalidFilterError("date_from must not be after date_to")

    @classmethod
    def create(
        cls,
        documents: Iterable[str] | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
    ) -> Filters:
        return cls(
            documents=tuple(documents) if documents is not None else None,
            date_from=parse_filter_date(date_from, "date_from"),
            date_to=parse_filter_date(date_to, "date_to"),
        )

    @property
    def active(self) -> bool:
        return self.documents is not None or self.date_from is not None or self.date_to is not None

    def select(self, dates: Mapping[str, str | None]) -> list[str]:
        """Ids of the documents that pass, from each document's id and date.

        The reference rules; a served index applies them as array operations
        (``rag.store.catalog.DocumentCatalog``, held to these answers by its tests).
        Unknown ids in ``documents`` are an error.
        """
        if self.documents is not None:
            for doc_id in self.documents:
                if doc_id not in dates:
                    raise UnknownDocumentError(doc_id)
            candidates: Iterable[str] = dict.fromkeys(self.documents)
        else:
            candidates = dates
        return [d for d in candidates if self._date_ok(dates[d])]

    def _date_ok(self, document_date: str | None) -> bool:
        if self.date_from is None and self.date_to is None:
            return True
        if not document_date:
            return False
        try:
            first, last = date_period(document_date)
        except ValueError:
            return False
        if self.date_from is not None and last < self.date_from:
            return False
        return not (self.date_to is not None and first > self.date_to)
