"""Dense (FAISS or Milvus) and lexical (BM25) retrieval, fused by weighted reciprocal rank fusion.

The filters go to the index with the rows they allow: FAISS and our BM25 search those
rows, Milvus evaluates the filters itself (``rag.store.milvus``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.config import RetrievalMode, Settings
from rag.embedding import Embedder, embed_queries
from rag.filters import Filters
from rag.lexical import terms
from rag.store.index import Hit, Index
from rag.types import Passage


@dataclass(frozen=True, slots=True)
class RetrievalSettings:
    mode: RetrievalMode = RetrievalMode.HYBRID
    rrf_k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    candidates: int = 50

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrievalSettings:
        return cls(
            mode=settings.retrieval_mode,
            rrf_k=settings.rrf_k,
            dense_weight=settings.dense_weight,
            lexical_weight=settings.lexical_weight,
            candidates=settings.candidates,
        )

    @staticmethod
    def parse_mode(value: str) -> RetrievalMode:
        try:
            return RetrievalMode(value)
        except ValueError:
            valid = ", ".join(m.value for m in RetrievalMode)
            raise ValueError(f"unknown retrieval mode {value!r}; valid: {valid}") from None


def reciprocal_rank_fusion(
    rankings: dict[str, list[Hit]], weights: dict[str, float], k: int
) -> list[tuple[int, float]]:
    """Σ weight / (k + rank) over the rankings a row appears in; best first, ties by row."""
    fused: dict[int, float] = {}
    for stage, hits in rankings.items():
        weight = weights.get(stage, 1.0)
        for rank, hit in enumerate(hits, start=1):
            fused[hit.row] = fused.get(hit.row, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


class Retriever:
    """Finds the passages most likely to hold the answer."""

    def __init__(self, index: Index, embedder: Embedder, settings: RetrievalSettings) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings

    def allowed_rows(self, filters: Filters | None) -> np.ndarray | None:
        if filters is None or not filters.active:
            return None
        return self.index.allowed_rows(filters)

    def retrieve(
        self,
        question: str,
        top_k: int,
        filters: Filters | None = None,
        mode: RetrievalMode | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[Passage]:
        mode = mode or self.settings.mode
        allowed = self.allowed_rows(filters)
        depth = max(self.settings.candidates, top_k)
        rankings: dict[str, list[Hit]] = {}
        if mode in (RetrievalMode.DENSE, RetrievalMode.HYBRID):
            if query_vector is None:
                query_vector = embed_queries(self.embedder, [question])[0]
            rankings["dense"] = self.index.dense_search(
                query_vector, depth, allowed, filters=filters
            )
        if mode in (RetrievalMode.LEXICAL, RetrievalMode.HYBRID):
            rankings["lexical"] = self.index.lexical_search(
                terms(question), depth, allowed, filters=filters
            )
        weights = {"dense": self.settings.dense_weight, "lexical": self.settings.lexical_weight}
        fused = reciprocal_rank_fusion(rankings, weights, self.settings.rrf_k)
        stage_info: dict[int, tuple[dict[str, float], dict[str, int]]] = {}
        for stage, hits in rankings.items():
            for rank, hit in enumerate(hits, start=1):
                scores, ranks = stage_info.setdefault(hit.row, ({}, {}))
                scores[stage] = hit.score
                ranks[stage] = rank
        passages = []
        for row, score in fused[:top_k]:
            scores, ranks = stage_info[row]
            passages.append(
                Passage(
                    chunk=self.index.chunks[row],
                    score=score,
                    stage_scores={**scores, "fused": score},
                    stage_ranks=dict(ranks),
                )
            )
        return passages
