"""Candidate answer spans inside a sentence, each with the answer types it can fill.

Three sources, all in document offsets: the named entities and noun chunks found at
index time; patterns for things a statistical tagger gets wrong in letters (phone
numbers tagged as dates, reference codes, sums of money, sections of acts, runs of
capitalised words such as job titles and bodies); and clauses, for why/how questions
whose answer is a part of a sentence rather than a name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rag.lexical import words_set
from rag.reader.question import EMAIL, PHONE, POSTCODE, URL
from rag.reader.question import AnswerType as T
from rag.types import Entity, Span

_SPACY_TYPES: dict[str, dict[T, float]] = {
    "PERSON": {T.PERSON: 1.0},
    "ORG": {T.ORG: 1.0, T.PLACE: 0.2},
    "NORP": {T.ORG: 0.5, T.THING: 0.5, T.PLACE: 0.3},
    "GPE": {T.PLACE: 1.0, T.ORG: 0.3},
    "LOC": {T.PLACE: 1.0},
    "FAC": {T.PLACE: 0.8, T.ORG: 0.5},
    "DATE": {T.DATE: 1.0, T.DURATION: 0.6},
    "TIME": {T.DATE: 0.7, T.DURATION: 0.5},
    "CARDINAL": {T.NUMBER: 1.0},
    "QUANTITY": {T.NUMBER: 0.9, T.DURATION: 0.3},
    "ORDINAL": {T.NUMBER: 0.4, T.DATE: 0.2},
    "MONEY": {T.MONEY: 1.0, T.NUMBER: 0.6},
    "PERCENT": {T.PERCENT: 1.0, T.NUMBER: 0.6},
    "LAW": {T.LAW: 1.0, T.THING: 0.3},
    "EVENT": {T.THING: 0.8, T.DATE: 0.2},
    "WORK_OF_ART": {T.THING: 0.8},
    "PRODUCT": {T.THING: 0.8},
    "LANGUAGE": {T.THING: 0.8},
    "NP": {T.THING: 0.8},
}

_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"

_PATTERNS: list[tuple[re.Pattern[str], dict[T, float]]] = [
    (re.compile(rf"\b{_DAY}\s+{_MONTH}(?:\s+\d{{4}})?\b"), {T.DATE: 1.0}),
    (re.compile(rf"\b(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MONTH}(?:\s+\d{{4}})?\b"), {T.DATE: 0.9}),
    (re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+\d{{4}}\b"), {T.DATE: 1.0}),
    (re.compile(rf"\b{_MONTH}\s+\d{{4}}\b"), {T.DATE: 1.0}),
    (re.compile(r"\b(?:1[0-9]|20)\d{2}\b"), {T.DATE: 0.8, T.NUMBER: 0.3}),
    (
        re.compile(r"\b(?:from\s+)?(?:1[0-9]|20)\d{2}\s*(?:to|-|–|until)\s*(?:1[0-9]|20)\d{2}\b"),
        {T.DATE: 0.9, T.DURATION: 0.8},
    ),
    (
        re.compile(
            r"\b\d{1,2}(?:st|nd|rd|th)(?:\s+and\s+\d{1,2}(?:st|nd|rd|th))?\s+centur(?:y|ies)\b"
        ),
        {T.DATE: 1.0},
    ),
    (
        re.compile(r"[£$€]\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:million|billion|thousand|bn|m|k)\b)?"),
        {T.MONEY: 1.0, T.NUMBER: 0.6},
    ),
    (
        re.compile(r"\b\d+(?:\.\d+)?\s?(?:%|per\s?cent\b|percent\b)"),
        {T.PERCENT: 1.0, T.NUMBER: 0.6},
    ),
    (re.compile(r"\b\d{1,3}(?:,\d{3})+\b|\b\d+(?:\.\d+)?\b"), {T.NUMBER: 0.9}),
    (PHONE, {T.CONTACT: 1.0, T.NUMBER: 0.7}),
    (EMAIL, {T.CONTACT: 1.0}),
    (URL, {T.CONTACT: 0.9}),
    (POSTCODE, {T.CONTACT: 0.7, T.PLACE: 0.4}),
    (re.compile(r"\b[A-Z]{1,5}\d{2,}(?:[/-]\d+)+\b"), {T.REFERENCE: 1.0}),
    (
        re.compile(
            r"\b(?:[Ss]ection|[Ss]ections|[Pp]art|[Pp]aragraph|[Ss]chedule)\s+\d+[\w()]*"
            r"(?:(?:\s+and\s+|,\s*)(?:[Ss]ection\s+)?\d+[\w()]*)*"
            r"(?:\s+(?:of|to)\s+the\s+(?:[A-Z][\w’']*\s+)+Act\s+\d{4})?"
        ),
        {T.LAW: 1.0, T.REFERENCE: 0.4},
    ),
    (re.compile(r"\b(?:the\s+)?(?:[A-Z][\w’']*\s+)+Act(?:\s+\d{4})?\b"), {T.LAW: 1.0}),
]

# Runs of capitalised words joined by small words: job titles, bodies, names.
_CAPS = re.compile(
    r"\b[A-Z][\w’'&.-]*(?:\s+(?:(?:of|for|and|the|on|in|&|de|du)\s+)*[A-Z][\w’'&.-]*)+"
)
_TITLE_WORDS = re.compile(
    r"\b(?:Director|Secretary|Minister|Chief|Executive|Leader|Chair|Chairman|Constable|Inspector"
    r"|Commissioner|Officer|Adviser|Advisor|Member|Head|Deputy|Assistant|Strategic|Lead"
    r"|Councillor|President|Governor|Manager|Under)\b"
)
_PERSON_TITLE = re.compile(
    r"\b(?:Sir|Dame|Lord|Lady|Mr|Mrs|Ms|Miss|Dr|Prof|Professor|Councillor|Coun|Cllr|Rt Hon|MP)\b"
)

# Clause openers: what follows them is a reason, a purpose or a manner.
_CLAUSE_OPENERS: list[tuple[re.Pattern[str], dict[T, float]]] = [
    (re.compile(r"\b(?:because|since|as a result of|due to|owing to)\b", re.I), {T.REASON: 1.0}),
    (re.compile(r"\b(?:so that|in order to|so as to)\b", re.I), {T.REASON: 0.9, T.MANNER: 0.4}),
    (re.compile(r"\bto\s+(?=[a-z]+\b)"), {T.REASON: 0.6, T.MANNER: 0.4, T.THING: 0.4}),
    (re.compile(r"\bby\s+(?=[a-z]+ing\b)"), {T.MANNER: 1.0, T.REASON: 0.3}),
    (re.compile(r"\b(?:through|via|using)\b", re.I), {T.MANNER: 0.8}),
    (re.compile(r"\b(?:that|whether)\s+"), {T.THING: 0.6, T.REASON: 0.3, T.MANNER: 0.3}),
]


@dataclass(frozen=True, slots=True)
class SpanCandidate:
    """A possible answer span, in document offsets, with the types it can fill."""

    start: int
    end: int
    types: dict[T, float]
    source: str  # "entity", "pattern", "caps", "clause", "sentence"


def entity_types(label: str) -> dict[T, float]:
    """Answer types a spaCy entity label (or "NP") can fill."""
    return dict(_SPACY_TYPES.get(label, {T.THING: 0.5}))


#: Characters never at either end of a span (``*``: markdown emphasis, "**0207 035 8904**").
_EDGE = ",;:.\"“”‘’'(-–—*"


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Shrink a span to drop surrounding whitespace and punctuation (but keep closing ')')."""
    while start < end and (text[start].isspace() or text[start] in _EDGE):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in _EDGE):
        end -= 1
    if end > start and text[end - 1] == ")" and "(" not in text[start:end]:
        end -= 1
    return (start, end) if end > start else None


