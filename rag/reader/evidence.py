"""Sentences of the retrieved passages, scored for relevance and grounding.

Grounding is what keeps the reader from answering a question the documents do not
answer: every key term and named entity of the question should be found in the
answer's sentence, its neighbours or the document's own header (title, author,
recipients). A question about one place, body or year must not be answered from a
sentence about another.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import cast

from rag.lexical import terms
from rag.reader.question import Question
from rag.store.index import Index
from rag.types import Document, Passage, Span


@dataclass(slots=True)
class EvidenceSentence:
    document_id: str
    span: Span
    index_in_document: int
    passage_rank: int  # 0-based rank of the best passage holding it
    features: dict[str, float] = field(default_factory=dict)
    relevance: float = 0.0
    rank: int = 0  # 0-based rank by relevance among the question's sentences
    metadata: bool = False  # states the document's author, recipient, date or reference


def idf(index: Index, term: str) -> float:
    n = max(len(index.chunks), 1)
    return math.log(1.0 + n / (1.0 + index.document_frequency(term)))


def _metadata_text(doc: Document) -> str:
    meta = doc.metadata
    return " ".join(
        [meta.title, *meta.authors, *meta.recipients, *meta.copied_to, *meta.references]
    )


_MONTHS = (
    "January February March April May June July August September October November December"
).split()


def metadata_spans(doc: Document) -> list[tuple[int, int, str]]:
    """Where the document's own metadata (authors, recipients, date...) stands in its text."""
    meta = doc.metadata
    values: list[tuple[str, str]] = [(a, "author") for a in meta.authors]
    values += [(r, "recipient") for r in meta.recipients]
    values += [(c, "copied") for c in meta.copied_to]
    values += [(r, "reference") for r in meta.references]
    if meta.date and len(meta.date) == 10:
        year, month, day = meta.date.split("-")
        values.append((f"{int(day)} {_MONTHS[int(month) - 1]} {year}", "date"))
    return list(_occurrences(doc.text, tuple(values)))


@lru_cache(maxsize=1024)
def _occurrences(
    text: str, values: tuple[tuple[str, str], ...]
) -> tuple[tuple[int, int, str], ...]:
    """Every occurrence of each value (as written, upper-cased, title-cased) in ``text``.

    Cached: a document's metadata is looked up for every question that reads it.
    """
    spans = []
    for value, kind in values:
        for variant in {value, value.upper(), value.title()}:
            start = text.find(variant)
            while start >= 0:
                spans.append((start, start + len(variant), kind))
                start = text.find(variant, start + 1)
    return tuple(spans)


def collect(
    question: Question,
    passages: list[Passage],
    index: Index,
    *,
    include: list[tuple[str, int]] | None = None,
    memo: dict[Hashable, object] | None = None,
) -> list[EvidenceSentence]:
    """Sentences overlapping the passages, each with its relevance features.

    ``include`` adds the sentences holding given (document id, offset) positions, ranked
    with the passage of their document that ranked best. ``memo`` (one per question, see
    :class:`rag.reader.base.ReadContext`) keeps each sentence's features: they depend on
    the sentence and its best passage's rank only, and reading more passages keeps both.
    """
    memo = {} if memo is None else memo
    seen: dict[tuple[str, int], EvidenceSentence] = {}
    for rank, passage in enumerate(passages):
        chunk = passage.chunk
        ann = index.annotations.get(chunk.document_id)
        if ann is None or not ann.sentences:
            continue
        starts = [s.start for s in ann.sentences]
        first = max(bisect.bisect_right(starts, chunk.start) - 1, 0)
        for i in range(first, len(ann.sentences)):
            sent = ann.sentences[i]
            if sent.start >= chunk.end:
                break
            if sent.end <= chunk.start:
                continue
            key = (chunk.document_id, i)
            if key not in seen:
                seen[key] = EvidenceSentence(chunk.document_id, sent, i, rank)
    doc_rank: dict[str, int] = {}
    for rank, passage in enumerate(passages):
        doc_rank.setdefault(passage.chunk.document_id, rank)
    for doc_id, offset in include or []:
        ann = index.annotations.get(doc_id)
        if ann is None:
            continue
        for i, sent in enumerate(ann.sentences):
            if sent.start <= offset < sent.end:
                if (doc_id, i) not in seen:
                    seen[(doc_id, i)] = EvidenceSentence(doc_id, sent, i, doc_rank.get(doc_id, 0))
                seen[(doc_id, i)].metadata = True
    sentences = list(seen.values())
    weights = {t: idf(index, t) for t in question.terms}
    total = sum(weights.values()) or 1.0
    for ev in sentences:
        done = ("evidence", ev.document_id, ev.index_in_document, ev.passage_rank)
        if done not in memo:
            terms_key = ("document terms", ev.document_id)
            if terms_key not in memo:
                memo[terms_key] = set(terms(index.documents[ev.document_id].text))
            doc_terms = cast(set[str], memo[terms_key])
            _features(ev, question, index, weights, total, doc_terms)
            memo[done] = (ev.features, ev.relevance)
        features, ev.relevance = cast(tuple[dict[str, float], float], memo[done])
        ev.features = dict(features)
    sentences.sort(key=lambda s: -s.relevance)
    for rank, ev in enumerate(sentences):
        ev.rank = rank
        ev.features["sentence_rank"] = math.log1p(rank)
    return sentences


