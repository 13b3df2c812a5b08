"""Heuristic candidate sources and the span features every candidate carries.

The sentences of the read passages are scored for relevance (embedding similarity,
IDF-weighted term coverage, grounding of names and numbers: ``evidence``); the
:class:`HeuristicSource` proposes typed spans of the most relevant ones, and the
:class:`MetadataSource` the letter's header values a question asks for. Every candidate,
whoever proposed it (the QA model too), gets the features of :func:`span_features`: fit
to the expected answer type, distance to the question's terms, not repeating the
question, length. Scoring them is :mod:`rag.reader.scoring`'s job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import replace
from typing import cast

from rag.lexical import stem, words, words_set
from rag.reader.base import Candidate, ReadContext
from rag.reader.evidence import EvidenceSentence, collect, idf, metadata_spans
from rag.reader.question import AnswerType, Question, has_shape
from rag.reader.spans import SpanCandidate, candidates

#: Sentences whose spans are considered; more costs time and rarely helps.
TOP_SENTENCES = 8

_WORD_POS = re.compile(r"\S+")

#: Titles and honorifics that do not make a name new: a span of question words plus these
#: only repeats the question.
_TITLES = words_set(
    """the a an mp mps rt hon right honourable mr mrs ms miss dr sir dame lord lady baroness
    cllr councillor prof professor qc kc obe cbe mbe dbe"""
)


def _type_fit(question: Question, cand: SpanCandidate) -> float:
    return max((question.answer_types.get(t, 0.0) * w for t, w in cand.types.items()), default=0.0)


def _term_positions(text: str, offset: int, qterms: set[str]) -> list[int]:
    """Character offsets (document) of the sentence's words that are question terms."""
    return [
        offset + m.start()
        for m in _WORD_POS.finditer(text)
        if any(stem(w) in qterms for w in words(m.group()))
    ]


def span_features(
    question: Question,
    cand: SpanCandidate,
    doc_text: str,
    sentence: EvidenceSentence,
    positions: list[int],
    specificity: Callable[[list[str]], float],
) -> dict[str, float] | None:
    """Features of one span, or None when it cannot be an answer (it repeats the question)."""
    surface = doc_text[cand.start : cand.end]
    cand_words = words(surface)
    if not cand_words:
        return None
    qterms = set(question.terms)
    cand_terms = [stem(w) for w in cand_words]
    overlap = sum(1 for t in cand_terms if t in qterms) / len(cand_terms)
    if overlap >= 1.0:
        return None
    q_words = set(words(question.text))
    if all(w in q_words or w in _TITLES for w in cand_words):
        # "Lucy Allan MP" for "Who wrote to Lucy Allan?": the question's own words.
        return None
    if positions:
        distance = min(
            0 if cand.start <= p < cand.end else min(abs(p - cand.start), abs(p - cand.end))
            for p in positions
        )
    else:
        distance = 200
    # Question terms just around the span (within 40 characters on either side of it,
    # inside its sentence): "Councillor Paul Lakin" for "which councillor", "backed by
    # £1.24 million of Government funding" for "how much funding".
    lo = max(sentence.span.start, cand.start - 40)
    hi = min(sentence.span.end, cand.end + 40)
    near = {stem(w) for w in words(doc_text[lo : cand.start] + " " + doc_text[cand.end : hi])}
    head = stem(question.head) if question.head else None
    local = sum(1 for t in qterms if t in near) / len(qterms) if qterms else 0.0
    n_words = len(cand_words)
    clause = question.wants_clause
    length_penalty = max(0, n_words - (25 if clause else 6)) / 10.0
    typed = 0.0 if question.primary_type is AnswerType.THING else 1.0
    type_fit = _type_fit(question, cand)
    raw_words = surface.split()
    return {
        **sentence.features,
        "relevance": sentence.relevance,
        "type_fit": type_fit,
        "type_fit_typed": type_fit * typed,
        "typed_question": typed,
        "specificity": specificity([t for t in cand_terms if t not in qterms]),
        "capitalised": sum(1 for w in raw_words if w[:1].isupper()) / len(raw_words),
        "has_digit": 1.0 if any(ch.isdigit() for ch in surface) else 0.0,
        "is_chain": 1.0 if cand.source == "chain" else 0.0,
        "local_coverage": local,
        "head_near": 1.0 if head is not None and (head in near or head in cand_terms) else 0.0,
        "overlap": overlap,
        "proximity": 1.0 / (1.0 + distance / 40.0),
        "length_penalty": length_penalty,
        "log_words": math.log(n_words),
        "is_entity": 1.0 if cand.source in ("entity", "pattern") else 0.0,
        "is_clause": 1.0 if cand.source in ("clause", "sentence") else 0.0,
        "clause_question": 1.0 if clause else 0.0,
    }


def gather_evidence(context: ReadContext) -> list[EvidenceSentence]:
    """Every sentence of the read passages, most relevant first; for a question about a
    letter itself (who wrote it, to whom, when) also the sentences of the retrieved
    documents that state it (a signature line rarely resembles the question)."""
    include: list[tuple[str, int]] = []
    if context.question.cues:
        documents = dict.fromkeys(p.chunk.document_id for p in context.passages[:3])
        for doc_id in documents:
            doc = context.index.documents[doc_id]
            include += [
                (doc_id, start)
                for start, _, kind in metadata_spans(doc)
                if kind in context.question.cues
            ]
    return collect(
        context.question,
        context.passages,
        context.index,
        include=include,
        memo=context.memo,
    )


