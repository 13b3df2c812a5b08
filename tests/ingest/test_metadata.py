"""Metadata on the five real documents and on synthetic letters and notes."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.ingest import load_document
from rag.ingest.metadata import (
    date_from_id,
    extract_metadata,
    is_person_name,
    normalise_name_case,
    parse_date,
)
from rag.types import Metadata

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


def corpus_metadata(name: str) -> Metadata:
    return load_document(CORPUS / f"{name}.txt", CORPUS, max_bytes=1_000_000).metadata


# ----------------------------------------------------------------------------
# Real documents
# ----------------------------------------------------------------------------


def test_pickles_morgan_letter() -> None:
    meta = corpus_metadata("pickles-morgan-2014-09-24")
    assert meta.title == "Safeguarding vulnerable children"
    assert meta.date == "2014-09-24"
    assert meta.authors == ["The Rt Hon Eric Pickles MP", "The Rt Hon Nicky Morgan MP"]
    assert meta.recipients == ["The Leader, Principal Councils in England"]
    assert meta.copied_to == ["all Chairmen of all Health and Wellbeing Boards in England"]
    assert meta.references == []


def test_rudd_letter() -> None:
    meta = corpus_metadata("rudd-2016-10-24")
    assert meta.title == "Letter from The Rt Hon Amber Rudd MP to Lucy Allan MP"
    assert meta.date == "2016-10-24"
    assert meta.authors == ["The Rt Hon Amber Rudd MP"]
    assert meta.recipients == ["Lucy Allan MP"]
    assert meta.copied_to == [
        "Mark Pritchard",
        "Rt Hon Justine Greening MP",
        "Rt Hon Sajid Javid MP",
    ]
    assert meta.references == ["M11295/16"]


def test_timpson_letter() -> None:
    meta = corpus_metadata("timpson-2014-08-28")
    assert meta.title == (
        "Letter from Edward Timpson MP to Councillor Paul Lakin and Martin Kimber"
    )
    assert meta.date == "2014-08-28"
    assert meta.authors == ["Edward Timpson MP"]
    assert meta.recipients == ["Councillor Paul Lakin", "Martin Kimber"]
    assert meta.copied_to == ["Joyce Thacker", "Steve Ashley"]
    assert meta.references == []


def test_wilshaw_advice_note() -> None:
    meta = corpus_metadata("wilshaw-ofsted-advice-2014")
    assert meta.title == (
        "Advice note provided on Rotherham Metropolitan Borough Council to the Secretary of "
        "State for Education, Rt Hon Nicky Morgan MP"
    )
    assert meta.date == "2014"
    assert meta.authors == ["Sir Michael Wilshaw"]
    assert meta.recipients == ["Secretary of State for Education, Rt Hon Nicky Morgan MP"]
    assert meta.copied_to == [
        "Martin Kimber",
        "Steve Ashley",
        "Christine Beaumont",
        "Cllr Paul Lakin",
        "Edward Timpson MP",
        "Paul Kissack",
        "Tom Jeffrey",
        "Graham Archer",
    ]
    assert meta.references == []


def test_news_article() -> None:
    meta = corpus_metadata("news-2014-councils-review")
    assert meta.title == "After Rotherham, councils are told to review child protection"
    assert meta.date == "2014"
    assert meta.authors == []
    assert meta.recipients == []
    assert meta.copied_to == []


# ----------------------------------------------------------------------------
# Synthetic documents
# ----------------------------------------------------------------------------

FORMAL_LETTER = """Department of Examples
1 Example Street
London EX1 2MP

Ms Jane Doe
Chief Executive
Example Borough Council
Exampleton EX3 4AB

Our ref: ABC/123/45
Your ref: JD-2020-7

Wednesday, 3rd March 2021

Dear Ms Doe,

Re: Road maintenance funding

Thank you for your letter about the condition of roads in the borough and the funding
available for repairs this year.

Yours faithfully,

JOHN SMITH
Director of Highways

cc: Peter Brown MP; Mary Green (Council Leader)
"""


def test_formal_letter() -> None:
    meta = extract_metadata(FORMAL_LETTER, doc_id="letters/roads", format_title=None)
    assert meta == Metadata(
        title="Road maintenance funding",
        date="2021-03-03",
        authors=["John Smith"],
        recipients=["Ms Jane Doe"],
        copied_to=["Peter Brown MP", "Mary Green"],
        references=["ABC/123/45", "JD-2020-7"],
    )


SENDER_ON_TOP = """Dr Alan Brown
Chief Medical Officer
www.health.example.org

Mr Carl Jones
12 Mill Lane

March 5, 2019

Dear Carl,

Thank you for raising the question of vaccination rates in your constituency with me.
We will publish new figures in the summer.

