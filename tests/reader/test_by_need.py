"""Reading by need: the schedule, the fitted stopping rule, and the real pipeline's steps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from rag.config import Settings
from rag.errors import ReaderWeightsError
from rag.evaluation.dataset import EvalItem
from rag.pipeline import Pipeline, load_components, make_reader
from rag.reader.base import Candidate
from rag.reader.by_need import read_schedule
from rag.reader.compose import ScoredReader
from rag.reader.scoring import NEVER, Settle, load_weights, write_weights
from rag.train.fit_settle import Stepped, choose_rules, outcome
from rag.types import Answer, Citation, Span

# Questions of our own, not from the evaluation set.
QUESTION = "Who wrote to the Leader of Rotherham Council about the inspection?"


@pytest.mark.parametrize(
    ("first", "total", "steps"),
    [
        (2, 8, [2, 4, 8]),
        (3, 8, [3, 6, 8]),
        (4, 8, [4, 8]),
        (1, 5, [1, 2, 4, 5]),
        (0, 8, [8]),
        (8, 8, [8]),
        (9, 8, [8]),
        (2, 1, [1]),
    ],
)
def test_the_schedule_doubles_up_to_the_read_depth(
    first: int, total: int, steps: list[int]
) -> None:
    assert read_schedule(first, total) == steps


def test_the_schedule_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        read_schedule(2, 0)
    with pytest.raises(ValueError):
        read_schedule(-1, 8)


def _answer(text: str, score: float, start: int = 0) -> Answer:
    end = start + len(text)
    citation = Citation("d", "D", None, start, end, None, Span(start, end), text)
    return Answer(text=text, score=score, citation=citation)


def _item(n: int, answers: Sequence[str]) -> EvalItem:
    return EvalItem(f"q{n}", f"question {n}", tuple(answers), (), None, None)


def test_the_rules_stop_on_a_confident_an_agreed_or_a_hopeless_answer() -> None:
    settle = Settle(first=2, bound=0.8, agree=0.5, hopeless=0.1)
    casey = _answer("Louise Casey", 0.6)
    assert settle.stops(_answer("x", 0.85), None)  # confident
    assert not settle.stops(casey, None)  # not confident, nothing to agree with
    assert settle.stops(casey, _answer("Louise Casey", 0.55))  # the same span again
    assert not settle.stops(casey, _answer("Louise Casey", 0.55, start=40))  # elsewhere
    assert not settle.stops(_answer("Louise Casey", 0.4), casey)  # agreed but weak
    assert settle.stops(_answer("y", 0.05), None)  # hopeless
    assert settle.stops(None, None)  # nothing verified at all: hopeless too
    assert not Settle(first=2, bound=0.8).stops(None, None)  # no hopeless rule


def test_the_rules_read_fewest_passages_with_answers_no_worse_than_reading_all() -> None:
    right, wrong = _answer("Louise Casey", 0.9), _answer("Eric Pickles", 0.7, start=50)
    questions = [
        # Settled right at the first step, confidently.
        Stepped(_item(1, ["Louise Casey"]), [(2, right), (4, right), (8, right)]),
        # A fairly confident wrong answer at the first step, put right by reading on.
        Stepped(
            _item(2, ["Louise Casey"]),
            [(2, wrong), (4, _answer("Louise Casey", 0.8)), (8, _answer("Louise Casey", 0.8))],
        ),
        # Unanswerable: weak answers everywhere, abstained at the threshold 0.5.
        Stepped(_item(3, []), [(2, _answer("x", 0.2)), (4, None), (8, _answer("y", 0.3))]),
    ]
    rules, at_rules, full = choose_rules(questions, first=2, threshold=0.5)
    # Stopping at 0.7 would keep question 2's wrong answer: 0.8 is the lowest that holds;
    # question 3 is hopeless below 0.22 (the next grid step above its 0.2).
    assert (rules.bound, rules.agree, rules.hopeless) == (0.8, NEVER, 0.22)
    assert at_rules["f1"] == full["f1"] == 1.0
    assert at_rules["passages_read"] == pytest.approx((2 + 4 + 2) / 3)
    assert full["passages_read"] == 8
    assert outcome(questions, Settle(2, 0.7), 0.5)["f1"] < 1.0


def test_no_rule_passes_means_never_stopping_early() -> None:
    questions = [
        Stepped(
            _item(1, ["Louise Casey"]),
            [(2, _answer("Eric Pickles", 0.95)), (8, _answer("Louise Casey", 0.9))],
        )
    ]
    rules, at_rules, full = choose_rules(questions, first=2, threshold=0.5)
    assert rules == Settle(2, NEVER)
    assert at_rules == full


def test_a_bound_fitted_for_another_first_step_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    reader = make_reader(settings)
    fitted = load_weights(reader.target())
    path = tmp_path / "weights.json"
    write_weights(replace(fitted, settle=Settle(first=3, bound=0.7)), path)
    assert load_weights(reader.target(), path).settle == Settle(first=3, bound=0.7)
    mismatched = replace(reader, weights_path=path, read_first=2, _weights=None)
    with pytest.raises(ReaderWeightsError, match="RAG_READ_FIRST=3"):
        mismatched.warm_up()
    off = replace(reader, weights_path=path, read_first=0, _weights=None)
    off.warm_up()  # reading everything at once needs no stopping rule
    assert off.settle is None


@pytest.fixture(scope="module")
def stepped(settings: Settings) -> Pipeline:
    """The default pipeline whose stopping rule is set by each test."""
    return Pipeline(settings, load_components(settings))


def _with_bound(pipeline: Pipeline, bound: float) -> ScoredReader:
    reader = pipeline.components.reader
    assert isinstance(reader, ScoredReader)
    reader.use_weights(replace(reader.weights, settle=Settle(reader.read_first, bound)))
    return reader


def test_reading_by_need_stops_early_and_reads_each_stretch_once(stepped: Pipeline) -> None:
    reader = _with_bound(stepped, 0.0)  # any verified answer settles
    assert reader.model is not None
    qa = reader.model.qa
    seen: list[str] = []
    original = qa.window_logits

    def recording(question: str, contexts: Sequence[str]) -> object:
        seen.extend(contexts)
        return original(question, contexts)

    qa.window_logits = recording  # type: ignore[method-assign]
    try:
        early = stepped.ask(QUESTION)
        assert early.passages_read == stepped.settings.read_first
        assert early.timings_ms["read"] > 0
        _with_bound(stepped, NEVER)  # never settles: every step is read
        seen.clear()
        steps = stepped.steps(QUESTION)
    finally:
        del qa.window_logits
    assert [read for read, _ in steps] == read_schedule(
        stepped.settings.read_first, stepped.settings.read_passages
    )
    # A stretch read at one step is not read again at the next (the memo keeps it).
    assert len(seen) == len(set(seen))


def test_reading_every_step_ends_where_reading_all_at_once_does(
    stepped: Pipeline, settings: Settings
) -> None:
    """The memo changes only what is read when, never the answer at the full depth."""
    reader = _with_bound(stepped, NEVER)
    at_once = replace(reader, read_first=0)
    once = Pipeline(settings, replace(stepped.components, reader=at_once))
    for question in (QUESTION, "What did Ofsted find about Rotherham's children's services?"):
        full = stepped.ask(question)
        assert full.passages_read == settings.read_passages
        all_at_once = once.ask(question)
        a, b = full.answer or full.rejected, all_at_once.answer or all_at_once.rejected
        assert a is not None and b is not None
        assert (a.text, a.citation.start) == (b.text, b.citation.start)
        assert a.score == pytest.approx(b.score, abs=1e-3)


def test_what_the_memo_keeps_gives_the_same_candidates_as_reading_afresh(
    stepped: Pipeline,
) -> None:
    """Evidence features, the heuristic's spans and the model's windows are kept between
    steps; at the full depth every candidate and every feature is what a fresh read of
    the same passages gives."""
    reader = stepped.components.reader
    assert isinstance(reader, ScoredReader)
    question = "What did Ofsted find about Rotherham's children's services?"
    context, _ = stepped._context(question, stepped.settings.top_k, None, None)
    depths = read_schedule(2, len(context.passages))
    assert len(depths) > 2
    for depth in depths[:-1]:
        reader.candidates(replace(context, passages=context.passages[:depth]))
    assert any(key[0] == "heuristic" for key in context.memo if isinstance(key, tuple))
    stepped_out = reader.candidates(context)
    fresh = reader.candidates(replace(context, memo={}))

    def by_span(cands: Sequence[Candidate]) -> dict[tuple[str, int, int], dict[str, float]]:
        return {(c.document_id, c.start, c.end): c.features for c in cands}

    got, want = by_span(stepped_out), by_span(fresh)
    assert got.keys() == want.keys()
    for key, features in want.items():
        assert got[key] == pytest.approx(features, abs=1e-4), key
