"""The default reader, built from what ships: typed spans inside the most relevant sentences.

For each question: score the sentences of the retrieved passages (embedding similarity,
IDF-weighted term coverage, grounding of names and numbers), then score candidate spans
inside the best sentences (fit to the expected answer type, distance to the question's
terms in the sentence, not repeating the question, length). The features go through a
logistic model whose weights live in ``weights.json`` so they can be refit without
touching code; the output is a probability-like score in [0, 1].
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.lexical import stem, words, words_set
from rag.reader.base import Candidate, ReadContext
from rag.reader.evidence import EvidenceSentence, collect, idf, metadata_spans
from rag.reader.question import AnswerType, Question, has_shape
from rag.reader.spans import SpanCandidate, candidates

WEIGHTS_FILE = Path(__file__).with_name("weights.json")

#: Highest score of an answer whose document never mentions a name or number from the
#: question.
UNGROUNDED_CAP = 0.02

#: Highest score of a span that cannot have the answer's shape: no number for "how many",
#: no date for "what date" (see ``question.required_shape``).
WRONG_SHAPE_CAP = 0.05

#: Sentences whose spans are considered; more costs time and rarely helps.
TOP_SENTENCES = 8

_WORD_POS = re.compile(r"\S+")

#: Titles and honorifics that do not make a name new: a span of question words plus these
#: only repeats the question.
_TITLES = words_set(
    """the a an mp mps rt hon right honourable mr mrs ms miss dr sir dame lord lady baroness
    cllr councillor prof professor qc kc obe cbe mbe dbe"""
)


@dataclass(frozen=True, slots=True)
class LogisticModel:
    """score = sigmoid(bias + Σ weight·feature); features absent from ``weights`` are ignored."""

    weights: dict[str, float]
    bias: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogisticModel:
        return cls(weights=dict(data["weights"]), bias=float(data["bias"]))

    def to_dict(self) -> dict[str, Any]:
        return {"bias": self.bias, "weights": self.weights}

    def logit(self, features: dict[str, float]) -> float:
        return self.bias + sum(w * features.get(name, 0.0) for name, w in self.weights.items())

    def __call__(self, features: dict[str, float]) -> float:
        return sigmoid(self.logit(features))


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))


@dataclass(frozen=True, slots=True)
class ReaderWeights:
    """A reader's fitted parameters (see ``rag.reader.fit``).

    ``ranker`` orders the candidate spans of one question; ``calibration`` turns the best
    candidate's ranker logit and its margin over the runner-up into the probability that
    the answer is right; ``threshold`` is the abstention cut-off chosen on the dev split.
    """

    ranker: LogisticModel
    calibration: LogisticModel
    threshold: float

    @classmethod
    def load(cls, section: str, path: Path = WEIGHTS_FILE) -> ReaderWeights:
        """The fitted section, or neutral weights (rank by ``fallback``) before a first fit."""
        data = json.loads(path.read_text(encoding="utf-8")).get(section)
        if data is None:
            return cls.unfitted()
        return cls(
            ranker=LogisticModel.from_dict(data["ranker"]),
            calibration=LogisticModel.from_dict(data["calibration"]),
            threshold=float(data["threshold"]),
        )

    @classmethod
    def unfitted(cls) -> ReaderWeights:
        """Rank by the QA model's logit if present, else by sentence relevance and type fit."""
        ranker = LogisticModel(
            weights={"qa_logit": 1.0, "relevance": 1.0, "type_fit": 2.0}, bias=0.0
        )
        return cls(ranker=ranker, calibration=LogisticModel({"logit": 1.0}, 0.0), threshold=0.5)


def calibrate(candidates: list[Candidate], weights: ReaderWeights) -> list[Candidate]:
    """Order by ranker logit and give each candidate a calibrated score, best first."""
    for cand in candidates:
        cand.features["logit"] = weights.ranker.logit(cand.features)
    candidates.sort(key=lambda c: -c.features["logit"])
    for i, cand in enumerate(candidates):
        other = candidates[1] if i == 0 and len(candidates) > 1 else candidates[0]
        margin = cand.features["logit"] - other.features["logit"] if other is not cand else 5.0
        cand.features["margin"] = margin
        cand.score = weights.calibration(cand.features)
        if cand.features.get("missing_entities_doc", 0.0) or cand.features.get(
            "missing_numbers_doc", 0.0
        ):
            # A name (a place, a body, a person) or a number (a year) the question states
            # that the answer's document never mentions: the answer is about something else.
            cand.score = min(cand.score, UNGROUNDED_CAP)
        elif cand.features.get("wrong_shape", 0.0):
            # "How many ...?" answered without a number, "what date ...?" without a date.
            cand.score = min(cand.score, WRONG_SHAPE_CAP)
    return candidates


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


class FittedReader:
    """A reader whose ranker, calibration and threshold come from ``weights.json``."""

    name = "fitted"

    def __init__(self, weights_path: Path = WEIGHTS_FILE) -> None:
        self.weights_path = weights_path
        self._weights: ReaderWeights | None = None

    def warm_up(self) -> None:
        if self._weights is None:
            self._weights = ReaderWeights.load(self.name, self.weights_path)

    @property
    def weights(self) -> ReaderWeights:
        self.warm_up()
        assert self._weights is not None
        return self._weights

    @property
    def threshold(self) -> float:
        return self.weights.threshold


class HeuristicReader(FittedReader):
    """Typed-span reader over index-time annotations; no model of its own beyond retrieval's."""

    name = "heuristic"

    #: Sentences whose spans are considered.
    top_sentences = TOP_SENTENCES

    def read(self, context: ReadContext) -> list[Candidate]:
        sentences = self.select(self.evidence(context))
        return calibrate(self.candidates_of(context, sentences), self.weights)

    def evidence(self, context: ReadContext) -> list[EvidenceSentence]:
        """Every sentence of the passages, most relevant first; for a question about a letter
        itself (who wrote it, to whom, when) also the sentences of the retrieved documents
        that state it (a signature line rarely resembles the question)."""
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
            context.question_vector,
            context.passages,
            context.index,
            include=include,
        )

    def select(self, evidence: list[EvidenceSentence]) -> list[EvidenceSentence]:
        """The sentences whose spans are read: the most relevant and the metadata ones."""
        top = evidence[: self.top_sentences]
        return top + [e for e in evidence[self.top_sentences :] if e.metadata]

    def candidates_of(
        self, context: ReadContext, sentences: list[EvidenceSentence]
    ) -> list[Candidate]:
        """Unscored span candidates (with features) from the given sentences."""
        question = context.question
        clauses = question.wants_clause or question.primary_type is AnswerType.THING
        out: list[Candidate] = []
        cache: dict[object, object] = {}
        for sentence in sentences:
            doc_id = sentence.document_id
            text = context.index.documents[doc_id].text
            entities = context.index.annotations[doc_id].entities
            for span in candidates(text, sentence.span, entities, clauses=clauses):
                source = f"heuristic:{span.source}"
                cand = span_candidate_features(context, sentence, span, source, cache)
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
