"""Cleaning rules, checked on the real corpus and on small synthetic inputs."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from rag.ingest.clean import clean, normalise_line, undouble
from rag.ingest.loaders import join_pages
from rag.types import LoadedText

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
NAMES = [
    "news-2014-councils-review",
    "pickles-morgan-2014-09-24",
    "rudd-2016-10-24",
    "timpson-2014-08-28",
    "wilshaw-ofsted-advice-2014",
]
CAPTION = "Education secretary Nicky Morgan"
# Footnote markers glued to words in the Wilshaw note, and the words without them.
WILSHAW_MARKERS = {"functions1.": "functions.", "guidance2,": "guidance,", "now3.": "now."}
WILSHAW_MARKERS["functions4."] = "functions."


def raw(name: str) -> str:
    return (CORPUS / f"{name}.txt").read_text(encoding="utf-8")


def cleaned(name: str) -> str:
    text, pages = clean(LoadedText(text=raw(name), format="txt"))
    assert pages == []
    return text


def txt(text: str) -> str:
    return clean(LoadedText(text=text, format="txt"))[0]


# ----------------------------------------------------------------------------
# Real corpus
# ----------------------------------------------------------------------------


def test_hide_ad_lines_are_removed_from_the_news_article() -> None:
    text = cleaned("news-2014-councils-review")
    assert raw("news-2014-councils-review").count("Hide Ad") == 6
    assert "Hide Ad" not in text
    assert "\n\n\n" not in text


def test_doubled_caption_is_kept_once() -> None:
    text = cleaned("news-2014-councils-review")
    assert text.count(CAPTION) == 1
    assert CAPTION + "Education" not in text
    assert text.startswith(
        "After Rotherham, councils are told to review child protection\n\n" + CAPTION + "\n"
    )


def test_wilshaw_footnote_markers_removed_and_bodies_kept() -> None:
    text = cleaned("wilshaw-ofsted-advice-2014")
    for glued, plain in WILSHAW_MARKERS.items():
        assert glued not in text
        assert plain in text
    assert "in the performance of my own functions. I strongly urge" in text
    assert "does not comply with statutory guidance, including ascertaining" in text
    lines = text.split("\n")
    assert (
        "1 Section 119(3)(a) and section 117(2)(a) of the Education and Inspections Act 2006"
        in lines
    )
    assert "2 Working Together to Safeguard Children 2013" in lines
    assert (
        "3 Section 115 and paragraph 6 of Schedule 12 to the Education and Inspections Act 2006"
        in lines
    )
    assert (
        lines.count(
            "4 Section 118(3) and section 149 and paragraph 8(1) of Schedule 13 to "
            "the Education and Inspections Act 2006."
        )
        == 1
    )
    # Numbers that are not markers are never touched.
    assert "Children 2013" in text
    assert "Schedule 12 to" in text
    assert "on the 19th September 2014" in text


def test_wilshaw_wrapped_lines_are_joined() -> None:
    text = cleaned("wilshaw-ofsted-advice-2014")
    assert (
        "The local authority SIF inspection will conclude on 9 October 2014 and my report "
        "will be published in November 2014." in text
    )
    # A paragraph wrapped after a full stop is still one paragraph.
    assert "do not receive performance information. Consequently, they are unable" in text
    # A wrap across the blank line some extractors insert is joined too.
    assert "there is a lack of clear leadership" in text
    assert (
        "cc Edward Timpson MP, Parliamentary Under Secretary of State for Children and Families"
        in text
    )


def test_wilshaw_lists_and_headings_stay_on_their_own_lines() -> None:
    lines = cleaned("wilshaw-ofsted-advice-2014").split("\n")
    for line in (
        "Background",
        "Emerging findings",
        "the leadership of social services in Rotherham Council",
        "the effectiveness of social work practice and management oversight",
        "the Local Safeguarding Children Board.",
        "Yours sincerely",
        "Sir Michael Wilshaw",
        "Paul Kissack, Director, Children’s Social Care",
        "Tom Jeffrey, Director General for Children, Young People and Families",
    ):
        assert line in lines
    assert any(line.startswith("a) Rotherham Metropolitan Borough Council") for line in lines)
    assert any(line.startswith("3. The work of the Local Safeguarding") for line in lines)


def test_pickles_address_lines_stay_separate() -> None:
    lines = cleaned("pickles-morgan-2014-09-24").split("\n")
    for line in (
        "2 Marsham Street",
        "London SW1P 4DF",
        "Sanctuary Buildings Great Smith Street",
        "Westminster London SW1P 3BT",
        "The Leader",
        "Principal Councils in England",
        "24 September 2014",
        "Dear Leader,",
        "Safeguarding vulnerable children",
        "THE RT HON ERIC PICKLES MP",
    ):
        assert line in lines
    # The extractor's broken list item is not glued onto its neighbour.
    assert "- decision making on sensitive issues;" in lines


@pytest.mark.parametrize("name", NAMES)
def test_no_blank_runs_no_stray_spaces(name: str) -> None:
    text = cleaned(name)
    assert "\n\n\n" not in text
    assert text == text.strip()
    for line in text.split("\n"):
        assert line == line.strip()
        assert "  " not in line
        assert "\t" not in line


def _removed_and_added(name: str) -> tuple[Counter[str], Counter[str]]:
    """The words cleaning is allowed to remove from, and add to, each document."""
    removed: Counter[str] = Counter()
    added: Counter[str] = Counter()
    if name == "news-2014-councils-review":
        removed.update(["Hide", "Ad"] * 6)
        # The glued "XX" caption line and its repeat "X" become a single "X".
        removed.update(f"{CAPTION}{CAPTION}".split() + CAPTION.split())
        added.update(CAPTION.split())
    if name == "wilshaw-ofsted-advice-2014":
        removed.update(list(WILSHAW_MARKERS))
        added.update(list(WILSHAW_MARKERS.values()))
    return removed, added


@pytest.mark.parametrize("name", NAMES)
def test_all_words_are_preserved(name: str) -> None:
    """Cleaned words == raw words - removed artefacts (+ the de-glued forms)."""
    before, after = Counter(raw(name).split()), Counter(cleaned(name).split())
    removed, added = _removed_and_added(name)
    assert not removed - before
    assert before - removed + added == after


@pytest.mark.parametrize("name", NAMES)
def test_every_raw_line_survives_verbatim(name: str) -> None:
    """A quote that lies within one raw line is found in the stored text."""
    text = cleaned(name)
    for line in raw(name).split("\n"):
        line = " ".join(line.split())
        for glued, plain in WILSHAW_MARKERS.items():
            line = line.replace(glued, plain)
        if line in ("Hide Ad", f"{CAPTION}{CAPTION}"):
            continue
        assert line in text


# ----------------------------------------------------------------------------
# Synthetic inputs for artefacts the corpus does not show
# ----------------------------------------------------------------------------


def test_pua_and_bullet_glyphs_become_list_markers() -> None:
    source = "Steps:\n\uf0b7\tFirst step\n•  Second step\n▪Third step\n\uf0a7\nFourth step\n"
    assert txt(source) == "Steps:\n- First step\n- Second step\n- Third step\n- Fourth step"
    assert txt("Call \ue000us on the\uf0e0 number") == "Call us on the number"
    # A bullet inside a line is text, not a list marker.
    assert txt("Home • News • Sport") == "Home • News • Sport"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("  too   many\tspaces  ", "too many spaces"),
        ("non\u00a0breaking", "non breaking"),
        ("\uf0b7 item", "- item"),
        ("● item", "- item"),
        ("“curly” ‘quotes’ — kept", "“curly” ‘quotes’ — kept"),
    ],
)
def test_normalise_line(line: str, expected: str) -> None:
    assert normalise_line(line) == expected


def test_hyphenation_at_line_end_is_undone_only_between_lower_case_letters() -> None:
    assert txt("an exam-\nple of it") == "an example of it"
    assert txt("the Anglo-\nSaxon period") == "the Anglo-\nSaxon period"
    assert txt("a list -\nitem") == "a list -\nitem"
    assert txt("well-\n\nknown") == "well-\n\nknown"


def test_page_furniture_lines_are_removed() -> None:
    source = (
        "Annual report\n"
        "______________________\n"
        "The council met.\n"
        "Page 3 of 7\n"
        "- 3 -\n"
        "────────────\n"
        "The council voted.\fNext page text.\n"
        "12\n"
    )
    assert txt(source) == "Annual report\nThe council met.\nThe council voted.\nNext page text."


def test_undouble_only_exact_concatenations() -> None:
    assert undouble("Nicky MorganNicky Morgan") == "Nicky Morgan"
    assert undouble("Budget 2015Budget 2015") == "Budget 2015"
    assert undouble("haha") == "haha"
    assert undouble("Walla Walla") == "Walla Walla"
    assert undouble("NoSpacesHereNoSpacesHere") == "NoSpacesHereNoSpacesHere"


def test_repeated_short_lines_are_not_deduplicated() -> None:
    assert txt("Yes\nYes\nNo") == "Yes\nYes\nNo"


def test_footnote_markers_need_a_matching_body() -> None:
    source = "The rule applies to functions1 and sections2.\n\n1\nSection 5 of the Act\n"
    # Footnote 1 has a body; "sections2" has none and keeps its digit.
    assert txt(source) == "The rule applies to functions and sections2.\n\n1 Section 5 of the Act"


def test_markers_after_their_body_are_not_removed() -> None:
    source = "Intro.\n1\nNote text here\n\nLater mention of items1 in text.\n"
    assert txt(source) == "Intro.\n1 Note text here\n\nLater mention of items1 in text."


WRAPPED = (
    "Dear Chair,\n"
    "\n"
    "Borough Hall\n"
    "1 High Street\n"
    "\n"
    "The committee considered the report at its meeting and agreed that the\n"
    "proposals should be published for consultation before the end of the\n"
    "year. The chair thanked officers for their work on the review and asked\n"
    "for a further report in the spring.\n"
    "\n"
    "The main risks were:\n"
    "the cost of the new service and its effect on the wider council budget\n"
    "the time needed to recruit staff to the new teams across the borough\n"
    "the risk of delay.\n"
)


def test_wrapped_paragraph_is_joined_but_short_lines_are_not() -> None:
    lines = txt(WRAPPED).split("\n")
    assert lines[:4] == ["Dear Chair,", "", "Borough Hall", "1 High Street"]
    assert (
        "The committee considered the report at its meeting and agreed that the proposals "
        "should be published for consultation before the end of the year. The chair thanked "
        "officers for their work on the review and asked for a further report in the spring."
    ) in lines
    assert lines[-4:] == [
        "The main risks were:",
        "the cost of the new service and its effect on the wider council budget",
        "the time needed to recruit staff to the new teams across the borough",
        "the risk of delay.",
    ]


@pytest.mark.parametrize("fmt", ["docx", "html", "md"])
def test_formats_without_pages_keep_their_lines_and_numbers(fmt: str) -> None:
    text, _ = clean(LoadedText(text=WRAPPED + "\n3\nfootnote-like line\n\n42", format=fmt))
    assert "agreed that the\nproposals" in text
    assert text.endswith("\n3\nfootnote-like line\n\n42")


def _page_texts(text: str, starts: list[int]) -> list[str]:
    ends = [*starts[1:], len(text)]
    return [text[start:end] for start, end in zip(starts, ends, strict=True)]


def test_page_starts_are_exact_after_cleaning() -> None:
    pages = [
        "Report title\n\n  Hide Ad\nFirst   page body.\nPage 1 of 3\n",
        "2\nSecond page \uf0b7 body with exam-\nple word.\n\n\n\nMore text.\n2\n",
        "\n\nThird page.\n________\n3",
    ]
    source, starts = join_pages(pages)
    text, new_starts = clean(LoadedText(text=source, format="pdf", page_starts=starts))
    assert len(new_starts) == 3
    assert new_starts[0] == 0
    assert _page_texts(text, new_starts) == [
        "Report title\n\nFirst page body.\n\n",
        "Second page body with example word.\n\nMore text.\n\n",
        "Third page.",
    ]


def test_single_page_input_has_no_page_starts() -> None:
    assert clean(LoadedText(text="Just text.", format="txt")) == ("Just text.", [])


def test_cleaning_is_idempotent_on_the_corpus() -> None:
    for name in NAMES:
        once = cleaned(name)
        assert txt(once) == once, name


def test_words_only_change_where_a_rule_says_so() -> None:
    source = "Schedule 12 and 2013 and SW1P 4DF and M11295/16 stay as they are."
    assert txt(source) == source
    assert re.search(r"\d", txt("Call 0303 444 3450 now.")) is not None
