"""What a question asks for: the expected answer type, its key terms and named entities.

The expected type drives which spans can answer (a "when" question wants a date, a
"which body" question an organisation); key terms and entities drive grounding (a
question about Telford must not be answered from a sentence about Rotherham).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from rag.lexical import STOPWORDS, stem, terms, words, words_set

if TYPE_CHECKING:
    from spacy.language import Language


class AnswerType(StrEnum):
    PERSON = "person"
    ORG = "org"
    PLACE = "place"
    DATE = "date"
    NUMBER = "number"
    MONEY = "money"
    PERCENT = "percent"
    DURATION = "duration"
    REFERENCE = "reference"  # reference numbers, codes
    CONTACT = "contact"  # phone numbers, e-mail and web addresses, postal addresses
    LAW = "law"  # acts, sections, guidance
    ROLE = "role"  # a job title or position
    REASON = "reason"  # why: a clause
    MANNER = "manner"  # how: a clause
    THING = "thing"  # anything a noun phrase or clause can be


# Head nouns of "which X" / "what X" and the type they ask for.
_HEAD_TYPES: dict[AnswerType, frozenset[str]] = {
    AnswerType.PERSON: words_set(
        """person people man woman minister secretary mp inspector leader chief director
    officer councillor adviser advisor chair chairman chairwoman commissioner
    signatory author writer sender recipient king queen duke ruler leaders ministers
    officials official politician member members head constable"""
    ),
    AnswerType.ORG: words_set(
        """body bodies organisation organization organisations council councils authority
    authorities department agency committee board force forces party inspectorate
    service services unit association group company institution government office
    team charity partnership"""
    ),
    AnswerType.PLACE: words_set(
        """place city town country area region county street location village river address
    borough land territory island mountain"""
    ),
    AnswerType.DATE: words_set("date day month year time deadline century decade period week"),
    AnswerType.NUMBER: words_set("number figure total count age amount quantity proportion"),
    AnswerType.MONEY: words_set("money funding fund sum cost price budget"),
    AnswerType.PERCENT: words_set("percentage percent"),
    AnswerType.REFERENCE: words_set("reference ref code"),
    AnswerType.CONTACT: words_set("phone telephone email e-mail fax website postcode"),
    AnswerType.LAW: words_set("act section law legislation statute guidance regulation"),
    AnswerType.ROLE: words_set("role position job title post capacity rank"),
}
_HEAD_OF = {noun: kind for kind, nouns in _HEAD_TYPES.items() for noun in nouns}

_WH = re.compile(
    r"\b(who|whom|whose|when|where|why|which|what|how)\b|\b(in|on|by|for|to|from|at)\s+"
    r"(what|which|whom)\b",
    re.IGNORECASE,
)


@dataclass(slots=True)
class Question:
    """A question, analysed once and read by every reader."""

    text: str
    answer_types: dict[AnswerType, float]
    terms: list[str]  # stemmed content terms, wh-words and stopwords removed
    entities: list[str] = field(default_factory=list)  # surface forms of names in the question
    numbers: list[str] = field(default_factory=list)  # years and numbers the question states
    head: str | None = None  # head noun of "which X"/"what X"
    wh: str | None = None
    #: What the question asks about the document itself: "author", "recipient",
    #: "copied", "date", "reference" (see ``letter_cues``).
    cues: frozenset[str] = frozenset()
    #: "number" or "date" when the question can only be answered by a span holding one
    #: ("how many ...?", "on what date ...?", "what e-mail address ...?"); see
    #: ``required_shape``.
    shape: str | None = None

    @property
    def primary_type(self) -> AnswerType:
        return max(self.answer_types.items(), key=lambda kv: kv[1])[0]

    @property
    def wants_clause(self) -> bool:
        return self.primary_type in (AnswerType.REASON, AnswerType.MANNER)


def _types_for_head(head: str | None) -> dict[AnswerType, float] | None:
    if head is None:
        return None
    kind = _HEAD_OF.get(head) or _HEAD_OF.get(head.rstrip("s"))
    if kind is None:
        return None
    types = {kind: 1.0}
    if kind is AnswerType.PERSON:
        types[AnswerType.ORG] = 0.4
    elif kind is AnswerType.ORG:
        types[AnswerType.PERSON] = 0.2
    elif kind in (AnswerType.NUMBER, AnswerType.MONEY):
        types.update({AnswerType.NUMBER: 1.0, AnswerType.MONEY: 0.8, AnswerType.PERCENT: 0.6})
    return types


def _head_after(tokens: list[str], i: int) -> str | None:
    """First content noun-like word after position ``i`` ("which government body" -> body)."""
    skip = {"kind", "type", "sort", "of", "the", "a", "an"}
    best = None
    for word in tokens[i + 1 : i + 5]:
        if word in skip:
            continue
        if word in STOPWORDS or word in {"did", "does", "do", "is", "was", "were", "are", "has"}:
            break
        best = word
        if word in _HEAD_OF or word.rstrip("s") in _HEAD_OF:
            return word
    return best


def expected_types(text: str) -> tuple[dict[AnswerType, float], str | None, str | None]:
    """Answer types with weights, the head noun and the wh-word, from surface cues."""
    tokens = words(text)
    lowered = " ".join(tokens)
    wh_match = _WH.search(text)
    wh = None
    if wh_match:
        wh = (wh_match.group(1) or wh_match.group(3) or "").lower()
    head: str | None = None

    if re.search(r"\bhow (many|much)\b", lowered):
        if re.search(r"\bhow much\b", lowered):
            return (
                {AnswerType.MONEY: 1.0, AnswerType.NUMBER: 0.7, AnswerType.PERCENT: 0.4},
                None,
                "how",
            )
        return {AnswerType.NUMBER: 1.0, AnswerType.MONEY: 0.3, AnswerType.PERCENT: 0.4}, None, "how"
    if re.search(r"\bhow (long|often)\b", lowered):
        return {AnswerType.DURATION: 1.0, AnswerType.DATE: 0.6, AnswerType.NUMBER: 0.4}, None, "how"
    if re.search(r"\bhow old\b", lowered):
        return {AnswerType.NUMBER: 1.0, AnswerType.DURATION: 0.5}, None, "how"
    if re.search(r"\b(when|what year|which year|what date|which date|what day|by when)\b", lowered):
        noun = re.search(r"\b(?:what|which) (year|date|day)\b", lowered)
        return {AnswerType.DATE: 1.0, AnswerType.DURATION: 0.3}, noun and noun.group(1), "when"
    if wh in ("which", "what") or (wh is None and tokens):
        idx = next((i for i, t in enumerate(tokens) if t in ("which", "what")), -1)
        if idx >= 0:
            head = _head_after(tokens, idx)
            types = _types_for_head(head)
            if types is not None:
                return types, head, wh
    if re.search(r"\b(phone|telephone) number\b|\bcontact\b.*\bnumber\b", lowered):
        return {AnswerType.CONTACT: 1.0}, "phone", wh
    if re.search(r"\be-?mail\b", lowered):
        return {AnswerType.CONTACT: 1.0}, "email", wh
    if re.search(r"\breference\b", lowered):
        return {AnswerType.REFERENCE: 1.0, AnswerType.NUMBER: 0.3}, "reference", wh
    if wh in ("who", "whom", "whose"):
        if re.search(r"(?i:\bwho (is|was))\s+[A-Z]", text) and not re.search(
            r"\bwho (is|was) (the|a|an)\b", lowered
        ):
            # "Who is Amanda Blakeman?" asks for a role, not a name.
            return {AnswerType.ROLE: 1.0, AnswerType.ORG: 0.4, AnswerType.THING: 0.3}, None, wh
        return {AnswerType.PERSON: 1.0, AnswerType.ORG: 0.6, AnswerType.ROLE: 0.2}, None, wh
    if wh == "where":
        return {AnswerType.PLACE: 1.0, AnswerType.ORG: 0.5, AnswerType.CONTACT: 0.3}, None, wh
    if wh == "why":
        return {AnswerType.REASON: 1.0, AnswerType.THING: 0.3}, None, wh
    if wh == "how":
        return {AnswerType.MANNER: 1.0, AnswerType.THING: 0.4}, None, wh
    return {AnswerType.THING: 1.0}, head, wh


#: Entity labels that name something the answer must be about (dates and numbers are
#: grounded separately, as numbers).
_NAME_LABELS = {
    "PERSON",
    "ORG",
    "GPE",
    "LOC",
    "NORP",
    "FAC",
    "EVENT",
    "LAW",
    "PRODUCT",
    "WORK_OF_ART",
}
_NOT_NAMES = {"DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT"}


def _strip_possessive(name: str) -> str:
    return re.sub(r"['’]s?$", "", name.strip())


_YEAR_OR_NUMBER = re.compile(r"\b\d[\d,.]*\b")
_GENERIC = words_set(
    """letter letters document documents say says said state states stated mention
    mentioned write wrote written according much many long often old exactly"""
)


_CUES = {
    "author": re.compile(
        r"\b(wrote|write|written by|signed|signatory|sent|sender|author|from whom|came from)\b",
        re.I,
    ),
    "recipient": re.compile(
        r"\b(to whom|addressed|recipient|sent to|written to|wrote to|letter to|note to)\b", re.I
    ),
    "copied": re.compile(r"\b(copied|cc|copy|copies)\b", re.I),
    "date": re.compile(r"\b(dated?|when)\b.*\b(letter|note|statement|written|sent|signed)\b", re.I),
    "reference": re.compile(r"\b(reference|ref)\b", re.I),
}


_ASKS_NUMBER = re.compile(r"\bhow (many|much)\b", re.I)
_ASKS_DATE = re.compile(r"\b(what|which) (date|year|month)\b", re.I)
_NUMBER_WORDS = words_set(
    """one two three four five six seven eight nine ten eleven twelve thirteen fourteen
    fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy
    eighty ninety hundred thousand million billion dozen dozens hundreds thousands millions
    half quarter"""
)
_DATE_WORDS = words_set(
    """january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday
    friday saturday sunday today yesterday tomorrow"""
)

#: Contact details as written in letters: the patterns that *are* the answer to a
#: question asking for one (also candidate patterns, ``rag.reader.spans``).
PHONE = re.compile(r"(?:\+44\s?|\b0)\d{2,4}[\s-]?\d{3,4}[\s-]?\d{3,4}\b")
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
URL = re.compile(r"(?:https?://|www\.)[^\s,;]+[^\s,;.]")
POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b")

#: Questions that ask for a contact detail, and the pattern any answer must hold. Only
#: unambiguous forms: "e-mail address" (not "who did she e-mail"), a number to ring.
_ASKS_CONTACT: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\be-?mail address(es)?\b|\b(what|which) e-?mail\b", re.I), "email"),
    (re.compile(r"\b(web ?site|web address|web page|url)\b", re.I), "web"),
    (re.compile(r"\bpost ?code\b", re.I), "postcode"),
    (
        re.compile(
            r"\b(phone|telephone|fax|mobile) numbers?\b|\bnumbers?\b.*\b(ring|call|dial)\b"
            r"|\b(ring|call|dial)\b.*\bnumbers?\b",
            re.I,
        ),
        "phone",
    ),
]
_SHAPE_PATTERNS = {"email": EMAIL, "web": URL, "postcode": POSTCODE, "phone": PHONE}


def required_shape(text: str) -> str | None:
    """What any answer to the question must contain: "number", "date", a contact
    detail ("email", "web", "postcode", "phone") or nothing.

    Only for the unambiguous forms: "how many/how much" wants a quantity, "what
    date/year/month" a date, "what e-mail address" an address with an @. "When ...?" is
    left out: it is often answered by a clause.
    """
    if _ASKS_NUMBER.search(text):  # "how many phone numbers ...?" wants a count
        return "number"
    for pattern, shape in _ASKS_CONTACT:
        if pattern.search(text):
            return shape
    if _ASKS_DATE.search(text):
        return "date"
    return None


def has_shape(span_text: str, shape: str) -> bool:
    """Whether a span can answer a question of ``shape``: a contact detail of that kind,
    or a digit or a number/date word."""
    contact = _SHAPE_PATTERNS.get(shape)
    if contact is not None:
        return contact.search(span_text) is not None
    if any(ch.isdigit() for ch in span_text):
        return True
    vocab = _NUMBER_WORDS if shape == "number" else _DATE_WORDS
    return any(w.removesuffix("'s") in vocab for w in words(span_text))


def letter_cues(text: str) -> frozenset[str]:
    """Which facts about a letter itself (its author, recipients, date...) a question asks."""
    return frozenset(name for name, pattern in _CUES.items() if pattern.search(text))


def analyse(text: str, nlp: Language | None = None) -> Question:
    """Analyse a question; ``nlp`` adds named entities (proper names) when given."""
    types, head, wh = expected_types(text)
    drop = {stem(g) for g in _GENERIC}
    if head is not None:
        drop.add(stem(head))
    key_terms = [t for t in dict.fromkeys(terms(text)) if t not in drop]
    entities: list[str] = []
    if nlp is not None:
        doc = nlp(" ".join(text.split()))
        entities = [_strip_possessive(e.text) for e in doc.ents if e.label_ in _NAME_LABELS]
        entities += [
            _strip_possessive(t.text)
            for t in doc
            if t.pos_ == "PROPN"
            and t.ent_type_ not in _NOT_NAMES
            and not any(t.text in e for e in entities)
        ]
        entities = [e for e in entities if e.strip()]
    numbers = _YEAR_OR_NUMBER.findall(text)
    return Question(
        text=text,
        answer_types=types,
        terms=key_terms,
        entities=list(dict.fromkeys(entities)),
        numbers=numbers,
        head=head,
        wh=wh,
        cues=letter_cues(text),
        shape=required_shape(text),
    )
