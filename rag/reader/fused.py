"""Readers that use an extractive-QA model: the model alone, or fused with the heuristic.

``TransformersReader`` runs any local extractive-QA checkpoint (our trained one in
``models/reader/`` by default) over the passages and ranks its spans by the model's own
scores and no-answer score.

``FusedReader`` puts both readers' candidates in one pool: every span the heuristic
proposes is also scored by the QA model (start logit of its first token + end logit of
its last, in every window that holds it), and every span the model proposes gets the
heuristic's features (answer-type fit, grounding, sentence relevance). One logistic
ranker and one calibration, fitted on the dev split (``python -m rag.reader.fit
--reader fused``), turn all features into the final score.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.reader.base import Candidate, ReadContext
from rag.reader.evidence import EvidenceSentence
from rag.reader.heuristic import (
    WEIGHTS_FILE,
    FittedReader,
    HeuristicReader,
    calibrate,
    span_candidate_features,
)
from rag.reader.qa_model import QAModel, WindowScores, top_spans, window_scores
from rag.reader.question import AnswerType
from rag.reader.spans import SpanCandidate, entity_types
from rag.store.index import Index

#: Spans the QA model proposes per question (before fusion with the heuristic's).
QA_TOP_N = 20

#: Most relevant sentences (with their neighbours) the QA model reads per question.
QA_SENTENCES = 6


@lru_cache(maxsize=8)
def qa_model_from_folder(path: str, *, runtime: str = "torch") -> QAModel:
    """A QAModel with the window settings the model was trained with, when it says so.

    One per (path, runtime) and process: the fused and the transformers readers (both
    run by `rag eval`) share the loaded model instead of loading it twice.
    """
    trained: dict[str, int] = {}
    manifest = Path(path) / "manifest.json"
    if manifest.is_file():
        hyper = json.loads(manifest.read_text(encoding="utf-8")).get("hyperparameters", {})
        trained = {
            key: hyper[key]
            for key in ("max_seq_len", "doc_stride", "max_answer_tokens")
            if isinstance(hyper.get(key), int)
        }
    return QAModel(path, runtime=runtime, **trained)


@dataclass(slots=True)
class _Window:
    """One model window over one passage, with its logits, in document offsets."""

    document_id: str
    starts: np.ndarray  # document offset where each context token starts
    ends: np.ndarray  # document offset where each context token ends
    scores: WindowScores
    best: list[tuple[int, int, float]]  # the model's top spans: document offsets, score


@dataclass(frozen=True, slots=True)
class Snippet:
    """A stretch of a document the QA model reads, in document offsets."""

    document_id: str
    start: int
    end: int


def snippets(evidence: list[EvidenceSentence], index: Index, n: int) -> list[Snippet]:
    """The ``n`` most relevant sentences, each with its neighbours, merged per document.

    Reading these instead of whole passages keeps the model's input (and its latency)
    small while still giving every candidate sentence its context.
    """
    by_doc: dict[str, list[tuple[int, int]]] = {}
    for ev in [e for e in evidence if e.rank < n or e.metadata]:
        sentences = index.annotations[ev.document_id].sentences
        i = ev.index_in_document
        lo = sentences[max(i - 1, 0)].start
        hi = sentences[min(i + 1, len(sentences) - 1)].end
        by_doc.setdefault(ev.document_id, []).append((lo, hi))
    out = []
    for doc_id, ranges in by_doc.items():
        ranges.sort()
        merged = [list(ranges[0])]
        for lo, hi in ranges[1:]:
            if lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        out += [Snippet(doc_id, lo, hi) for lo, hi in merged]
    return out


def _windows(qa: QAModel, question: str, parts: list[Snippet], index: Index) -> list[_Window]:
    texts = [index.documents[p.document_id].text[p.start : p.end] for p in parts]
    out = []
    for window, s, e in qa.window_logits(question, texts):
        part = parts[window.pair_index]
        scored = window_scores(s, e, window, max_answer_tokens=qa.max_answer_tokens)
        out.append(
            _Window(
                document_id=part.document_id,
                starts=np.array([part.start + a for a, _ in scored.offsets]),
                ends=np.array([part.start + b for _, b in scored.offsets]),
                scores=scored,
                best=[
                    (part.start + sp.start, part.start + sp.end, sp.score)
                    for sp in top_spans(scored, QA_TOP_N)
                ],
            )
        )
    return out


def _score_span(
    windows: list[_Window], document_id: str, start: int, end: int
) -> tuple[float, float, float] | None:
    """Best (logit, probability, logit - null) of a document span over the windows holding it."""
    best: tuple[float, float, float] | None = None
    for w in windows:
        if w.document_id != document_id or start < w.starts[0] or end > w.ends[-1]:
            continue
        i = int(np.searchsorted(w.starts, start, side="right")) - 1
        j = int(np.searchsorted(w.ends, end, side="left"))
        if i < 0 or j >= len(w.ends) or j < i:
            continue
        logit = float(w.scores.start_logits[i] + w.scores.end_logits[j])
        prob = math.exp(logit - w.scores.log_z)
        if best is None or logit > best[0]:
            best = (logit, prob, logit - w.scores.null)
    return best


def _qa_spans(windows: list[_Window], top_n: int) -> list[tuple[str, int, int]]:
    """The model's own best spans over all windows, in document offsets, best first."""
    scored: dict[tuple[str, int, int], float] = {}
    for w in windows:
        for start, end, score in w.best:
            key = (w.document_id, start, end)
            scored[key] = max(scored.get(key, -math.inf), score)
    return [k for k, _ in sorted(scored.items(), key=lambda kv: -kv[1])[:top_n]]


