"""Metric code on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from rag.metrics import (
    exact_match,
    f1_score,
    ndcg_at_k,
    normalize_answer,
    percentile,
    recall_at_k,
    reciprocal_rank,
)


def test_normalize_follows_squad_rules() -> None:
    assert normalize_answer("The  Quick, brown-fox!") == "quick brownfox"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("“12 September”.") == "12 september"


def test_exact_match_takes_the_best_gold() -> None:
    assert exact_match("the 12 September", ["by 12 September", "12 september"]) == 1.0
    assert exact_match("12 Sept", ["12 September"]) == 0.0


def test_f1_hand_computed() -> None:
    # pred: [louise, casey, cb] gold: [louise, casey] -> P=2/3 R=1 F1=0.8
    assert f1_score("Louise Casey CB", ["Louise Casey"]) == pytest.approx(0.8)
    # several golds: best one counts
    assert f1_score("Casey", ["Louise Casey", "Casey"]) == 1.0
    # no overlap
    assert f1_score("Ofsted", ["Louise Casey"]) == 0.0


def test_empty_versus_empty() -> None:
    assert f1_score(None, []) == 1.0
    assert exact_match("", []) == 1.0
    assert f1_score("something", []) == 0.0
    assert f1_score(None, ["an answer"]) == 0.0


def test_recall_and_mrr() -> None:
    ranked = [False, False, True, False]
    assert recall_at_k(ranked, 1) == 0.0
    assert recall_at_k(ranked, 3) == 1.0
    assert reciprocal_rank(ranked) == pytest.approx(1 / 3)
    assert reciprocal_rank([False, False]) == 0.0


def test_ndcg_hand_computed() -> None:
    # one relevant at rank 2: DCG = 1/log2(3); IDCG = 1
    assert ndcg_at_k([False, True], 10, 1) == pytest.approx(1 / math.log2(3))
    # two relevant at ranks 1 and 3, two exist: (1 + 1/2) / (1 + 1/log2(3))
    expected = (1 + 1 / 2) / (1 + 1 / math.log2(3))
    assert ndcg_at_k([True, False, True], 10, 2) == pytest.approx(expected)
    assert ndcg_at_k([False, False], 10, 1) == 0.0


def test_percentile() -> None:
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile([5], 95) == 5
    assert math.isnan(percentile([], 50))
