"""Metadata read from what a document says about itself: date, people, references.

The documents are mostly letters (letterhead, address block, date line,
salutation, body, sign-off, "cc" list), advice notes and news articles. The
rules below follow that anatomy; they are general heuristics, never keyed on
particular file names or phrases of particular documents.

Everything is read from the cleaned text, one line per paragraph or header line.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rag.types import Metadata

# ----------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_WEEKDAY = r"(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day,?\s+)?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d{2})"
_DATE_PATTERNS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        rf"{_WEEKDAY}{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}",  # 24 September 2014
        rf"{_WEEKDAY}{_MONTH}\s+{_DAY},?\s+{_YEAR}",  # September 24, 2014
        rf"{_YEAR}-(?P<month>\d{{2}})-(?P<day>\d{{2}})",  # 2014-09-24
        rf"{_DAY}[/.](?P<month>\d{{1,2}})[/.]{_YEAR}",  # 24/09/2014 (day first, UK)
    )
)
_MONTH_YEAR = re.compile(rf"{_MONTH}\s+{_YEAR}", re.IGNORECASE)
_ID_FULL_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})-(\d{2})-(\d{2})(?!\d)")
_ID_MONTH = re.compile(r"(?<!\d)((?:19|20)\d{2})-(\d{2})(?!\d)")
_ID_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")

_SALUTATION = re.compile(r"^dear\s+(?P<name>[^,:;]+?)\s*[,:;]?$", re.IGNORECASE)
_VALEDICTION = re.compile(
    r"^(?:yours\s+(?:sincerely|faithfully|truly|ever)|(?:with\s+)?(?:kind|best|warm)\s+"
    r"(?:regards|wishes)|regards|best)[,.!]?$",
    re.IGNORECASE,
)
_SIGNATURE_NOTE = re.compile(r"^(?:\(?signed\)?\b|\[?signature\b|an? (?:\w+ )*signature\b)", re.I)
_CC_LINE = re.compile(r"^(?:cc|c\.c\.|copy to|copies to|copied to)\b\.?:?\s*(?P<rest>.*)$", re.I)
_COPIED_PROSE = re.compile(
    r"\b(?:(?:this|the) letter (?:is|has been|was|will be) cop(?:ied|y)|"
    r"cop(?:ied|y|ying) this letter) to\s+(?P<who>[^.;]+)",
    re.IGNORECASE,
)
_REFERENCE = re.compile(
    r"^(?:(?:our|your|my|cts|case|file|foi)\s+)?ref(?:erence)?\.?(?:\s*(?:no\.?|number))?"
    r"\s*[:\-]?\s*(?P<ref>[A-Za-z0-9][\w/.\-]*)",
    re.IGNORECASE,
)
_CONTACT = re.compile(
    r"(?:https?://|www\.|@|\b(?:tel|telephone|fax|phone|e-?mail)\b\s*[:.]?\s*)", re.IGNORECASE
)
_BYLINE = re.compile(r"^[Bb]y\s+(?P<name>[A-Z][^,|]{2,60})$")

_HONORIFIC = (
    r"(?:(?:the\s+)?(?:rt\.?\s+hon\.?|right\s+hon(?:ourable|\.)?)(?:\s+(?:sir|dame|lord|lady|"
    r"baroness|dr))?|the\s+hon\.?|hon\.?|sir|dame|lord|lady|baroness|baron|dr\.?|"
    r"prof(?:essor|\.)?|councillor|cllr\.?|mr\.?|mrs\.?|ms\.?|miss|mx\.?|rev(?:erend|\.)?)"
)
_HONORIFIC_PREFIX = re.compile(rf"^{_HONORIFIC}\s+", re.IGNORECASE)


def _word_set(words: str) -> frozenset[str]:
    """A set from a whitespace-separated word list (easier to read and extend)."""
    return frozenset(words.split())


_POST_NOMINALS = _word_set("MP MEP MSP MS AM MLA QC KC CB CBE OBE MBE KBE DBE JP DL FRS PC")
_NAME_WORD = re.compile(r"^(?:[A-Z][a-z]*\.|[A-Z](?:[a-z]+|['’][A-Z][a-z]+)(?:-[A-Z][a-z]+)?)$")
# Words that make a capitalised phrase an organisation, place or role, not a person.
_NOT_NAME_WORDS = _word_set(
    """
    council councils board department office committee authority ministry government house
    commons lords police service services care school university trust group association
    unit agency team director executive chief secretary chair chairman leader member minister
    state street road buildings inspector inspectorate commission commissioner social local
    borough metropolitan children children's children’s families people parliament
    parliamentary limited ltd plc foundation centre center hall court square avenue lane
    england london scotland wales united kingdom division directorate safeguarding
    """
)
_GENERIC_SALUTATIONS = frozenset(
    {
        "sir",
        "madam",
        "sir or madam",
        "sir/madam",
        "sirs",
        "colleague",
        "colleagues",
        "all",
        "friend",
        "friends",
        "everyone",
    }
)
_PRONOUNS = frozenset({"them", "you", "him", "her", "us", "me", "it"})
_SENTENCE_END = re.compile(r"[.!?][\"'’”)]*$")
_PARAGRAPH_MIN_LEN = 100  # a header line is never this long; a body paragraph usually is
_HEADER_MAX_LINES = 25
_TITLE_MAX_LEN = 200
_TITLE_MAX_LINES = 3
_SUBJECT_PREFIX = re.compile(r"^(?:re|subject|subj)\s*[:.\-]\s*", re.IGNORECASE)


def extract_metadata(text: str, *, doc_id: str, format_title: str | None) -> Metadata:
    """Read title, date, authors, recipients, copies and references from ``text``."""
    layout = _Layout.parse(text)
    authors = find_authors(layout)
    recipients = find_recipients(layout)
    signatories = {author.lower() for author in authors}
    return Metadata(
        title=find_title(layout, format_title, authors, recipients),
        date=find_date(layout, doc_id),
        authors=authors,
        recipients=recipients,
        # A signature line below a one-line "cc" list is not a copy recipient.
        copied_to=[name for name in find_copied_to(layout) if name.lower() not in signatories],
        references=find_references(layout),
    )


# ----------------------------------------------------------------------------
# Layout: where the header, salutation and sign-off are
# ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
    """The non-blank lines of a document and the landmarks of a letter.

    ``blocks`` groups consecutive lines (no blank line between them), which is
    how a heading wrapped over several lines is recognised.
    """

    lines: tuple[str, ...]
    block_of: tuple[int, ...]  # block number of each line
    salutation: int | None  # index in ``lines``
    valediction: int | None
    header_end: int  # lines[:header_end] are the header (letterhead, address, date)

    @classmethod
    def parse(cls, text: str) -> _Layout:
        lines: list[str] = []
        block_of: list[int] = []
        block = 0
        for raw in text.split("\n"):
            line = raw.strip()
            if not line:
                block += 1
                continue
            lines.append(line)
            block_of.append(block)
        salutation = next((i for i, line in enumerate(lines[:40]) if _SALUTATION.match(line)), None)
        start = salutation if salutation is not None else 0
        valediction = next(
            (i for i in range(start, len(lines)) if _VALEDICTION.match(lines[i])), None
        )
        if salutation is not None:
            header_end = salutation
        else:
            header_end = next(
                (i for i, line in enumerate(lines) if len(line) >= _PARAGRAPH_MIN_LEN),
                len(lines),
            )
        return cls(
            tuple(lines),
            tuple(block_of),
            salutation,
            valediction,
            min(header_end, _HEADER_MAX_LINES),
        )

    @property
    def is_letter(self) -> bool:
        return self.salutation is not None

    @property
    def header(self) -> Sequence[str]:
        return self.lines[: self.header_end]

    def block_at(self, index: int) -> list[str]:
        """The lines of the block starting at ``index`` (a wrapped heading)."""
        block = self.block_of[index]
        out = []
        for i in range(index, len(self.lines)):
            if self.block_of[i] != block:
                break
            out.append(self.lines[i])
        return out


# ----------------------------------------------------------------------------
# Date
# ----------------------------------------------------------------------------


def find_date(layout: _Layout, doc_id: str) -> str | None:
    """The letter's date line, else a date in the header, else one in the id."""
    header = layout.header
    for line in header:
        found = parse_date(line, whole=True)
        if found:
            return found
    for line in header:
        found = parse_date(line, whole=False)
        if found:
            return found
    return date_from_id(doc_id)


