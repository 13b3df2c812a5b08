"""bench/ask_compare.py's pure logic: scores, Haystack's stage sums, the component timer.

No model is loaded and nothing is timed against a limit.
"""

from __future__ import annotations

from bench.ask_compare import ComponentTimer, Run, answer_scores, haystack_stages, latency
from rag.evaluation.dataset import EvalItem


def _item(qid: str, answers: tuple[str, ...]) -> EvalItem:
    docs = ("d",) if answers else ()
    return EvalItem(qid, "q?", answers, docs, "e" if answers else None)


def test_answer_scores_split_answerable_and_unanswerable() -> None:
    items = [
        _item("a", ("Joyce Thacker",)),
        _item("b", ("13 September",)),
        _item("c", ("the Home Office",)),
        _item("u1", ()),
        _item("u2", ()),
    ]
    scores = answer_scores(items, ["Joyce Thacker", "September", None, None, "Rotherham"])
    assert scores["n_answerable"] == 3 and scores["n_unanswerable"] == 2
    assert scores["answerable_em"] == round(1 / 3, 4)
    assert scores["answerable_f1"] == round((1 + 2 / 3 + 0) / 3, 4)
    assert scores["answerable_abstained"] == round(1 / 3, 4)
    assert scores["unanswerable_abstained"] == 0.5


def test_answer_scores_without_unanswerable_questions_is_none_not_an_error() -> None:
    scores = answer_scores([_item("a", ("x",))], ["x"])
    assert scores["answerable_f1"] == 1.0
    assert scores["unanswerable_abstained"] is None


def test_haystack_stages_sum_their_components() -> None:
    stages = haystack_stages({"embed": 5.0, "dense": 1.0, "bm25": 2.0, "join": 0.5, "read": 9.0})
    assert stages["embed"] == 5.0
    assert stages["retrieve"] == 3.5
    assert stages["read"] == 9.0
    assert stages["component:bm25"] == 2.0


def test_component_timer_times_component_runs_only() -> None:
    timer = ComponentTimer()
    with timer.trace("haystack.pipeline.run"):
        for _ in range(2):
            with timer.trace("haystack.component.run", {"haystack.component.name": "read"}):
                pass
    assert list(timer.ms) == ["read"]
    assert timer.ms["read"] >= 0.0


def test_latency_percentiles_per_stage() -> None:
    runs = [Run(None, {"read": float(ms), "total": float(ms) + 1}) for ms in range(1, 102)]
    result = latency(runs)
    assert result["read"] == {"p50": 51.0, "p95": 96.0}
    assert result["total"]["p50"] == 52.0
