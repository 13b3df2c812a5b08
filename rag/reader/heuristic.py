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
from dataclasses import dataclass
from pathlib import Path

from rag.lexical import stem, words
from rag.reader.base import Candidate, ReadContext
from rag.reader.evidence import EvidenceSentence, collect
from rag.reader.question import AnswerType, Question
from rag.reader.spans import SpanCandidate, candidates
from rag.store.index import Index

WEIGHTS_FILE = Path(__file__).with_name("weights.json")

#: Sentences whose spans are considered; more costs time and rarely helps.
TOP_SENTENCES = 8

_WORD_POS = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class LogisticModel:
    """score = sigmoid(bias + Σ weight·feature); features absent from ``weights`` are ignored."""

    weights: dict[str, float]
    bias: float

    @classmethod
    def load(cls, path: Path, section: str) -> LogisticModel:
        data = json.loads(path.read_text(encoding="utf-8"))[section]
        return cls(weights=dict(data["weights"]), bias=float(data["bias"]))

    def logit(self, features: dict[str, float]) -> float:
        return self.bias + sum(w * features.get(name, 0.0) for name, w in self.weights.items())

    def __call__(self, features: dict[str, float]) -> float:
        z = self.logit(features)
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))


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
    if all(w in q_words for w in cand_words):
        return None
    if positions:
        distance = min(
            0 if cand.start <= p < cand.end else min(abs(p - cand.start), abs(p - cand.end))
            for p in positions
        )
    else:
        distance = 200
    n_words = len(cand_words)
    clause = question.wants_clause
    length_penalty = max(0, n_words - (25 if clause else 6)) / 10.0
    return {
        **sentence.features,
        "relevance": sentence.relevance,
        "type_fit": _type_fit(question, cand),
        "overlap": overlap,
        "proximity": 1.0 / (1.0 + distance / 40.0),
        "length_penalty": length_penalty,
        "log_words": math.log(n_words),
        "is_entity": 1.0 if cand.source in ("entity", "pattern") else 0.0,
        "is_clause": 1.0 if cand.source in ("clause", "sentence") else 0.0,
        "clause_question": 1.0 if clause else 0.0,
    }


class HeuristicReader:
    """Typed-span reader over index-time annotations; no model of its own beyond retrieval's."""

    name = "heuristic"

    def __init__(self, weights_path: Path = WEIGHTS_FILE) -> None:
        self.weights_path = weights_path
        self._model: LogisticModel | None = None

    def warm_up(self) -> None:
        if self._model is None:
            self._model = LogisticModel.load(self.weights_path, "heuristic")

    @property
    def model(self) -> LogisticModel:
        self.warm_up()
        assert self._model is not None
        return self._model

    def evidence(self, context: ReadContext) -> list[EvidenceSentence]:
        """The question's candidate sentences, most relevant first."""
        sentences = collect(
            context.question, context.question_vector, context.passages, context.index
        )
        sentences.sort(key=lambda s: -s.relevance)
        return sentences

    def read(self, context: ReadContext) -> list[Candidate]:
        return self.score_sentences(context, self.evidence(context)[:TOP_SENTENCES])

    def score_sentences(
        self, context: ReadContext, sentences: list[EvidenceSentence]
    ) -> list[Candidate]:
        """Scored span candidates from the given sentences, best first."""
        question, index = context.question, context.index
        out: list[Candidate] = []
        qterms = set(question.terms)
        for sentence in sentences:
            out.extend(self._sentence_candidates(question, index, sentence, qterms))
        out.sort(key=lambda c: -c.score)
        return out

    def _sentence_candidates(
        self, question: Question, index: Index, sentence: EvidenceSentence, qterms: set[str]
    ) -> list[Candidate]:
        doc = index.documents[sentence.document_id]
        ann = index.annotations[sentence.document_id]
        span = sentence.span
        text = doc.text[span.start : span.end]
        positions = _term_positions(text, span.start, qterms)
        found = []
        for cand in candidates(
            doc.text,
            span,
            ann.entities,
            clauses=question.wants_clause or question.primary_type is AnswerType.THING,
        ):
            feats = span_features(question, cand, doc.text, sentence, positions)
            if feats is None:
                continue
            found.append(
                Candidate(
                    document_id=doc.id,
                    start=cand.start,
                    end=cand.end,
                    text=doc.text[cand.start : cand.end],
                    sentence=span,
                    score=self.model(feats),
                    features=feats,
                    source=f"heuristic:{cand.source}",
                )
            )
        return found
