"""Answer typing from the question's surface (pure logic, no models)."""

from __future__ import annotations

import pytest

from rag.reader.question import AnswerType as T
from rag.reader.question import analyse, has_shape


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("By what date did the minister want a reply?", T.DATE),
        ("When was the letter sent?", T.DATE),
        ("What year did it happen?", T.DATE),
        ("Who wrote to Lucy Allan?", T.PERSON),
        ("Which body inspected the council?", T.ORG),
        ("Which city is the Home Office in?", T.PLACE),
        ("How many children were exploited?", T.NUMBER),
        ("How much funding backs the unit?", T.MONEY),
        ("What is the CTS reference?", T.REFERENCE),
        ("What phone number can the unit be reached on?", T.CONTACT),
        ("Under which section of the Act was the inspection ordered?", T.LAW),
        ("What position did Paul Lakin hold?", T.ROLE),
        ("Who is Amanda Blakeman?", T.ROLE),
        ("Why did Ofsted write to the minister?", T.REASON),
        ("How did the council respond?", T.MANNER),
        ("Where is the Home Office?", T.PLACE),
    ],
)
def test_expected_answer_type(question: str, expected: T) -> None:
    assert analyse(question).primary_type is expected


def test_key_terms_drop_wh_words_and_the_head_noun() -> None:
    q = analyse("By what date did the minister want a reply?")
    assert "date" not in q.terms and "what" not in q.terms
    assert {"minist", "repli"} <= set(q.terms)


def test_numbers_in_the_question_are_kept_for_grounding() -> None:
    assert analyse("What happened in 2015 to the 145 cases?").numbers == ["2015", "145"]


@pytest.mark.parametrize(
    ("question", "shape"),
    [
        ("How many councillors signed the letter?", "number"),
        ("How much funding backs the unit?", "number"),
        ("On what date is the debate?", "date"),
        ("In which year was the guidance issued?", "date"),
        ("When did the council reply?", None),  # often a clause: no shape required
        ("Who wrote to Lucy Allan?", None),
        ("What email address is given for the minister?", "email"),
        ("Who did the minister e-mail about the review?", None),  # e-mail the verb
        ("What website does the Home Office list?", "web"),
        ("What postcode is on the letter?", "postcode"),
        ("What telephone number does the department give?", "phone"),
        ("What number should she ring to arrange a meeting?", "phone"),
        ("How many phone numbers does the letter give?", "number"),  # a count
    ],
)
def test_required_shape(question: str, shape: str | None) -> None:
    assert analyse(question).shape == shape


@pytest.mark.parametrize(
    ("span", "shape", "fits"),
    [
        ("1,400", "number", True),
        ("two senior Ministers", "number", True),
        ("Rotherham Metropolitan Borough Council", "number", False),
        ("May’s local elections", "date", True),
        ("24 October 2016", "date", True),
        ("The Conservative Councillors", "date", False),
        ("eric.pickles@communities.gsi.gov.uk", "email", True),
        ("E-Mail", "email", False),
        ("www.gov.uk/home-office", "web", True),
        ("2 Marsham Street", "web", False),
        ("SW1A 0AA", "postcode", True),
        ("0207 035 8904", "phone", True),
        ("Tel", "phone", False),
        ("1,400", "phone", False),  # a number, but not one to ring
    ],
)
def test_has_shape(span: str, shape: str, fits: bool) -> None:
    assert has_shape(span, shape) is fits