class HeuristicSource:
    """Typed spans (entities, patterns, noun chunks, clauses) of the most relevant sentences.

    A candidate *source*: it proposes spans with their features; the scorer decides.
    """

    name = "heuristic"

    #: Sentences whose spans are proposed.
    top_sentences = TOP_SENTENCES

    def select(self, evidence: list[EvidenceSentence]) -> list[EvidenceSentence]:
        """The sentences whose spans are proposed: the most relevant and the metadata ones."""
        top = evidence[: self.top_sentences]
        return top + [e for e in evidence[self.top_sentences :] if e.metadata]

    def propose(self, context: ReadContext, evidence: list[EvidenceSentence]) -> list[Candidate]:
        """Candidates (with features) from the selected sentences.

        A sentence's spans and their own features do not change as reading by need
        reads more passages (only the sentence's relevance and rank do), so they are
        kept in the context's memo and each step only adds the sentence's features.
        """
        out: list[Candidate] = []
        cache: dict[object, object] = {}
        for sentence in self.select(evidence):
            key = ("heuristic", sentence.document_id, sentence.span.start, sentence.span.end)
            if key not in context.memo:
                context.memo[key] = self._own(context, sentence, cache)
            shared = {**sentence.features, "relevance": sentence.relevance}
            for cand in cast(list[Candidate], context.memo[key]):
                out.append(replace(cand, features={**shared, **cand.features}))
        return out

    @staticmethod
    def _own(
        context: ReadContext, sentence: EvidenceSentence, cache: dict[object, object]
    ) -> list[Candidate]:
        """The sentence's candidates with only the features of the span itself."""
        question = context.question
        clauses = question.wants_clause or question.primary_type is AnswerType.THING
        doc_id = sentence.document_id
        text = context.index.documents[doc_id].text
        entities = context.index.annotations[doc_id].entities
        shared = {*sentence.features, "relevance"}
        out = []
        for span in candidates(text, sentence.span, entities, clauses=clauses):
            cand = span_candidate_features(
                context, sentence, span, f"heuristic:{span.source}", cache
            )
            if cand is not None:
                cand.features = {k: v for k, v in cand.features.items() if k not in shared}
                out.append(cand)
        return out


class MetadataSource:
    """The letter's own header values (author, recipients, date, references) that the
    question asks for ("who wrote...", "when was ... sent"), as whole candidates."""

    name = "metadata"

    def propose(self, context: ReadContext, evidence: list[EvidenceSentence]) -> list[Candidate]:
        cues = context.question.cues
        if not cues:
            return []
        out: list[Candidate] = []
        cache: dict[object, object] = {}
        for sentence in (e for e in evidence if e.metadata):
            doc = context.index.documents[sentence.document_id]
            for start, end, kind in metadata_spans(doc):
                if kind not in cues or not (
                    sentence.span.start <= start and end <= sentence.span.end
                ):
                    continue
                span = SpanCandidate(start, end, {}, "metadata")
                cand = span_candidate_features(context, sentence, span, "metadata", cache)
                if cand is not None:
                    out.append(cand)
        return out


def span_candidate_features(
    context: ReadContext,
    sentence: EvidenceSentence,
    span: SpanCandidate,
    source: str,
    cache: dict[object, object] | None = None,
) -> Candidate | None:
    """A candidate for ``span`` with every heuristic feature, or None if it cannot answer.

    ``cache`` (one dict per question) keeps per-sentence and per-document work from
    being repeated for every span.
    """
    index, question = context.index, context.question
    cache = {} if cache is None else cache
    doc = index.documents[sentence.document_id]
    sent = sentence.span
    key = ("positions", sentence.document_id, sent.start)
    if key not in cache:
        cache[key] = _term_positions(
            doc.text[sent.start : sent.end], sent.start, set(question.terms)
        )
    positions: list[int] = cache[key]  # type: ignore[assignment]
    meta = metadata_spans(doc)
    top = math.log(1.0 + max(len(index.chunks), 1))

    def specificity(cand_terms: list[str]) -> float:
        """Mean IDF of the span's terms, scaled to [0, 1]: generic words score low."""
        if not cand_terms:
            return 0.0
        return sum(idf(index, t) for t in cand_terms) / len(cand_terms) / top

    feats = span_features(question, span, doc.text, sentence, positions, specificity)
    if feats is None:
        return None
    kinds = {kind for start, end, kind in meta if start < span.end and span.start < end}
    feats["meta_any"] = 1.0 if kinds else 0.0
    feats["meta_match"] = 1.0 if kinds & question.cues else 0.0
    feats["asks_letter"] = 1.0 if question.cues else 0.0
    text = doc.text[span.start : span.end]
    feats["wrong_shape"] = (
        1.0 if question.shape is not None and not has_shape(text, question.shape) else 0.0
    )
    return Candidate(
        document_id=doc.id,
        start=span.start,
        end=span.end,
        text=text,
        sentence=sent,
        score=0.0,
        features=feats,
        source=source,
    )