def _caps_types(surface: str) -> dict[T, float]:
    types = {T.ORG: 0.6, T.THING: 0.4, T.PERSON: 0.3, T.PLACE: 0.2}
    if _TITLE_WORDS.search(surface):
        types[T.ROLE] = 1.0
    if _PERSON_TITLE.search(surface):
        types[T.PERSON] = 0.7
    return types


def _clauses(text: str, sentence: Span) -> Iterable[SpanCandidate]:
    body = text[sentence.start : sentence.end]
    for pattern, types in _CLAUSE_OPENERS:
        for match in pattern.finditer(body):
            start = sentence.start + match.start()
            # A clause runs to the end of the sentence or to the next strong break.
            rest = body[match.end() :]
            stop = re.search(r"[;:]|,\s+(?:and|but|which|who|while|although)\b|\.\s", rest)
            end = sentence.start + match.end() + (stop.start() if stop else len(rest))
            yield SpanCandidate(start, end, dict(types), "clause")
            # The same clause without its opener ("to protect children" -> "protect children").
            yield SpanCandidate(sentence.start + match.end(), end, dict(types), "clause")
    for piece in re.finditer(r"[^,;:]+", body):
        if len(piece.group().split()) >= 3:
            types = {T.REASON: 0.4, T.MANNER: 0.4, T.THING: 0.5}
            yield SpanCandidate(
                sentence.start + piece.start(), sentence.start + piece.end(), types, "clause"
            )
    yield SpanCandidate(
        sentence.start, sentence.end, {T.REASON: 0.4, T.MANNER: 0.4, T.THING: 0.2}, "sentence"
    )