def parse_date(text: str, *, whole: bool) -> str | None:
    """An ISO date for a full date in ``text`` (or that *is* ``text`` when ``whole``).

    A line that is only a month and year ("September 2014") gives ``2014-09``.
    """
    text = text.strip().rstrip(".")
    for pattern in _DATE_PATTERNS:
        match = pattern.fullmatch(text) if whole else pattern.search(text)
        if match:
            iso = _iso(match.group("year"), match.group("month"), match.group("day"))
            if iso:
                return iso
    if whole:
        match = _MONTH_YEAR.fullmatch(text)
        if match:
            return f"{match.group('year')}-{_MONTHS[match.group('month').lower()]:02d}"
    return None


def _iso(year: str, month: str, day: str) -> str | None:
    month_number = int(month) if month.isdigit() else _MONTHS.get(month.lower().rstrip("."), 0)
    try:
        return dt.date(int(year), month_number, int(day)).isoformat()
    except ValueError:
        return None


def date_from_id(doc_id: str) -> str | None:
    """``timpson-2014-08-28`` -> ``2014-08-28``; ``report-2014`` -> ``2014``."""
    name = doc_id.rsplit("/", 1)[-1]
    for match in _ID_FULL_DATE.finditer(name):
        iso = _iso(match.group(1), match.group(2), match.group(3))
        if iso:
            return iso
    for match in _ID_MONTH.finditer(name):
        if 1 <= int(match.group(2)) <= 12:
            return f"{match.group(1)}-{match.group(2)}"
    year = _ID_YEAR.search(name)
    return year.group(1) if year else None


