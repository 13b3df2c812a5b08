"""Peer baseline: the same questions through a Haystack retrieval pipeline.

Same chunks, same embedding model (through Haystack's own sentence-transformers
embedders), Haystack's BM25, and Haystack's reciprocal-rank-fusion joiner. Haystack's
extractive reader needs a model from the hub, which this machine cannot download, so
only retrieval is compared.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rag.embedding import resolve_model_path
from rag.evaluation.dataset import EvalItem
from rag.evaluation.runner import RetrievalRun, score_rankings
from rag.store.index import Index


def haystack_retrieval(
    items: Sequence[EvalItem], index: Index, *, k: int = 10
) -> dict[str, RetrievalRun]:
    """Retrieval metrics of Haystack's dense, BM25 and hybrid pipelines over our chunks."""
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # no network here
    from haystack import Document, Pipeline
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import (
        InMemoryBM25Retriever,
        InMemoryEmbeddingRetriever,
    )
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack.utils import ComponentDevice
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )

    model = resolve_model_path(index.manifest.embedding_model)
    device = ComponentDevice.from_str("cpu")
    store = InMemoryDocumentStore()
    docs = [
        Document(
            id=c.id,
            content=c.text,
            meta={"document_id": c.document_id, "start": c.start, "end": c.end},
        )
        for c in index.chunks
    ]
    doc_embedder = SentenceTransformersDocumentEmbedder(
        model=model, device=device, progress_bar=False, normalize_embeddings=True
    )
    doc_embedder.warm_up()
    store.write_documents(doc_embedder.run(documents=docs)["documents"])

    def pipeline(mode: str) -> Pipeline:
        p = Pipeline()
        if mode in ("dense", "hybrid"):
            p.add_component(
                "embedder",
                SentenceTransformersTextEmbedder(
                    model=model, device=device, progress_bar=False, normalize_embeddings=True
                ),
            )
            p.add_component("dense", InMemoryEmbeddingRetriever(document_store=store, top_k=k))
            p.connect("embedder.embedding", "dense.query_embedding")
        if mode in ("lexical", "hybrid"):
            p.add_component("bm25", InMemoryBM25Retriever(document_store=store, top_k=k))
        if mode == "hybrid":
            p.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=k))
            p.connect("dense.documents", "joiner.documents")
            p.connect("bm25.documents", "joiner.documents")
        p.warm_up()
        return p

    results: dict[str, RetrievalRun] = {}
    for mode, output in (("dense", "dense"), ("lexical", "bm25"), ("hybrid", "joiner")):
        p = pipeline(mode)
        rankings: list[list[tuple[str, int, int]]] = []
        for item in items:
            if not item.answerable:
                rankings.append([])
                continue
            inputs: dict[str, Any] = {}
            if mode in ("dense", "hybrid"):
                inputs["embedder"] = {"text": item.question}
            if mode in ("lexical", "hybrid"):
                inputs["bm25"] = {"query": item.question}
            found = p.run(inputs)[output]["documents"][:k]
            rankings.append(
                [(d.meta["document_id"], d.meta["start"], d.meta["end"]) for d in found]
            )
        results[mode] = score_rankings(items, rankings, index)
    return results