#: Joins that extend a noun phrase ("line of management oversight"); "and" and a comma
#: only join parts of the same kind ("risk assessment and risk management").
_PHRASE_JOINERS = {" of ", " for ", " in "}
_LIST_JOINERS = {" and ", ", ", ", and "}
_PRONOUNS = words_set(
    """i me my we us our you your he him his she her it its they them their this that these
    those who whom which what there here one ones something anything everything someone
    anyone everyone nothing none"""
)


_NO_CHAIN = {T.DATE, T.NUMBER, T.MONEY, T.PERCENT, T.CONTACT, T.REFERENCE}


def _main_type(types: dict[T, float]) -> T:
    return max(types.items(), key=lambda kv: kv[1])[0]


def _chains(text: str, parts: list[SpanCandidate]) -> list[SpanCandidate]:
    """Noun phrases joined by "of", "and", "for", ...: "no single line of management oversight"."""
    ordered = sorted(parts, key=lambda c: (c.start, -c.end))
    out: list[SpanCandidate] = []
    for i, first in enumerate(ordered):
        end, types, joins = first.end, dict(first.types), 0
        for nxt in ordered[i + 1 :]:
            if nxt.start < end:
                continue
            gap = text[end : nxt.start]
            same_kind = _main_type(nxt.types) == _main_type(first.types)
            joinable = gap in _PHRASE_JOINERS or (gap in _LIST_JOINERS and same_kind)
            if not joinable or joins >= 3 or _main_type(first.types) in _NO_CHAIN:
                break
            end, joins = nxt.end, joins + 1
            for t, w in nxt.types.items():
                types[t] = max(types.get(t, 0.0), w * 0.8)
            out.append(SpanCandidate(first.start, end, dict(types), "chain"))
    return out


def is_junk(surface: str) -> bool:
    """A span no one would accept as an answer: a pronoun, a function word, punctuation."""
    tokens = [t.strip(".,;:’'\"“”()").lower() for t in surface.split()]
    tokens = [t for t in tokens if t]
    if not tokens:
        return True
    return all(t in _PRONOUNS or t in {"a", "an", "the", "and", "of", "to", "in"} for t in tokens)


def candidates(
    text: str, sentence: Span, entities: Iterable[Entity], *, clauses: bool
) -> list[SpanCandidate]:
    """All candidate spans in one sentence, deduplicated (types merged by maximum)."""
    raw: list[SpanCandidate] = []
    for ent in entities:
        if sentence.start <= ent.start and ent.end <= sentence.end:
            types = entity_types(ent.label)
            if ent.label == "NP":
                surface = text[ent.start : ent.end]
                if _TITLE_WORDS.search(surface):
                    types[T.ROLE] = 0.8
                if _PERSON_TITLE.search(surface):
                    types[T.PERSON] = 0.5
            start = ent.start
            # spaCy leaves the sign out of a MONEY entity ("1.24 million" of "£1.24
            # million"); the sign belongs to the amount.
            if start > sentence.start and text[start - 1] in "£$€¥" and text[start].isdigit():
                start -= 1
            raw.append(SpanCandidate(start, ent.end, types, "entity"))
    body = text[sentence.start : sentence.end]
    for pattern, types in _PATTERNS:
        for match in pattern.finditer(body):
            raw.append(
                SpanCandidate(
                    sentence.start + match.start(),
                    sentence.start + match.end(),
                    dict(types),
                    "pattern",
                )
            )
    for match in _CAPS.finditer(body):
        raw.append(
            SpanCandidate(
                sentence.start + match.start(),
                sentence.start + match.end(),
                _caps_types(match.group()),
                "caps",
            )
        )
    raw.extend(_chains(text, [c for c in raw if c.source == "entity"]))
    if clauses:
        raw.extend(_clauses(text, sentence))
    merged: dict[tuple[int, int], SpanCandidate] = {}
    for cand in raw:
        bounds = _trim(text, cand.start, cand.end)
        if bounds is None or is_junk(text[bounds[0] : bounds[1]]):
            continue
        key = bounds
        old = merged.get(key)
        if old is None:
            merged[key] = SpanCandidate(bounds[0], bounds[1], cand.types, cand.source)
        else:
            types = dict(old.types)
            for t, w in cand.types.items():
                types[t] = max(types.get(t, 0.0), w)
            merged[key] = SpanCandidate(old.start, old.end, types, old.source)
    return sorted(merged.values(), key=lambda c: (c.start, c.end))
