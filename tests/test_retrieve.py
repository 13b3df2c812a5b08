"""Retrieval: fusion logic (pure) and real dense/lexical/hybrid search over the corpus."""

from __future__ import annotations

import pytest

from rag.config import RetrievalMode
from rag.errors import InvalidFilterError, UnknownDocumentError
from rag.filters import Filters, date_period
from rag.pipeline import Pipeline
from rag.retrieve import RetrievalSettings, reciprocal_rank_fusion
from rag.store.index import Hit


def test_rrf_sums_weighted_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion(
        {"dense": [Hit(1, 0.9), Hit(2, 0.8)], "lexical": [Hit(2, 7.0), Hit(3, 5.0)]},
        {"dense": 1.0, "lexical": 2.0},
        k=60,
    )
    scores = dict(fused)
    assert scores[2] == pytest.approx(1 / 62 + 2 / 61)
    assert scores[1] == pytest.approx(1 / 61)
    assert scores[3] == pytest.approx(2 / 62)
    assert [row for row, _ in fused] == [2, 3, 1]


def test_unknown_mode_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="dense, lexical, hybrid"):
        RetrievalSettings.parse_mode("semantic")


def test_partial_dates_cover_their_period() -> None:
    assert date_period("2014") == (date_period("2014-01-01")[0], date_period("2014-12-31")[1])
    assert date_period("2016-02")[1].day == 29


def test_bad_filters_are_refused() -> None:
    with pytest.raises(InvalidFilterError):
        Filters.create(date_from="yesterday")
    with pytest.raises(InvalidFilterError):
        Filters.create(date_from="2016-02-01", date_to="2016-01-01")


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(RetrievalMode))
def test_each_mode_finds_the_passage_with_the_answer(
    heuristic_pipeline: Pipeline, mode: RetrievalMode
) -> None:
    passages = heuristic_pipeline.retriever.retrieve(
        "What reference number is on the Home Secretary's letter?", 5, mode=mode
    )
    assert any("M11295/16" in p.chunk.text for p in passages)
    stage = {"dense": "dense", "lexical": "lexical", "hybrid": "fused"}[mode.value]
    assert all(stage in p.stage_scores for p in passages)


@pytest.mark.slow
def test_filters_restrict_retrieval(heuristic_pipeline: Pipeline) -> None:
    retriever = heuristic_pipeline.retriever
    only = Filters.create(documents=["timpson-2014-08-28"])
    passages = retriever.retrieve("Rotherham council", 10, only)
    assert passages and {p.chunk.document_id for p in passages} == {"timpson-2014-08-28"}
    dated = Filters.create(date_from="2014-09-01", date_to="2014-09-30")
    ids = {p.chunk.document_id for p in retriever.retrieve("council", 20, dated)}
    # Documents dated by year only ("2014") overlap any range within that year.
    assert ids == {
        "pickles-morgan-2014-09-24",
        "news-2014-councils-review",
        "wilshaw-ofsted-advice-2014",
    }
    march = Filters.create(date_from="2014-03-01", date_to="2014-03-31")
    assert {p.chunk.document_id for p in retriever.retrieve("council", 50, march)} == {
        "news-2014-councils-review",
        "wilshaw-ofsted-advice-2014",
    }
    with pytest.raises(UnknownDocumentError):
        retriever.retrieve("x", 5, Filters.create(documents=["missing"]))
