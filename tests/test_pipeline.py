"""The whole question path on the real corpus and models: answers, citations, abstention."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import InvalidQuestionError
from rag.evaluation.dataset import load_eval_sets
from rag.pipeline import Pipeline, validate_question

ROOT = Path(__file__).resolve().parent.parent


def test_question_validation() -> None:
    assert validate_question("  Who   wrote it?\n", 100) == "Who wrote it?"
    for bad in ["", "   ", "\n\t"]:
        with pytest.raises(InvalidQuestionError, match="empty"):
            validate_question(bad, 100)
    with pytest.raises(InvalidQuestionError, match="limit is 10"):
        validate_question("x" * 11, 10)


@pytest.mark.slow
def test_every_answer_over_the_evaluation_questions_has_a_verifiable_citation(
    pipeline: Pipeline,
) -> None:
    items = load_eval_sets([ROOT / "eval" / "dev.jsonl", ROOT / "eval" / "test.jsonl"])
    answered = 0
    for item in items:
        result = pipeline.ask(item.question)
        for answer in filter(None, [result.answer, result.rejected]):
            c = answer.citation
            doc = pipeline.index.documents[c.document_id]
            assert doc.text[c.start : c.end] == answer.text
            assert doc.text[c.sentence.start : c.sentence.end] == c.sentence_text
            assert c.sentence.start <= c.start and c.end <= c.sentence.end
            assert c.document_title == doc.title
            assert 0.0 <= answer.score <= 1.0
        answered += result.answer is not None
    assert answered > len(items) / 3


@pytest.mark.slow
@pytest.mark.parametrize(
    "question",
    [
        "What is the boiling point of mercury?",
        "Who won the 2014 World Cup final?",
        "How do I reset my password?",
        "What is the recipe for a Victoria sponge?",
    ],
)
def test_off_topic_questions_abstain(pipeline: Pipeline, question: str) -> None:
    result = pipeline.ask(question)
    assert result.abstained, (result.answer.text, result.answer.score)  # type: ignore[union-attr]
    assert result.passages  # the closest passages are still offered


@pytest.mark.slow
@pytest.mark.parametrize(
    "question",
    [
        "How many children were sexually exploited in Telford?",
        "What was the total budget of Rotherham's children's services in 2014?",
        "Which police officer led the Rotherham investigation in 2015?",
    ],
)
def test_plausible_but_unanswered_questions_abstain(pipeline: Pipeline, question: str) -> None:
    result = pipeline.ask(question)
    assert result.abstained, (result.answer.text, result.answer.score)  # type: ignore[union-attr]


@pytest.mark.slow
def test_answers_real_questions_with_the_right_span(pipeline: Pipeline) -> None:
    result = pipeline.ask("What is the CTS reference on Amber Rudd's letter?")
    assert result.answer is not None and result.answer.text == "M11295/16"
    assert result.answer.citation.document_id == "rudd-2016-10-24"
    money = pipeline.ask(
        "How much Government funding backs the Child Sexual Exploitation Response Unit?"
    )
    assert money.answer is not None and money.answer.text == "£1.24 million"