#: Characters that join the parts of one word-like token: "M11295/16", "1,400", "1.24",
#: "10:30".
_JOINERS = "/.,:"
#: Punctuation trimmed from the ends of a span, and brackets or quotes trimmed when the
#: span does not hold their partner.
_TRAILING = ".,;:!?"
_LEADING = ",;:.!?"
_PAIRS = {"(": ")", "[": "]", "“": "”", "‘": "’", '"': '"'}


def snap_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a span that stops inside a word or a number to the whole of it.

    The model's sub-word tokens can stop inside a token ("M11295" of "M11295/16", "1" of
    "1,400"); a cited answer never cuts one in two. Only letters and digits, and the
    joiners between them, are taken in: brackets, quotes, dashes and possessives are
    left as the model drew them. Then stray punctuation at either end is trimmed: a
    full stop or comma, or a bracket or quote whose partner is not in the span
    ("CSE)" -> "CSE", but "1,000 m3/s (35,000 cu ft/s)" stays whole).
    """

    def joined(i: int) -> bool:
        """Whether text[i] is a joiner with letters or digits on both sides."""
        return (
            0 < i < len(text) - 1
            and text[i] in _JOINERS
            and text[i - 1].isalnum()
            and text[i + 1].isalnum()
        )

    while start > 0 and start < len(text) and text[start].isalnum():
        if text[start - 1].isalnum():
            start -= 1
        elif joined(start - 1) and text[start - 2].isdigit() and text[start].isdigit():
            start -= 2
        else:
            break
    while 0 < end < len(text) and text[end - 1].isalnum():
        if text[end].isalnum():
            end += 1
        elif joined(end):
            end += 2
        else:
            break
    return _trim(text, start, end)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop spaces, stray punctuation and unpaired brackets or quotes from both ends."""

    def unpaired(mark: str, inner: str) -> bool:
        if mark == '"':
            return inner.count('"') % 2 == 1
        partner = _PAIRS.get(mark) or next((o for o, c in _PAIRS.items() if c == mark), None)
        return partner is not None and partner not in inner

    while end - start > 1:
        inner = text[start:end]
        last, first = inner[-1], inner[0]
        if last.isspace() or last in _TRAILING or unpaired(last, inner):
            end -= 1
        elif first.isspace() or first in _LEADING or unpaired(first, inner):
            start += 1
        else:
            break
    return start, end


class TransformersReader(FittedReader):
    """A local extractive-QA checkpoint on its own, scored by its own logits and null score."""

    name = "transformers"

    def __init__(
        self, model_path: str, weights_path: Path = WEIGHTS_FILE, *, runtime: str = "torch"
    ) -> None:
        super().__init__(weights_path)
        self.qa = qa_model_from_folder(model_path, runtime=runtime)
        self._heuristic = HeuristicReader(weights_path)

    def warm_up(self) -> None:
        self.qa.warm_up()
        super().warm_up()

    def _pool(self, context: ReadContext, *, with_heuristic: bool) -> list[Candidate]:
        evidence = self._heuristic.evidence(context)
        parts = snippets(evidence, context.index, QA_SENTENCES)
        windows = _windows(self.qa, context.question.text, parts, context.index)
        pool: dict[tuple[str, int, int], Candidate] = {}
        if with_heuristic:
            for cand in self._heuristic.candidates_of(context, self._heuristic.select(evidence)):
                pool[(cand.document_id, cand.start, cand.end)] = cand
        docs = context.index.documents
        qa_keys = list(
            dict.fromkeys(
                (doc_id, *snap_to_words(docs[doc_id].text, start, end))
                for doc_id, start, end in _qa_spans(windows, QA_TOP_N)
            )
        )
        for key in qa_keys:
            if key not in pool:
                found = self._candidate_for(context, evidence, *key)
                if found is not None:
                    pool[key] = found
        rank = {k: r for r, k in enumerate(qa_keys)}
        out = []
        for key, cand in pool.items():
            scored = _score_span(windows, *key)
            if scored is None:
                scored = (-20.0, 0.0, -20.0)
            logit, prob, gap = scored
            cand.features.update(
                {
                    "qa_logit": logit,
                    "qa_prob": prob,
                    "qa_null_gap": gap,
                    "qa_found": 1.0 if key in rank else 0.0,
                    "qa_rank": math.log1p(rank.get(key, QA_TOP_N)),
                }
            )
            out.append(cand)
        return out

    def _candidate_for(
        self,
        context: ReadContext,
        evidence: list[EvidenceSentence],
        doc_id: str,
        start: int,
        end: int,
    ) -> Candidate | None:
        """A model span as a candidate with the heuristic's features.

        None when it is junk or crosses a sentence boundary: an answer is cited with the
        one sentence that holds it.
        """
        sentence = next(
            (
                s
                for s in evidence
                if s.document_id == doc_id and s.span.start <= start and end <= s.span.end
            ),
            None,
        )
        if sentence is None:
            return None
        types: dict[AnswerType, float] = {}
        for ent in context.index.annotations[doc_id].entities:
            if ent.start == start and ent.end == end:
                for t, w in entity_types(ent.label).items():
                    types[t] = max(types.get(t, 0.0), w)
        span = SpanCandidate(start, end, types, "model")
        return span_candidate_features(context, sentence, span, "model")

    def read(self, context: ReadContext) -> list[Candidate]:
        return calibrate(self._pool(context, with_heuristic=False), self.weights)


class FusedReader(TransformersReader):
    """Heuristic and QA-model candidates in one pool, ranked by one fitted model."""

    name = "fused"

    def read(self, context: ReadContext) -> list[Candidate]:
        return calibrate(self._pool(context, with_heuristic=True), self.weights)
