"""Benchmark: our index build against Haystack's indexing pipeline and the embedding floor.

One run, one process, the models loaded and warmed first, on the same synthetic corpus
(sentences of the real letters shuffled into new documents, ``rag.synthetic``):

- **ours**: ``IndexBuilder.build`` (load, clean, annotate with spaCy, chunk, embed, write
  the FAISS, BM25 and record files, publish);
- **Haystack**: ``TextFileToDocument`` → ``DocumentCleaner`` → ``DocumentSplitter``
  (150 words, overlap 30: about our 200 embedding tokens, overlap 40) →
  ``SentenceTransformersDocumentEmbedder`` (the same packaged model) → ``DocumentWriter``
  into an ``InMemoryDocumentStore`` (overwriting: each run writes the same documents);
- **floor**: the embedder alone (``SentenceTransformerEmbedder.embed``) on our build's
  chunk texts: what no build with this model can beat.

    .venv/bin/python bench/build_compare.py [--documents 300] [--repeat 2]

Each timing is the fastest of ``--repeat`` runs (a fresh index folder each time).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.config import get_settings  # noqa: E402
from rag.embedding import resolve_model_path  # noqa: E402
from rag.store.builder import IndexBuilder  # noqa: E402
from rag.store.index import Index  # noqa: E402
from rag.synthetic import write_synthetic_corpus  # noqa: E402


def haystack_pipeline(model_id: str) -> Any:
    """Haystack's indexing pipeline over text files, warmed."""
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # no network here
    from haystack import Pipeline
    from haystack.components.converters import TextFileToDocument
    from haystack.components.preprocessors import DocumentCleaner, DocumentSplitter
    from haystack.components.writers import DocumentWriter
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack.document_stores.types import DuplicatePolicy
    from haystack.utils import ComponentDevice
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
    )

    p = Pipeline()
    p.add_component("convert", TextFileToDocument())
    p.add_component("clean", DocumentCleaner())
    p.add_component("split", DocumentSplitter(split_by="word", split_length=150, split_overlap=30))
    p.add_component(
        "embed",
        SentenceTransformersDocumentEmbedder(
            model=resolve_model_path(model_id),
            device=ComponentDevice.from_str("cpu"),
            progress_bar=False,
            normalize_embeddings=True,
        ),
    )
    p.add_component(
        "write",
        DocumentWriter(document_store=InMemoryDocumentStore(), policy=DuplicatePolicy.OVERWRITE),
    )
    p.connect("convert", "clean")
    p.connect("clean", "split")
    p.connect("split", "embed")
    p.connect("embed", "write")
    p.warm_up()
    return p


def fastest(runs: int, job: Any) -> tuple[float, Any]:
    """Best wall time of ``runs`` calls of ``job(i)``, and the last result."""
    best, result = float("inf"), None
    for i in range(runs):
        started = time.perf_counter()
        result = job(i)
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--sentences-per-doc", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    settings = get_settings()
    builder = IndexBuilder.from_settings(settings)
    builder.annotator.warm_up()
    builder.embedder.embed(["warm up"])
    haystack = haystack_pipeline(settings.embedding_model)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        paths = write_synthetic_corpus(
            ROOT / "corpus", corpus, args.documents, sentences_per_doc=args.sentences_per_doc
        )
        haystack.run({"convert": {"sources": paths[:2]}})  # warm every component
        ours_s, report = fastest(
            args.repeat, lambda i: builder.build(corpus, Path(tmp) / f"index-{i}")
        )
        texts = [c.text for c in Index.load(report.path.parent.parent).chunks]
        hay_s, out = fastest(args.repeat, lambda i: haystack.run({"convert": {"sources": paths}}))
        floor_s, _ = fastest(
            args.repeat,
            lambda i: builder.embedder.embed(texts, batch_size=settings.embed_batch_size),
        )
    hay_chunks = int(out["write"]["documents_written"])
    rows = {
        "ours": {"chunks": report.chunks, "seconds": round(ours_s, 2)},
        "haystack": {"chunks": hay_chunks, "seconds": round(hay_s, 2)},
        "embedding floor (our chunk texts)": {"chunks": len(texts), "seconds": round(floor_s, 2)},
    }
    for row in rows.values():
        row["chunks_per_second"] = round(row["chunks"] / row["seconds"], 1)
    result = {
        "documents": args.documents,
        "repeat": args.repeat,
        "rows": rows,
        "ours_vs_haystack_chunks_per_second": round(
            rows["ours"]["chunks_per_second"] / rows["haystack"]["chunks_per_second"], 2
        ),
        "ours_vs_floor_seconds": round(ours_s / floor_s, 2),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "build_compare.json").write_text(json.dumps(result, indent=2))
    print(f"{args.documents} synthetic documents, models warm, fastest of {args.repeat}\n")
    print("| build | chunks | seconds | chunks/s |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['chunks']} | {row['seconds']} | {row['chunks_per_second']} |")
    print(
        f"\nours / Haystack chunks/s: {result['ours_vs_haystack_chunks_per_second']}; "
        f"ours / floor seconds: {result['ours_vs_floor_seconds']}"
    )


if __name__ == "__main__":
    main()