_CAPITALISED_RUN = re.compile(r"\b[A-Z][\w’'-]*(?:\s+(?:(?:of|for|and|the|&)\s+)*[A-Z][\w’'-]*)+")


@lru_cache(maxsize=256)
def document_acronyms(text: str) -> frozenset[str]:
    """Acronyms a document's capitalised names make: "UK Independence Party" -> UKIP.

    A word in capitals contributes all its letters ("UK"), any other capitalised word its
    initial; small joining words are skipped. Lets "UKIP" or "CSE" in a question be found
    in a document that spells the name out.
    """
    found: set[str] = set()
    for match in _CAPITALISED_RUN.finditer(text):
        parts = [w for w in match.group().split() if w[0].isupper()]
        for i in range(len(parts)):
            letters = ""
            for word in parts[i:]:
                letters += word if word.isupper() else word[0]
                if len(letters) >= 2:
                    found.add(letters.upper())
    return frozenset(found)


def _named_in(name: str, present: set[str], acronyms: frozenset[str]) -> bool:
    """Whether every word of a name from the question is found (acronyms expanded)."""
    for word in name.split():
        bare = word.strip(".,;:()’'\"")
        if bare.isupper() and len(bare) >= 2 and bare in acronyms:
            continue
        if not set(terms(bare)) <= present:
            return False
    return True


def _coverage(present: set[str], weights: dict[str, float], total: float) -> float:
    return sum(w for t, w in weights.items() if t in present) / total if weights else 1.0


def _features(
    ev: EvidenceSentence,
    question: Question,
    index: Index,
    weights: dict[str, float],
    total: float,
    doc_terms: set[str],
) -> None:
    doc = index.documents[ev.document_id]
    ann = index.annotations[ev.document_id]
    sentence_text = doc.text[ev.span.start : ev.span.end]
    lo = ann.sentences[max(ev.index_in_document - 1, 0)].start
    hi = ann.sentences[min(ev.index_in_document + 1, len(ann.sentences) - 1)].end
    window_text = doc.text[lo:hi] + " " + _metadata_text(doc)
    sent_terms = set(terms(sentence_text))
    window_terms = set(terms(window_text))
    names = [e for e in question.entities if terms(e)]
    acronyms = document_acronyms(doc.text)
    missing = sum(1 for e in names if not _named_in(e, window_terms, acronyms))
    doc_terms_missing = sum(1 for e in names if not _named_in(e, doc_terms, acronyms))
    numbers_missing = sum(1 for n in question.numbers if n not in window_text)
    numbers_missing_doc = sum(1 for n in question.numbers if n not in doc.text)
    ev.features = {
        "coverage": _coverage(sent_terms, weights, total),
        "window_coverage": _coverage(window_terms, weights, total),
        "missing_entities": float(missing),
        "missing_entities_doc": float(doc_terms_missing),
        "missing_numbers": float(numbers_missing),
        "missing_numbers_doc": float(numbers_missing_doc),
        "passage_rank": math.log1p(ev.passage_rank),
    }
    ev.relevance = (
        1.5 * ev.features["coverage"]
        + 1.0 * ev.features["window_coverage"]
        - 0.8 * missing
        - 0.8 * numbers_missing
        - 0.05 * ev.passage_rank
    )
