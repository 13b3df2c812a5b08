"""Run an evaluation set through the pipeline and compute every number of the report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm import tqdm

from rag.config import RetrievalMode
from rag.evaluation.dataset import EvalItem
from rag.filters import Filters
from rag.metrics import (
    exact_match,
    f1_score,
    ndcg_at_k,
    percentile,
    recall_at_k,
    reciprocal_rank,
)
from rag.pipeline import Pipeline
from rag.store.index import Index
from rag.types import Answer, Passage

RECALL_KS = (1, 3, 5, 10)
SWEEP = [round(i / 50, 2) for i in range(51)]


@dataclass(slots=True)
class Prediction:
    """One question's outcome; ``best`` is the top candidate whatever the threshold."""

    item: EvalItem
    answer: str | None
    best: str | None
    best_score: float
    document_id: str | None
    start: int | None
    end: int | None
    citation_valid: bool
    timings_ms: dict[str, float]
    passages: list[tuple[str, int, int]] = field(default_factory=list)
    #: Passages the reader read before the answer was settled (reading by need).
    passages_read: int = 0

    @classmethod
    def of(
        cls,
        item: EvalItem,
        best: Answer | None,
        *,
        answered: bool,
        citation_valid: bool,
        timings_ms: dict[str, float] | None = None,
        passages: list[tuple[str, int, int]] | None = None,
        passages_read: int = 0,
    ) -> Prediction:
        """The prediction whose top candidate is ``best`` (shown when ``answered``)."""
        c = best.citation if best else None
        return cls(
            item=item,
            answer=best.text if best and answered else None,
            best=best.text if best else None,
            best_score=best.score if best else 0.0,
            document_id=c.document_id if c else None,
            start=c.start if c else None,
            end=c.end if c else None,
            citation_valid=citation_valid,
            timings_ms=timings_ms or {},
            passages=passages or [],
            passages_read=passages_read,
        )

    @property
    def em(self) -> float:
        return exact_match(self.answer, self.item.answers)

    @property
    def f1(self) -> float:
        return f1_score(self.answer, self.item.answers)


def _filters_for(item: EvalItem, reading_comprehension: bool) -> Filters | None:
    if not reading_comprehension:
        return None
    if item.context_id is None:
        raise ValueError(f"{item.id}: reading comprehension needs a context_id")
    return Filters.create(documents=[item.context_id])


def run_answers(
    pipeline: Pipeline,
    items: Sequence[EvalItem],
    *,
    reading_comprehension: bool = False,
    progress: bool = True,
    label: str = "ask",
) -> list[Prediction]:
    """Ask every question exactly as the API would."""
    return [
        predict(pipeline, item, reading_comprehension=reading_comprehension)
        for item in tqdm(items, desc=label, unit="q", disable=not progress, leave=False)
    ]


def predict(
    pipeline: Pipeline, item: EvalItem, *, reading_comprehension: bool = False
) -> Prediction:
    """One question asked as the API would, its citation checked against the document."""
    result = pipeline.ask(item.question, filters=_filters_for(item, reading_comprehension))
    best = result.answer or result.rejected
    valid = False
    if best is not None:
        doc = pipeline.index.documents.get(best.citation.document_id)
        c = best.citation
        valid = doc is not None and doc.text[c.start : c.end] == best.text
    return Prediction.of(
        item,
        best,
        answered=result.answer is not None,
        citation_valid=valid,
        timings_ms=result.timings_ms,
        passages=[(p.chunk.document_id, p.chunk.start, p.chunk.end) for p in result.passages],
        passages_read=result.passages_read,
    )


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def answer_metrics(predictions: Sequence[Prediction], threshold: float) -> dict[str, float]:
    """SQuAD 2.0 scores at ``threshold`` (abstain below it), split by answerability."""
    rows = []
    for p in predictions:
        answer = p.best if p.best is not None and p.best_score >= threshold else None
        rows.append((p.item, answer))
    ans = [(i, a) for i, a in rows if i.answerable]
    unans = [(i, a) for i, a in rows if not i.answerable]
    abstained = [i for i, a in rows if a is None]
    correct_abstentions = [i for i in abstained if not i.answerable]
    return {
        "n": len(rows),
        "n_answerable": len(ans),
        "n_unanswerable": len(unans),
        "em": _mean([exact_match(a, i.answers) for i, a in rows]),
        "f1": _mean([f1_score(a, i.answers) for i, a in rows]),
        "answerable_em": _mean([exact_match(a, i.answers) for i, a in ans]),
        "answerable_f1": _mean([f1_score(a, i.answers) for i, a in ans]),
        # Answer quality where the reader did answer (how good its spans are).
        "answered_f1": _mean([f1_score(a, i.answers) for i, a in ans if a is not None]),
        "unanswerable_abstained": _mean([float(a is None) for _, a in unans]),
        "answerable_abstained": _mean([float(a is None) for _, a in ans]),
        "abstain_precision": len(correct_abstentions) / len(abstained)
        if abstained
        else float("nan"),
        "abstain_recall": len(correct_abstentions) / len(unans) if unans else float("nan"),
    }


def threshold_sweep(predictions: Sequence[Prediction]) -> list[dict[str, float]]:
    rows = []
    for t in SWEEP:
        m = answer_metrics(predictions, t)
        rows.append(
            {
                "threshold": t,
                "f1": m["f1"],
                "answerable_f1": m["answerable_f1"],
                "unanswerable_abstained": m["unanswerable_abstained"],
                "answerable_abstained": m["answerable_abstained"],
            }
        )
    return rows


