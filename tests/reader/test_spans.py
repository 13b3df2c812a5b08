"""Candidate spans (pure logic on text; entities given by hand)."""

from __future__ import annotations

from rag.reader.evidence import EvidenceSentence
from rag.reader.heuristic import span_features
from rag.reader.question import AnswerType as T
from rag.reader.question import analyse
from rag.reader.spans import SpanCandidate, candidates, is_junk
from rag.types import Entity, Span


def _spans(
    text: str, entities: list[Entity] | None = None, clauses: bool = False
) -> dict[str, dict]:
    found = candidates(text, Span(0, len(text)), entities or [], clauses=clauses)
    return {text[c.start : c.end]: c.types for c in found}


def test_patterns_find_what_taggers_miss() -> None:
    text = "Call 0300 303 3032 or ru@nwgnetwork.org about M11295/16, backed by £1.24 million."
    spans = _spans(text)
    assert T.CONTACT in spans["0300 303 3032"]
    assert T.CONTACT in spans["ru@nwgnetwork.org"]
    assert T.REFERENCE in spans["M11295/16"]
    assert T.MONEY in spans["£1.24 million"]


def test_dates_sections_and_acts() -> None:
    text = "Under section 10 of the Local Government Act 1999, report by 30 November 2014."
    spans = _spans(text)
    assert T.DATE in spans["30 November 2014"]
    assert T.LAW in spans["section 10 of the Local Government Act 1999"]


def test_noun_phrases_chain_through_of_but_dates_do_not() -> None:
    text = "There is no single line of management oversight for 9 October 2014 and my report."
    ents = [
        Entity(9, 23, "NP"),  # no single line
        Entity(27, 47, "NP"),  # management oversight
        Entity(52, 66, "DATE"),
        Entity(71, 80, "NP"),  # my report
    ]
    spans = _spans(text, ents)
    assert "no single line of management oversight" in spans
    assert "9 October 2014 and my report" not in spans


def test_clauses_for_why_questions() -> None:
    text = "The cases were referred back because children were judged to be at risk."
    spans = _spans(text, clauses=True)
    assert T.REASON in spans["because children were judged to be at risk"]


def test_junk_spans_are_never_candidates() -> None:
    assert is_junk("they") and is_junk("the") and is_junk("“ ”")
    assert not is_junk("the Council")


def test_a_span_of_the_question_s_own_words_and_titles_is_no_answer() -> None:
    text = "Lucy Allan MP House of Commons. The Rt Hon Amber Rudd MP"
    question = analyse("Who wrote to Lucy Allan?")
    sentence = EvidenceSentence("d", Span(0, len(text)), 0, 0)

    def features(span: str) -> dict[str, float] | None:
        start = text.index(span)
        cand = SpanCandidate(start, start + len(span), {T.PERSON: 1.0}, "entity")
        return span_features(question, cand, text, sentence, [], lambda _: 0.5)

    assert features("Lucy Allan MP") is None
    assert features("The Rt Hon Amber Rudd MP") is not None
