"""Benchmark: where an index build spends its time, stage by stage.

Runs the builder's stages one after the other, in this process, on synthetic documents
(sentences of the real letters shuffled into new documents, as in ``index_build.py``):
loading, spaCy annotation, chunking and embedding the chunks, the stages a build runs.
Models are loaded and warmed before timing.

    .venv/bin/python bench/index_stages.py [--documents 300] [--out reports/bench]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.annotate import Annotator  # noqa: E402
from rag.chunking import Chunker, ChunkerSettings  # noqa: E402
from rag.config import get_settings  # noqa: E402
from rag.embedding import SentenceTransformerEmbedder  # noqa: E402
from rag.ingest import discover, load_document  # noqa: E402
from rag.synthetic import write_synthetic_corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--sentences-per-doc", type=int, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    settings = get_settings()
    annotator = Annotator(settings.spacy_model)
    embedder = SentenceTransformerEmbedder(settings.embedding_model)
    annotator.warm_up()
    embedder.embed(["warm up"])
    chunker = Chunker(
        ChunkerSettings(settings.chunk_tokens, settings.chunk_overlap), embedder.count_tokens
    )
    seconds: dict[str, float] = {}

    def timed(stage: str, started: float) -> float:
        now = time.perf_counter()
        seconds[stage] = round(now - started, 2)
        return now

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp)
        write_synthetic_corpus(
            ROOT / "corpus", corpus, args.documents, sentences_per_doc=args.sentences_per_doc
        )
        t = time.perf_counter()
        docs = [
            load_document(p, corpus, max_bytes=settings.max_file_bytes) for p in discover(corpus)
        ]
        t = timed("load", t)
        annotations = annotator.annotate(docs)
        t = timed("annotate (spaCy)", t)
        chunks = [c for d in docs for c in chunker.split(d)]
        t = timed("chunk", t)
        embedder.embed([c.text for c in chunks], batch_size=settings.embed_batch_size)
        timed("embed chunks", t)
        sentences = sum(len(a.sentences) for a in annotations)
    total = sum(seconds.values())
    share = {k: round(v / total, 3) for k, v in seconds.items()}
    result = {
        "documents": len(docs),
        "chunks": len(chunks),
        "sentences": sentences,
        "seconds": seconds,
        "share": share,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "index_stages.json").write_text(json.dumps(result, indent=2))
    print(f"{len(docs)} documents, {len(chunks)} chunks, {sentences} sentences\n")
    print("| stage | seconds | share |\n|---|---|---|")
    for stage, s in seconds.items():
        print(f"| {stage} | {s} | {share[stage]:.0%} |")


if __name__ == "__main__":
    main()