def best_threshold(sweep: Sequence[dict[str, float]]) -> float:
    """The threshold with the highest overall F1 (ties: the lowest threshold)."""
    return max(sweep, key=lambda r: (round(r["f1"], 6), -r["threshold"]))["threshold"]


def reliability(predictions: Sequence[Prediction], bins: int = 5) -> list[dict[str, float]]:
    """Is a higher score more often right? Mean F1 of the best candidate per score bin.

    An unanswerable question counts as wrong for any candidate (the right output is
    none), so a bin's F1 is the chance that answering at that score is right.
    """
    rows = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [
            p
            for p in predictions
            if p.best is not None
            and (lo <= p.best_score < hi or (b == bins - 1 and p.best_score == 1.0))
        ]
        f1s = [f1_score(p.best, p.item.answers) if p.item.answerable else 0.0 for p in inside]
        rows.append({"from": lo, "to": hi, "n": float(len(inside)), "mean_f1": _mean(f1s)})
    return rows


def citation_metrics(predictions: Sequence[Prediction]) -> dict[str, float]:
    """Share of answers to answerable questions citing a gold document at valid offsets."""
    answered = [p for p in predictions if p.answer is not None and p.item.answerable]
    ok = [p for p in answered if p.citation_valid and p.document_id in p.item.documents]
    valid = [p for p in predictions if p.answer is not None and p.citation_valid]
    n_answers = sum(1 for p in predictions if p.answer is not None)
    return {
        "citation_accuracy": len(ok) / len(answered) if answered else float("nan"),
        "citations_verifiable": len(valid) / n_answers if n_answers else float("nan"),
        "n_answered": float(len(answered)),
    }


def mean_passages_read(predictions: Sequence[Prediction]) -> float:
    """How many passages the reader read per question, on average."""
    return _mean([float(p.passages_read) for p in predictions])


def latency(predictions: Sequence[Prediction]) -> dict[str, dict[str, float]]:
    stages = sorted({k for p in predictions for k in p.timings_ms})
    return {
        s: {
            "p50": percentile([p.timings_ms[s] for p in predictions if s in p.timings_ms], 50),
            "p95": percentile([p.timings_ms[s] for p in predictions if s in p.timings_ms], 95),
        }
        for s in stages
    }


# -- retrieval ---------------------------------------------------------------------------


def evidence_spans(item: EvalItem, index: Index) -> list[tuple[str, int, int]]:
    """Every place the evidence quote stands in a gold document."""
    if not item.evidence:
        return []
    spans = []
    for doc_id in item.documents:
        doc = index.documents.get(doc_id)
        if doc is None:
            continue
        start = doc.text.find(item.evidence)
        while start >= 0:
            spans.append((doc_id, start, start + len(item.evidence)))
            start = doc.text.find(item.evidence, start + 1)
    return spans


def relevance(
    item: EvalItem, ranked: Sequence[tuple[str, int, int]], index: Index
) -> tuple[list[bool], list[bool], int, int]:
    """Relevance by document and by evidence, and how many relevant chunks exist for each."""
    ev = evidence_spans(item, index)
    by_doc = [d in item.documents for d, _, _ in ranked]
    by_ev = [any(d == ed and s <= es and ee <= e for ed, es, ee in ev) for d, s, e in ranked]
    # Only the chunks of the documents concerned are read (the records are on disk).
    n_doc = int(index.rows_of(list(item.documents)).size)
    ev_chunks = (index.chunks[int(r)] for r in index.rows_of([ed for ed, _, _ in ev]))
    n_ev = sum(
        1
        for c in ev_chunks
        if any(c.document_id == ed and c.start <= es and ee <= c.end for ed, es, ee in ev)
    )
    return by_doc, by_ev, n_doc, n_ev


def ranking_metrics(lists: Sequence[tuple[list[bool], int]]) -> dict[str, float]:
    out = {f"recall@{k}": _mean([recall_at_k(r, k) for r, _ in lists]) for k in RECALL_KS}
    out["mrr"] = _mean([reciprocal_rank(r) for r, _ in lists])
    out["ndcg@10"] = _mean([ndcg_at_k(r, 10, n) for r, n in lists])
    return out


@dataclass(slots=True)
class RetrievalRun:
    by_document: dict[str, float]
    by_evidence: dict[str, float]
    missing_evidence: list[str]


def score_rankings(
    items: Sequence[EvalItem], rankings: Sequence[Sequence[tuple[str, int, int]]], index: Index
) -> RetrievalRun:
    """Retrieval metrics over answerable items, given each one's ranked chunks."""
    doc_lists, ev_lists, missing = [], [], []
    for item, ranked in zip(items, rankings, strict=True):
        if not item.answerable:
            continue
        by_doc, by_ev, n_doc, n_ev = relevance(item, ranked, index)
        doc_lists.append((by_doc, n_doc))
        if n_ev == 0:
            missing.append(item.id)
        ev_lists.append((by_ev, n_ev))
    return RetrievalRun(ranking_metrics(doc_lists), ranking_metrics(ev_lists), missing)


def run_retrieval(
    pipeline: Pipeline,
    items: Sequence[EvalItem],
    mode: RetrievalMode,
    *,
    reading_comprehension: bool = False,
    k: int = 10,
) -> RetrievalRun:
    rankings: list[list[tuple[str, int, int]]] = []
    for item in items:
        if not item.answerable:
            rankings.append([])
            continue
        passages: list[Passage] = pipeline.retriever.retrieve(
            item.question, k, _filters_for(item, reading_comprehension), mode
        )
        rankings.append([(p.chunk.document_id, p.chunk.start, p.chunk.end) for p in passages])
    return score_rankings(items, rankings, pipeline.index)
