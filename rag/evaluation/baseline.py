"""Peer baseline: the same questions through a Haystack retrieval pipeline.

Same chunks, same embedding model, Haystack's in-memory store and embedding retriever,
Haystack's BM25, and Haystack's reciprocal-rank-fusion joiner. Haystack's extractive
reader needs a model from the hub, which this machine cannot download, so only
retrieval is compared.

The vectors come from the embedder the index was built with (:func:`build_embedder`,
questions through :func:`embed_queries`), not from Haystack's sentence-transformers
embedders: a packaged ONNX model (``packaged:bge-small-en-v1.5``) is no
sentence-transformers model, and one factory means the baseline's vectors are those of
the model the index records. What is compared is Haystack's search and fusion.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rag.embedding import build_embedder, embed_queries
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

    embedder = build_embedder(index.manifest.embedding_model)
    embedder.warm_up()
    store = InMemoryDocumentStore()
    vectors = embedder.embed([c.text for c in index.chunks])
    docs = [
        Document(
            id=c.id,
            content=c.text,
            meta={"document_id": c.document_id, "start": c.start, "end": c.end},
            embedding=[float(x) for x in vector],
        )
        for c, vector in zip(index.chunks, vectors, strict=True)
    ]
    store.write_documents(docs)
    asked = [item.question for item in items if item.answerable]
    query_vectors = dict(zip(asked, embed_queries(embedder, asked), strict=True))

    def pipeline(mode: str) -> Pipeline:
        p = Pipeline()
        if mode in ("dense", "hybrid"):
            p.add_component("dense", InMemoryEmbeddingRetriever(document_store=store, top_k=k))
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
                inputs["dense"] = {
                    "query_embedding": [float(x) for x in query_vectors[item.question]]
                }
            if mode in ("lexical", "hybrid"):
                inputs["bm25"] = {"query": item.question}
            found = p.run(inputs)[output]["documents"][:k]
            rankings.append(
                [(d.meta["document_id"], d.meta["start"], d.meta["end"]) for d in found]
            )
        results[mode] = score_rankings(items, rankings, index)
    return results
