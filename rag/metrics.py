"""Answer and retrieval metrics: SQuAD 2.0 exact match / F1, recall@k, MRR, nDCG.

Each metric returns per-item scores and an aggregate (as Haystack's evaluators do), so
reports can list the failures behind a number.
"""

from __future__ import annotations

import functools
import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation) | set("‘’“”–—…£€")


@functools.lru_cache(maxsize=65_536)
def normalize_answer(text: str) -> str:
    """SQuAD 2.0 normalisation: lower case, no punctuation, no articles, single spaces.

    Cached: sweeps (thresholds, reading-by-need rules) score the same answers many times.
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def exact_match(prediction: str | None, golds: Sequence[str]) -> float:
    """1.0 when the prediction equals any gold after normalisation.

    An unanswerable question has no golds: abstaining (None or "") is then correct.
    """
    pred = prediction or ""
    if not golds:
        return float(not pred)
    return float(max(normalize_answer(pred) == normalize_answer(g) for g in golds))


def f1_score(prediction: str | None, golds: Sequence[str]) -> float:
    """Token F1, best over the golds; with no golds, 1.0 only for an abstention."""
    pred = prediction or ""
    if not golds:
        return float(not pred)
    return max(_f1(_tokens(pred), _tokens(g)) for g in golds)


def _f1(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        return float(pred == gold)
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def recall_at_k(relevant: Sequence[bool], k: int) -> float:
    """1.0 when any of the first ``k`` results is relevant (one relevant item per question)."""
    return float(any(relevant[:k]))


def reciprocal_rank(relevant: Sequence[bool]) -> float:
    for rank, rel in enumerate(relevant, start=1):
        if rel:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(relevant: Sequence[bool], k: int, n_relevant: int | None = None) -> float:
    """Binary-relevance nDCG@k. ``n_relevant`` sizes the ideal ranking (default: hits found)."""
    dcg = sum(1.0 / math.log2(rank + 1) for rank, rel in enumerate(relevant[:k], start=1) if rel)
    ideal_hits = n_relevant if n_relevant is not None else sum(1 for r in relevant if r)
    ideal_hits = min(max(ideal_hits, 0), k)
    if ideal_hits == 0:
        return 0.0
    idcg = sum(1.0 / math.log2(rank + 1) for rank in range(1, ideal_hits + 1))
    return dcg / idcg


@dataclass(frozen=True, slots=True)
class MetricResult:
    """A metric's per-item scores and their mean."""

    name: str
    per_item: list[float]

    @property
    def value(self) -> float:
        return sum(self.per_item) / len(self.per_item) if self.per_item else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