# ----------------------------------------------------------------------------
# People
# ----------------------------------------------------------------------------


def normalise_name_case(name: str) -> str:
    """``THE RT HON ERIC PICKLES MP`` -> ``The Rt Hon Eric Pickles MP``.

    Only an all-capitals name is changed; post-nominals stay in capitals.
    """
    if not name.isupper():
        return name
    return " ".join(
        word if word.rstrip(",.") in _POST_NOMINALS else _capitalise(word) for word in name.split()
    )


def _capitalise(word: str) -> str:
    return re.sub(r"(^|['’\-])([a-z])", lambda m: m.group(1) + m.group(2).upper(), word.lower())


def is_person_name(text: str, *, strict: bool = True) -> bool:
    """Does ``text`` look like a person's name?

    Strict: it needs an honorific ("The Rt Hon", "Sir", "Councillor") or a
    post-nominal ("MP", "CBE"). Lenient (used right after "Yours sincerely"):
    two to four capitalised words that are not an organisation or a role.
    """
    text = normalise_name_case(text.strip().rstrip(",."))
    words = text.split()
    if not 1 <= len(words) <= 8:
        return False
    prefix = _HONORIFIC_PREFIX.match(text)
    core = text[prefix.end() :].split() if prefix else words
    suffixes = 0
    while core and core[-1].rstrip(",") in _POST_NOMINALS:
        core.pop()
        suffixes += 1
    if not 1 <= len(core) <= 4 or not all(_NAME_WORD.match(word) for word in core):
        return False
    if any(word.lower() in _NOT_NAME_WORDS for word in core):
        return False
    if prefix or suffixes:
        return len(core) >= 1 and (len(core) >= 2 or bool(prefix))
    return not strict and len(core) >= 2


def find_authors(layout: _Layout) -> list[str]:
    """The sign-off names, else the sender at the top, else a news byline."""
    names = _signed_after_valediction(layout) or _closing_names(layout)
    if not names and layout.is_letter:
        names = [line for line in _sender_block(layout) if is_person_name(line)][:1]
    if not names:
        names = _byline(layout)
    return _unique(normalise_name_case(name) for name in names)


def _signed_after_valediction(layout: _Layout) -> list[str]:
    if layout.valediction is None:
        return []
    names: list[str] = []
    for line in layout.lines[layout.valediction + 1 : layout.valediction + 8]:
        if _SIGNATURE_NOTE.match(line):
            continue
        if not is_person_name(line, strict=False):
            break
        names.append(line)
    return names


def _closing_names(layout: _Layout) -> list[str]:
    """Stand-alone name lines after a letter's body: the signatories."""
    if layout.salutation is None:
        return []
    names: list[str] = []
    for line in layout.lines[layout.salutation + 1 :]:
        if is_person_name(line):
            names.append(line)
        elif names and not _SIGNATURE_NOTE.match(line):
            break
    return names


