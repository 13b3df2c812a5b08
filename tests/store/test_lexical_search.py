"""BM25 over the postings of a question's terms ranks exactly as scoring every chunk."""

from __future__ import annotations

from pathlib import Path

import bm25s
import numpy as np
import pytest

from rag.lexical import terms
from rag.store import Index
from rag.store.index import LEXICAL, Hit
from rag.store.layout import resolve_version

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What reference number is on the Home Secretary's letter?",
    "Who wrote to the council about the review?",
    "council council review",  # a repeated term counts twice, as in bm25s
    "inspection of children's services in Rotherham",
    "zzzz qqqq xyzzy",
]


def _every_chunk_scored(
    reference: bm25s.BM25, query_terms: list[str], k: int, allowed: np.ndarray | None
) -> list[Hit]:
    """The ranking as it was computed before: a score for every chunk, then a mask."""
    scores = reference.get_scores(query_terms)
    if allowed is not None:
        mask = np.zeros_like(scores)
        mask[allowed] = 1.0
        scores = scores * mask
    candidates = np.flatnonzero(scores > 0)
    if candidates.size > k:
        candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    return [Hit(int(r), float(scores[r])) for r in order]


def test_postings_only_bm25_equals_scoring_every_chunk(index_dir: Path) -> None:
    index = Index.load(index_dir)
    reference = bm25s.BM25.load(str(resolve_version(index_dir) / LEXICAL), load_corpus=False)
    queries = [terms(q) for q in QUESTIONS]
    queries += [terms(" ".join(c.text.split()[:12])) for c in index.chunks]
    ids = list(index.documents)
    filters = [None, index.rows_of(ids[:1]), index.rows_of(ids[1:4]), np.zeros(0, np.int64)]
    found_any = False
    for query_terms in queries:
        for k in (1, 5, 50):
            for allowed in filters:
                expected = _every_chunk_scored(reference, query_terms, k, allowed)
                assert index.lexical_search(query_terms, k, allowed) == expected
                found_any = found_any or bool(expected)
    assert found_any
    assert index.lexical_search(terms("zzzz qqqq xyzzy"), 5) == []
