"""bench/rerank.py's pure logic: recall of both rankings, stage percentiles, the tables.

No model is loaded and nothing is timed.
"""

from __future__ import annotations

from bench.rerank import RANKINGS, READ, by_margin, markdown, summarise


def _row(fused: list[bool], reranked: list[bool], rerank_ms: float) -> dict[str, object]:
    return {
        "fused": fused,
        "reranked": reranked,
        "timings_ms": {"embed": 10.0, "retrieve": 1.0, "rerank": rerank_ms},
    }


def test_recall_of_each_ranking_counts_the_first_relevant_passage_within_k() -> None:
    rows = [
        # relevant at fused rank 2, reranked to rank 1
        _row([False, True] + [False] * 8, [True] + [False] * 9, 100.0),
        # relevant at fused rank 4, reranked to rank 3
        _row([False] * 3 + [True] + [False] * 6, [False, False, True] + [False] * 7, 300.0),
        # never relevant in the top 10 (two relevant passages count once)
        _row([False] * 10, [False] * 10, 200.0),
        _row([True, True] + [False] * 8, [True, True] + [False] * 8, 400.0),
    ]
    s = summarise(rows)
    assert s["questions"] == 4
    assert s["fused"] == {"recall@1": 0.25, "recall@3": 0.5, "recall@5": 0.75, "recall@10": 0.75}
    assert s["reranked"] == {
        "recall@1": 0.5,
        "recall@3": 0.75,
        "recall@5": 0.75,
        "recall@10": 0.75,
    }
    assert s["latency_ms"]["rerank"] == {"p50": 250.0, "p95": 385.0}
    assert s["latency_ms"]["retrieve"] == {"p50": 1.0, "p95": 1.0}


def test_the_tables_have_a_row_per_set_and_ranking_and_mark_missing_stages() -> None:
    letters = summarise([_row([True], [True], 50.0)])
    squad = summarise([{"fused": [False, True], "reranked": [True], "timings_ms": {}}])
    table = markdown({"letters": letters, "squad": squad})
    lines = table.splitlines()
    assert lines[0] == "| set | questions | ranking | R@1 | R@3 | R@5 | R@10 |"
    assert "| letters | 1 | fused | 1.000 | 1.000 | 1.000 | 1.000 |" in lines
    assert "| squad | 1 | fused | 0.000 | 1.000 | 1.000 | 1.000 |" in lines
    assert "| squad | 1 | reranked | 1.000 | 1.000 | 1.000 | 1.000 |" in lines
    assert sum(line.startswith("| letters |") for line in lines) == len(RANKINGS) + 1
    assert "| letters | 10.0 / 10.0 | 1.0 / 1.0 | 50.0 / 50.0 |" in lines
    assert "| squad | – | – | – |" in lines


def test_an_empty_set_is_nan_not_an_error() -> None:
    s = summarise([])
    assert s["questions"] == 0 and s["latency_ms"] == {}
    assert all(v != v for v in s["fused"].values())  # NaN


def test_the_reader_ranking_is_summarised_and_tabled_when_measured() -> None:
    row = {**_row([False, True], [True, False], 80.0), READ: [True, False]}
    row["timings_ms"] = {**row["timings_ms"], READ: 120.0}  # type: ignore[dict-item]
    s = summarise([row])
    assert s[READ]["recall@1"] == 1.0 and s["fused"]["recall@1"] == 0.0
    assert s["latency_ms"][READ] == {"p50": 120.0, "p95": 120.0}
    assert "| letters | 1 | read | 1.000 | 1.000 | 1.000 | 1.000 |" in markdown({"letters": s})
    assert READ not in summarise([_row([True], [True], 1.0)])


def test_by_margin_reorders_the_scored_passages_and_keeps_the_rest() -> None:
    assert by_margin(["a", "b", "c", "d"], [0.5, 2.0, 0.5]) == ["b", "a", "c", "d"]
