"""Filters as array operations: the same documents as ``Filters.select``, the right rows."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rag.errors import UnknownDocumentError
from rag.filters import Filters
from rag.store.catalog import DocumentCatalog, DocumentRows

DATES = [
    "2014",
    "2014-08",
    "2014-08-28",
    "2016-02",
    "2016-10-24",
    None,
    "",
    "not a date",
    "2015-12-31",
]
BOUNDS = [None, "2014-01-01", "2014-08-31", "2014-09-01", "2016-02-29", "2016-10-24", "2020-01-01"]


@pytest.fixture()
def catalog() -> tuple[DocumentCatalog, dict[str, str | None]]:
    rows: dict[str, DocumentRows] = {}
    dates: dict[str, str | None] = {}
    row = 0
    for i, date in enumerate(DATES):
        count = i % 3  # some documents have no chunk at all
        rows[f"doc-{i}"] = DocumentRows(row, count, date)
        dates[f"doc-{i}"] = date
        row += count
    return DocumentCatalog(rows), dates


def _expected_rows(catalog: DocumentCatalog, ids: list[str]) -> list[int]:
    return sorted(
        r
        for d in ids
        for r in range(
            int(catalog.row0[catalog.position[d]]),
            int(catalog.row0[catalog.position[d]] + catalog.count[catalog.position[d]]),
        )
    )


def test_date_and_document_filters_select_what_filters_select(
    catalog: tuple[DocumentCatalog, dict[str, str | None]],
) -> None:
    cat, dates = catalog
    document_choices = [None, ["doc-1", "doc-5", "doc-1"], ["doc-7"], []]
    checked = 0
    for documents, date_from, date_to in itertools.product(document_choices, BOUNDS, BOUNDS):
        if date_from and date_to and date_from > date_to:
            continue
        filters = Filters.create(documents, date_from, date_to)
        expected = sorted(filters.select(dates), key=cat.position.__getitem__)
        assert [cat.ids[p] for p in cat.select(filters)] == expected, filters
        assert cat.allowed_rows(filters).tolist() == _expected_rows(cat, expected)
        checked += 1
    assert checked > 50


def test_an_unknown_document_is_refused(
    catalog: tuple[DocumentCatalog, dict[str, str | None]],
) -> None:
    with pytest.raises(UnknownDocumentError):
        catalog[0].select(Filters.create(["doc-1", "nope"]))


def test_rows_are_the_documents_ranges(
    catalog: tuple[DocumentCatalog, dict[str, str | None]],
) -> None:
    cat, _ = catalog
    every = np.arange(len(cat.ids))
    assert cat.rows(every).tolist() == list(range(int(cat.count.sum())))
    assert cat.rows(np.array([], dtype=np.int64)).size == 0
    assert cat.rows(np.array([4, 1])).tolist() == _expected_rows(cat, ["doc-1", "doc-4"])