def _sender_block(layout: _Layout) -> list[str]:
    address = set(_address_block(layout))
    return [line for line in layout.header if line not in address]


def _byline(layout: _Layout) -> list[str]:
    for line in layout.lines[:10]:
        match = _BYLINE.match(line)
        if match and is_person_name(match.group("name"), strict=False):
            return [match.group("name")]
    return []


def _address_block(layout: _Layout) -> list[str]:
    """The recipient's address: header lines just above the date/salutation.

    Walking up from the salutation, date and reference lines are skipped; the
    block ends at the sender's contact details (web address, e-mail, phone).
    """
    if layout.salutation is None:
        return []
    block: list[str] = []
    for line in reversed(layout.lines[: layout.salutation]):
        if parse_date(line, whole=True) or _REFERENCE.match(line):
            if block:
                break
            continue
        if _CONTACT.search(line) or len(block) >= 8:
            break
        block.append(line)
    return block[::-1]


def find_recipients(layout: _Layout) -> list[str]:
    """Who the letter is addressed to, from the salutation and the address block.

    Each person named in "Dear ..." is looked up in the address block for the
    full name ("Dear Lucy," -> "Lucy Allan MP"). A role ("Dear Leader," ->
    "The Leader") takes the organisation on the following line. When there is no
    address block, a heading addressed "to the <salutation> ..." gives the name.
    """
    if layout.salutation is None:
        return []
    match = _SALUTATION.match(layout.lines[layout.salutation])
    greeting = match.group("name").strip() if match else ""
    address = _address_block(layout)
    recipients: list[str] = []
    for part in _split_people(greeting):
        if part.lower() in _GENERIC_SALUTATIONS:
            continue
        found = _from_address(part, address) or _from_heading(part, layout)
        recipients.append(found or part)
    return _unique(normalise_name_case(name) for name in recipients)


def _split_people(text: str) -> list[str]:
    return [part.strip() for part in re.split(r",|\s+and\s+|\s*&\s*", text) if part.strip()]


def _from_address(part: str, address: list[str]) -> str | None:
    has_title = bool(_HONORIFIC_PREFIX.match(part + " ")) and len(part.split()) > 1
    key = part.split()[-1] if has_title else part.split()[0]
    pattern = re.compile(rf"\b{re.escape(key)}\b", re.IGNORECASE)
    for index, line in enumerate(address):
        if not pattern.search(line):
            continue
        if is_person_name(line, strict=False) or is_person_name(line):
            return line
        if line.lower().startswith("the ") and not _HONORIFIC_PREFIX.match(line):
            following = address[index + 1 : index + 2]
            return ", ".join([line, *following])
        return _name_around(line, key, surname=has_title)
    return None


def _name_around(line: str, key: str, *, surname: bool) -> str | None:
    """Cut a person's name out of a run-on address line around ``key``.

    With a surname, one given name before it (and an honorific before that);
    with a given name, the surname after it. Post-nominals are kept.
    """
    words = re.split(r"\s+", line)
    bare = [word.strip(",;") for word in words]
    try:
        at = next(i for i, word in enumerate(bare) if word.lower() == key.lower())
    except StopIteration:
        return None
    start, end = at, at + 1
    if surname:
        if start > 0 and _NAME_WORD.match(bare[start - 1]) and words[start - 1][-1:] != ",":
            start -= 1
            if start > 0 and _HONORIFIC_PREFIX.match(bare[start - 1] + " "):
                start -= 1
    elif end < len(bare) and _NAME_WORD.match(bare[end]) and words[at][-1:] != ",":
        end += 1
    while end < len(bare) and bare[end] in _POST_NOMINALS and words[end - 1][-1:] != ",":
        end += 1
    return " ".join(bare[start:end])


def _from_heading(part: str, layout: _Layout) -> str | None:
    """ "... to the Secretary of State for Education, Rt Hon Nicky Morgan MP"."""
    pattern = re.compile(rf"\bto\s+(?:the\s+)?({re.escape(part)}\b.*)$", re.IGNORECASE)
    for text in _heading_candidates(layout):
        match = pattern.search(text)
        if match:
            return match.group(1).rstrip(" .")
    return None