With best wishes
"""


def test_sender_at_the_top_when_there_is_no_signature() -> None:
    meta = extract_metadata(SENDER_ON_TOP, doc_id="2019/brown", format_title=None)
    assert meta.authors == ["Dr Alan Brown"]
    assert meta.recipients == ["Mr Carl Jones"]
    assert meta.date == "2019-03-05"
    assert meta.title == "Letter from Dr Alan Brown to Mr Carl Jones"


def test_note_without_salutation_uses_heading_and_first_lines_date() -> None:
    text = (
        "Minutes of the scrutiny committee\n"
        "held on Tuesday, 4 February 2020\n\n"
        "Present: the chair and six members of the committee, with officers from children's "
        "services and the finance team.\n"
    )
    meta = extract_metadata(text, doc_id="minutes/scrutiny-2019", format_title=None)
    assert meta.title == "Minutes of the scrutiny committee held on Tuesday, 4 February 2020"
    assert meta.date == "2020-02-04"
    assert meta.authors == []
    assert meta.recipients == []


def test_format_title_wins_and_byline_gives_author() -> None:
    text = "Council tax to rise\n\nBy Sarah Jones\n\nBills will go up by three per cent.\n"
    meta = extract_metadata(text, doc_id="news/tax", format_title="  Council tax  news ")
    assert meta.title == "Council tax news"
    assert meta.authors == ["Sarah Jones"]
    assert meta.date is None


def test_dates_in_a_paragraph_are_not_the_document_date() -> None:
    text = (
        "Background\n\n"
        "The inspection started on 2 June 2015 and will conclude on 9 October 2015, after "
        "which the report will be published.\n"
    )
    assert extract_metadata(text, doc_id="note-2016", format_title=None).date == "2016"


def test_salutation_role_without_address_block() -> None:
    text = "Dear Minister,\n\nI write about the closure of the library in our town centre.\n"
    meta = extract_metadata(text, doc_id="x", format_title=None)
    assert meta.recipients == ["Minister"]
    assert meta.title == "Letter to Minister"


def test_generic_salutation_names_nobody() -> None:
    text = "Dear Sir or Madam,\n\nPlease find the report attached.\n\nYours sincerely\n\nAnn Lee\n"
    meta = extract_metadata(text, doc_id="x", format_title=None)
    assert meta.recipients == []
    assert meta.authors == ["Ann Lee"]


def test_copied_to_lines_and_prose() -> None:
    text = (
        "Dear Ann,\n\nI have copied this letter to Rt Hon Ed Green MP and to the Chief "
        "Constable.\n\nYours sincerely\n\nBob Hill\n\nCopy to:\nCarol White, Director of Care\n"
        "Dan Black, Chair of Governors\n"
    )
    meta = extract_metadata(text, doc_id="x", format_title=None)
    assert meta.copied_to == ["Rt Hon Ed Green MP", "Carol White", "Dan Black"]


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "whole", "expected"),
    [
        ("24 September 2014", True, "2014-09-24"),
        ("1st Sept. 2014", True, "2014-09-01"),
        ("September 24, 2014", True, "2014-09-24"),
        ("2014-09-24", True, "2014-09-24"),
        ("24/09/2014", True, "2014-09-24"),
        ("September 2014", True, "2014-09"),
        ("31 February 2014", True, None),
        ("Letter of 24 September 2014", True, None),
        ("Letter of 24 September 2014", False, "2014-09-24"),
        ("Schedule 12", False, None),
    ],
)
def test_parse_date(text: str, whole: bool, expected: str | None) -> None:
    assert parse_date(text, whole=whole) == expected


@pytest.mark.parametrize(
    ("doc_id", "expected"),
    [
        ("timpson-2014-08-28", "2014-08-28"),
        ("wilshaw-ofsted-advice-2014", "2014"),
        ("reports/2019-05-summary", "2019-05"),
        ("2015/notes", None),
        ("plan-2014-13-40", "2014"),
        ("no-date", None),
    ],
)
def test_date_from_id(doc_id: str, expected: str | None) -> None:
    assert date_from_id(doc_id) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("THE RT HON ERIC PICKLES MP", "The Rt Hon Eric Pickles MP"),
        ("JANE O'BRIEN-SMITH CBE", "Jane O'Brien-Smith CBE"),
        ("Lucy Allan MP", "Lucy Allan MP"),
    ],
)
def test_normalise_name_case(name: str, expected: str) -> None:
    assert normalise_name_case(name) == expected


@pytest.mark.parametrize(
    ("text", "strict", "expected"),
    [
        ("The Rt Hon Amber Rudd MP", True, True),
        ("Sir Michael Wilshaw", True, True),
        ("Edward Timpson MP", True, True),
        ("Ann Lee", True, False),
        ("Ann Lee", False, True),
        ("Principal Councils in England", False, False),
        ("Rotherham Metropolitan Borough Council", False, False),
        ("Safeguarding vulnerable children", False, False),
        ("Secretary of State", False, False),
    ],
)
def test_is_person_name(text: str, strict: bool, expected: bool) -> None:
    assert is_person_name(text, strict=strict) is expected
