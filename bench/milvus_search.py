"""Benchmark: dense search on milvus-lite against FAISS in the same run, p50 and recall@10.

The service's own code on both sides: ``rag.store.dense`` (exact ``IndexFlatIP``) and
``rag.store.milvus.MilvusVectors`` (a collection written by ``sync`` and searched by
``search``, one question at a time, through milvus-lite's local server). Recall@10 is
the share of exact FAISS's ten best rows that Milvus also returns.

The vectors are ``bench/dense_search.py``'s: real SQuAD 1.1 paragraphs embedded by the
packaged model, and above their number **synthetic** noisy copies of them (labelled in
the output); the queries are real questions about those paragraphs.

    .venv/bin/python bench/milvus_search.py [--texts 3000] [--sizes 10000,100000]
        [--index-types FLAT,HNSW]

The milvus-lite files go to a temporary folder removed at the end.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dense_search import K, embed_cached, recall, replicate, squad_texts, timed_search  # noqa: E402

from rag.config import get_settings  # noqa: E402
from rag.embedding import SentenceTransformerEmbedder  # noqa: E402
from rag.store.dense import DenseKind, DenseSettings, build_dense  # noqa: E402
from rag.store.milvus import ChunkRow, MilvusSettings, MilvusVectors  # noqa: E402


def milvus_rows(size: int) -> list[ChunkRow]:
    """One row per vector; document i holds chunk i, with a short text of its own."""
    return [
        ChunkRow(f"{i:020d}", f"doc-{i}", 0, None, f"chunk {i}", f"chunk {i}") for i in range(size)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--texts", type=int, default=3000, help="real paragraphs embedded")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--index-types", default="FLAT,HNSW")
    parser.add_argument("--noise", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()

    settings = get_settings()
    embedder = SentenceTransformerEmbedder(settings.embedding_model)
    texts, questions = squad_texts(args.data_dir, args.texts, args.queries)
    real = embed_cached(embedder, texts, ROOT / ".cache" / "bench")
    queries = embedder.embed(questions)
    print(f"{len(real)} real paragraph vectors, {len(queries)} questions")

    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="milvus-bench-") as tmp:
        for size in [int(s) for s in args.sizes.split(",")]:
            vectors = replicate(real, size, args.noise, args.seed)
            label = (
                "real" if size <= len(real) else f"synthetic (real + noisy copies, {args.noise})"
            )
            flat, _ = build_dense(vectors, DenseSettings(kind=DenseKind.FLAT))
            exact, flat_times = timed_search(flat, queries, None)
            row: dict[str, object] = {
                "size": size,
                "vectors": label,
                "faiss_flat_p50_ms": round(float(np.median(flat_times)), 3),
                "milvus": [],
            }
            rows = milvus_rows(size)
            for index_type in args.index_types.split(","):
                uri = str(Path(tmp) / f"{index_type.lower()}-{size}.db")
                store = MilvusVectors.create_or_open(
                    MilvusSettings(uri=uri, collection="bench", index_type=index_type),
                    vectors.shape[1],
                )
                started = time.perf_counter()
                store.sync(rows, lambda i, v=vectors: v[i])
                load_s = time.perf_counter() - started
                found: list[list[int]] = []
                times: list[float] = []
                for query in queries:
                    t = time.perf_counter()
                    hits = store.search(query, K)
                    times.append((time.perf_counter() - t) * 1000)
                    found.append([int(h.chunk_id) for h in hits])
                store.close()
                entry = {
                    "index_type": index_type,
                    "insert_s": round(load_s, 1),
                    "p50_ms": round(float(np.median(times)), 3),
                    "recall_at_10": round(recall(found, exact), 4),
                }
                row["milvus"].append(entry)  # type: ignore[attr-defined]
                print(json.dumps({"size": size, **entry}), flush=True)
            results.append(row)

    print()
    print(
        "| chunks | vectors | FAISS exact p50 ms | milvus-lite index: insert s, p50 ms, recall@10 |"
    )
    print("|---|---|---|---|")
    for row in results:
        cells = "; ".join(
            f"{e['index_type']}: {e['insert_s']} s, {e['p50_ms']:.2f} ms, {e['recall_at_10']:.3f}"
            for e in row["milvus"]  # type: ignore[attr-defined]
        )
        print(f"| {row['size']:,} | {row['vectors']} | {row['faiss_flat_p50_ms']:.2f} | {cells} |")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version()},
        "model": embedder.model_id,
        "k": K,
        "results": results,
    }
    path = args.out / "milvus_search.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