def _heading_candidates(layout: _Layout) -> list[str]:
    subject = _subject(layout)
    headings = [subject] if subject else []
    return headings + [" ".join(layout.block_at(i)) for i in range(layout.header_end)]


def find_copied_to(layout: _Layout) -> list[str]:
    """Names after "cc" (a line or a list of lines) or in "copied this letter to ..."."""
    names: list[str] = []
    for index, line in enumerate(layout.lines):
        match = _CC_LINE.match(line)
        if match:
            names.extend(_names_in(match.group("rest")))
            names.extend(_cc_continuation(layout.lines[index + 1 :]))
        for prose in _COPIED_PROSE.finditer(line):
            names.extend(_names_in(prose.group("who"), allow_group=True))
    return _unique(normalise_name_case(name) for name in names)


def _cc_continuation(lines: Sequence[str]) -> list[str]:
    """Following lines of a cc list, each starting with a person's name."""
    names: list[str] = []
    for line in lines:
        first = _strip_parentheses(line).split(",")[0].strip()
        if not is_person_name(first, strict=False):
            break
        names.append(first)
    return names


def _names_in(text: str, *, allow_group: bool = False) -> list[str]:
    """People named in a list like "A (role), B, Chief Executive, and C MP".

    With ``allow_group`` a phrase naming no person but a group ("all Chairmen of
    Health and Wellbeing Boards in England") is returned as it is.
    """
    cleaned = _strip_parentheses(text)
    parts = re.split(r",|;|\s+and\s+(?:to\s+)?|\s*&\s*", cleaned)
    names = [part.strip().rstrip(".") for part in parts]
    names = [name for name in names if name and is_person_name(name, strict=False)]
    if names or not allow_group:
        return names
    phrase = cleaned.strip().rstrip(".")
    first = phrase.split(" ", 1)[0].lower() if phrase else ""
    if not phrase or first in _PRONOUNS or len(phrase.split()) > 12:
        return []
    return [phrase]


def _strip_parentheses(text: str) -> str:
    previous = None
    while previous != text:
        previous, text = text, re.sub(r"\s*\([^()]*\)", "", text)
    return text


# ----------------------------------------------------------------------------
# References and title
# ----------------------------------------------------------------------------


def find_references(layout: _Layout) -> list[str]:
    """Reference numbers stated as "Our ref:", "Your ref", "CTS Reference: ..."."""
    refs = []
    for line in layout.lines:
        match = _REFERENCE.match(line)
        if match and any(ch.isdigit() for ch in match.group("ref")):
            refs.append(match.group("ref").rstrip(".,;"))
    return _unique(refs)


def find_title(
    layout: _Layout, format_title: str | None, authors: list[str], recipients: list[str]
) -> str:
    """The format's title, a subject line, "Letter from A to B", or a heading."""
    if format_title and format_title.strip():
        return " ".join(format_title.split())
    subject = _subject(layout)
    if subject:
        return subject
    if layout.is_letter and (authors or recipients):
        return _letter_title(authors, recipients)
    return _first_heading(layout)


def _subject(layout: _Layout) -> str | None:
    """A short heading right after the salutation, joined if it wraps."""
    if layout.salutation is None or layout.salutation + 1 >= len(layout.lines):
        return None
    return _heading_text(layout.block_at(layout.salutation + 1))


def _heading_text(block: list[str]) -> str | None:
    if not block or len(block) > _TITLE_MAX_LINES:
        return None
    text = _SUBJECT_PREFIX.sub("", " ".join(block)).strip()
    if not text or len(text) > _TITLE_MAX_LEN or text.endswith(","):
        return None
    if any(_SENTENCE_END.search(line) for line in block):
        return None
    return text


def _letter_title(authors: list[str], recipients: list[str]) -> str:
    title = "Letter"
    if authors:
        title += " from " + _join_names(authors)
    if recipients:
        title += " to " + _join_names(recipients)
    return title


def _join_names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _first_heading(layout: _Layout) -> str:
    if not layout.lines:
        return ""
    heading = _heading_text(layout.block_at(0))
    if heading:
        return heading
    first = layout.lines[0]
    return first if len(first) <= _TITLE_MAX_LEN else ""


def _unique(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = " ".join(item.lower().split())
        if item and key not in seen:
            seen.add(key)
            out.append(item)
    return out
